"""torchreid models -> bau feature files: ``bau extract --from torchreid --model NAME [--weights PATH]``.

torchreid (Zhou et al., "Omni-Scale Feature Learning for Person Re-Identification", ICCV 2019; the
deep-person-reid code) is on PyPI as ``torchreid`` 0.2.5, which packages deep-person-reid 1.4.0 as
``torchreid.reid`` (optional extra: ``pip install 'bau[torchreid]'``). Everything model-specific
comes from the library itself:

- the network: ``torchreid.reid.models.build_model(NAME, num_classes=1, pretrained=False)``;
- the weights: a torchreid checkpoint (``{"state_dict": ...}`` as its ``save_checkpoint`` writes,
  or a bare state dict, ``module.`` prefixes allowed), read with ``torch.load(weights_only=True)``
  and matched like torchreid's ``load_pretrained_weights`` (same name and shape), except that
  bau refuses a file that leaves any non-classifier tensor of the model unloaded. Without
  ``--weights`` the model keeps its seeded random initialisation (a baseline);
- the test transform: ``torchreid.reid.data.transforms.build_transforms(H, W)``'s test half
  (resize to H x W, to tensor, ImageNet mean/std), with torchreid's default 256 x 128 (160 x 64
  for ``hacnn``, whose architecture requires it);
- the features: the model's output in ``eval()`` mode, as torchreid's ``FeatureExtractor`` and
  engine use it (not normalised; ``bau analyze`` L2-normalises).

Images are read as torchreid's ``read_image`` does (PIL, RGB). The result is the feature file of
``bau.runs.feature_file`` for any bau dataset (``market1501``, ``folder:PATH``, ...).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import pickle
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from bau.core.errors import BauError

EXTRA = "pip install 'bau[torchreid]'"
DEFAULT_SIZE = (256, 128)  # torchreid's default height x width
MODEL_SIZES = {"hacnn": (160, 64)}  # architectures that only accept one input size


def require_torchreid() -> None:
    """Raise one line naming the extra when torchreid (or what its import needs) is missing."""
    if importlib.util.find_spec("torchreid") is None:
        raise BauError(f"--from torchreid needs the torchreid package, which is not installed: {EXTRA}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import torchreid.reid  # noqa: F401  (imports gdown and tensorboard at module level)
    except ImportError as e:
        raise BauError(f"--from torchreid: importing torchreid failed ({e}); {EXTRA}") from None


def input_size(name: str, size: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """``(height, width)``: ``size`` when given, else the one torchreid uses for model ``name``."""
    if size:
        h, w = (int(v) for v in size)
        if h < 1 or w < 1:
            raise BauError(f"--size {h} {w}: expected a positive height and width")
        return h, w
    return MODEL_SIZES.get(name, DEFAULT_SIZE)


def test_transform(height: int, width: int):
    """torchreid's own test transform for ``height x width`` (``build_transforms``' second half)."""
    from torchreid.reid.data.transforms import build_transforms

    with contextlib.redirect_stdout(io.StringIO()):  # build_transforms prints every step
        _, transform_te = build_transforms(height, width, transforms=None)
    return transform_te


def read_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """The state dict of a torchreid checkpoint, read with ``weights_only=True``.

    Raises:
        BauError: the file is missing, is not a checkpoint, or needs pickled Python objects (with the
            one-off command that converts it into a plain state dict).
    """
    if not os.path.isfile(path):
        raise BauError(f"--weights {path}: file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, UnicodeDecodeError, AttributeError, TypeError, ModuleNotFoundError):
        convert = (f"python -c \"import torch; c = torch.load('{path}', map_location='cpu', weights_only=False); "
                   f"torch.save(c.get('state_dict', c), '{path}.state_dict.pth')\"")
        raise BauError(f"--weights {path}: the file needs pickled Python objects, which bau does not load "
                       f"(weights_only=True); if you trust it, convert it once with {convert} and pass "
                       f"{path}.state_dict.pth") from None
    except Exception as e:  # not a torch file at all
        raise BauError(f"--weights {path}: cannot be read as a torch checkpoint ({type(e).__name__})") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BauError(f"--weights {path}: expected a state dict of tensors (or {{'state_dict': ...}})")
    return state


def load_weights(model: torch.nn.Module, state: Dict[str, torch.Tensor], path: str) -> List[str]:
    """Load ``state`` into ``model`` as torchreid's ``load_pretrained_weights`` matches keys.

    Tensors are matched by name (a ``module.`` prefix dropped) and shape; the checkpoint's other
    tensors (its classifier over the training identities) are left out and returned. Every tensor
    of the model except its classifiers must be loaded.
    """
    own = model.state_dict()
    loaded: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    discarded = []
    for k, v in state.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if k in own and own[k].shape == v.shape:
            loaded[k] = v
        else:
            discarded.append(k)
    missing = [k for k in own if k not in loaded and "classifier" not in k and not k.endswith("num_batches_tracked")]
    if missing:
        raise BauError(f"--weights {path}: {len(missing)} tensors of the model are not in the file or have another "
                       f"shape (first: {missing[0]}); is it a checkpoint of this --model?")
    own.update(loaded)
    model.load_state_dict(own)
    return discarded


def build(name: str, weights: Optional[str] = None, seed: int = 0) -> torch.nn.Module:
    """torchreid model ``name`` in eval mode: ``weights`` loaded, or a ``seed``-ed random initialisation."""
    require_torchreid()
    from torchreid.reid.models import __model_factory, build_model

    if name not in __model_factory:
        raise BauError(f"--model {name}: not a torchreid model; expected one of {', '.join(sorted(__model_factory))}")
    state = read_checkpoint(weights) if weights else None  # first: a bad file fails before any building
    torch.manual_seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        model = build_model(name, num_classes=1, pretrained=False, use_gpu=False)
    if state is not None:
        load_weights(model, state, weights)
    return model.eval()


class _Images(torch.utils.data.Dataset):
    """``(path, ...)`` items -> torchreid-transformed image tensors."""

    def __init__(self, paths: Sequence[str], transform):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        try:
            with Image.open(self.paths[i]) as im:
                img = im.convert("RGB")
        except OSError as e:
            raise BauError(f"image {self.paths[i]}: cannot be read ({e.strerror or type(e).__name__})") from None
        return self.transform(img)


@torch.no_grad()
def extract(model: torch.nn.Module, paths: Sequence[str], size: Tuple[int, int], device: torch.device,
            batch_size: int = 64, workers: int = 0, progress: bool = False) -> np.ndarray:
    """``[N, d]`` float32 features of the images ``paths``: torchreid's test transform, ``model`` in eval mode."""
    from tqdm import tqdm

    loader = torch.utils.data.DataLoader(_Images(paths, test_transform(*size)), batch_size=batch_size,
                                         shuffle=False, num_workers=workers)
    model = model.to(device).eval()
    chunks = []
    for batch in tqdm(loader, desc="torchreid features", disable=not progress, leave=False):
        f = model(batch.to(device))
        if isinstance(f, (tuple, list)):
            f = f[0]
        chunks.append(f.float().flatten(1).cpu().numpy())
    return np.concatenate(chunks).astype(np.float32)


def extract_to_npz(name: str, weights: Optional[str], datasets: Sequence[str], root: str, subset: str,
                   out_path: str, split: int = 0, size: Optional[Sequence[int]] = None, device: str = "cpu",
                   batch_size: int = 64, workers: int = 0, seed: int = 0, progress: bool = False) -> int:
    """Write the torchreid model's features of ``subset`` of ``datasets`` to the feature file ``out_path``.

    The rows, labels and file are those of ``bau extract --checkpoint`` (``bau.runs.features``); returns the
    row count. Nothing is written unless every image was read and every feature computed.
    """
    from bau.core.config import Config
    from bau.runs.feature_file import write_feature_file
    from bau.runs.features import collect_items, feature_arrays

    if not out_path.endswith(".npz"):
        raise BauError(f"--out {out_path}: expected a file name ending in .npz")
    model = build(name, weights, seed)
    col = collect_items(list(datasets), root, subset, Config(), split)
    feats = extract(model, [it[0] for it in col["items"]], input_size(name, size), torch.device(device),
                    batch_size=batch_size, workers=workers, progress=progress)
    write_feature_file(out_path, feature_arrays(col, np.arange(len(col["items"])), feats, datasets))
    return len(col["items"])
