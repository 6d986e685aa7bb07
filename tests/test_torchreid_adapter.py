"""bau extract --from torchreid: the adapter's features and mAP equal torchreid's own extractor and evaluation."""
import importlib.util
import json
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch

from bau.cli import main
from bau.core.errors import BauError
from bau.data.datasets import build_dataset

pytestmark = pytest.mark.integration

pytest.importorskip("torchreid")

MODEL, SIZE = "osnet_x0_25", (64, 32)


def _weights(tmp_path):
    """A randomly initialised torchreid model, saved as torchreid's save_checkpoint would (num_classes=5)."""
    from bau.adapters.torchreid import require_torchreid

    require_torchreid()
    from torchreid.reid.models import build_model

    torch.manual_seed(3)
    model = build_model(MODEL, num_classes=5, pretrained=False, use_gpu=False)
    path = tmp_path / "model.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 1,
                "rank1": 0.0}, path)
    return str(path)


def test_mAP_equals_torchreids_own_feature_extractor_and_evaluation(tiny_synth, tmp_path):
    from torchreid.reid.metrics import compute_distance_matrix, evaluate_rank
    from torchreid.reid.utils import FeatureExtractor

    weights = _weights(tmp_path)
    out = tmp_path / "feats.npz"
    assert main(["extract", "--from", "torchreid", "--model", MODEL, "--weights", weights, "--size", *map(str, SIZE),
                 "--dataset", "folder:synth_a", "--data-root", tiny_synth, "--out", str(out), "--quiet"]) == 0

    # torchreid's own route: FeatureExtractor (its transform, its weight loading), then evaluate_rank
    ds = build_dataset("folder:synth_a", tiny_synth)
    extractor = FeatureExtractor(model_name=MODEL, model_path=weights, image_size=SIZE, device="cpu", verbose=False)
    qf = extractor([it[0] for it in ds.query])
    gf = extractor([it[0] for it in ds.gallery])
    dist = compute_distance_matrix(qf, gf, metric="cosine").numpy()  # = ranking L2-normalised features
    q_pids, q_cams = (np.array([it[i] for it in ds.query]) for i in (1, 2))
    g_pids, g_cams = (np.array([it[i] for it in ds.gallery]) for i in (1, 2))
    cmc, ref_map = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=10, use_cython=False)

    with np.load(out) as z:
        assert list(z["subsets"]) == ["query"] * len(ds.query) + ["gallery"] * len(ds.gallery)
        assert np.allclose(z["features"], torch.cat([qf, gf]).numpy(), rtol=1e-4, atol=1e-5)
    report = tmp_path / "report"
    assert main(["analyze", "--features", str(out), "--out", str(report), "--max-points", "0", "--quiet"]) == 0
    (ours,) = json.loads((report / "report.json").read_text())["retrieval"]["per_domain"].values()
    assert 0.0 < ref_map < 1.0
    assert ours["mAP"] == pytest.approx(ref_map, abs=1e-6)
    assert ours["rank1"] == pytest.approx(cmc[0], abs=1e-6) and ours["rank5"] == pytest.approx(cmc[4], abs=1e-6)


def test_random_initialisation_is_seeded_and_sizes_follow_torchreid(tiny_synth, tmp_path):
    from bau.adapters.torchreid import build, input_size

    a, b = build(MODEL, seed=0).state_dict(), build(MODEL, seed=0).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert input_size("osnet_ain_x1_0") == (256, 128) and input_size("hacnn") == (160, 64)
    assert input_size("hacnn", [128, 64]) == (128, 64)


def test_a_checkpoint_with_pickled_objects_is_refused_with_a_working_conversion(tmp_path, capsys):
    import argparse

    from bau.adapters.torchreid import build, read_checkpoint

    path = tmp_path / "pickled.pth"
    state = build(MODEL).state_dict()
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(BauError, match="pickled Python objects") as e:
        read_checkpoint(str(path))
    cmd = re.search(r"convert it once with (python -c \".*\") and pass", str(e.value)).group(1)
    argv = shlex.split(cmd)
    subprocess.run([sys.executable] + argv[1:], check=True, cwd=tmp_path)
    converted = read_checkpoint(str(path) + ".state_dict.pth")
    assert set(converted) == set(state)
    rc = main(["extract", "--from", "torchreid", "--model", MODEL, "--weights", str(path), "--dataset",
               "folder:x", "--data-root", str(tmp_path), "--out", str(tmp_path / "f.npz")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "weights_only=True" in err
    assert not (tmp_path / "f.npz").exists()


def test_wrong_model_and_mismatched_weights_are_one_line(tmp_path, capsys):
    weights = _weights(tmp_path)
    base = ["extract", "--from", "torchreid", "--dataset", "folder:x", "--data-root", str(tmp_path),
            "--out", str(tmp_path / "f.npz")]
    assert main(base + ["--model", "osnet_nope"]) == 2
    assert "not a torchreid model" in capsys.readouterr().err
    assert main(base + ["--model", "osnet_x1_0", "--weights", weights]) == 2  # x0_25 weights, x1_0 model
    err = capsys.readouterr().err.strip()
    assert "is it a checkpoint of this --model" in err and err.count("\n") == 0
    assert main(["extract", "--model", MODEL, "--checkpoint", "x.pt", "--dataset", "folder:x", "--out", "f.npz"]) == 2
    assert "go with --from torchreid" in capsys.readouterr().err


def test_missing_torchreid_names_the_extra(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchreid" else real(name, *a))
    assert main(["extract", "--from", "torchreid", "--model", MODEL, "--dataset", "folder:x", "--data-root",
                 str(tmp_path), "--out", str(tmp_path / "f.npz")]) == 2
    assert "pip install 'bau[torchreid]'" in capsys.readouterr().err
