"""The set-up files agree with each other, and every shipped experiment config loads."""
import glob
import os
import re

import pytest
import yaml

from bau.core.config import load_config

pytestmark = pytest.mark.unit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_pyproject_dependencies():
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    wanted = {_name(r) for r in project["dependencies"]} | \
        {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    with open(os.path.join(ROOT, "environment.yml")) as f:
        env = yaml.safe_load(f)
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_name(r) for r in pip_section if not r.startswith("-e")}
    assert listed == wanted
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_make_test_installs_every_extra_the_tests_use():
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = set(tomllib.load(f)["project"]["optional-dependencies"])
    with open(os.path.join(ROOT, "Makefile")) as f:
        installed = re.search(r"-e '\.\[([a-z,]+)\]'", f.read()).group(1).split(",")
    assert set(installed) == extras == {"dev", "cluster", "tensorboard", "torchreid", "mutation"}


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "experiments", "**", "*.yaml"), recursive=True)))
def test_experiment_config_loads(path):
    if os.sep + "sweeps" + os.sep in path:
        from bau.engine.sweep import load_sweep

        sweep = load_sweep(path)  # validates every run's resolved config
        assert len(sweep["runs"]) >= 2
        return
    cfg = load_config(path)
    assert cfg.data.sources


def test_protocol_configs_follow_table_2():
    p3 = load_config(os.path.join(ROOT, "experiments/protocol3/ms_cs_c3-m.yaml"))
    assert p3.data.sources == ["full:msmt17", "full:cuhksysu", "full:cuhk03"] and p3.data.targets == ["market1501"]
    p1 = load_config(os.path.join(ROOT, "experiments/protocol1/m_c2_c3_cs-prid_grid_viper_ilids.yaml"))
    assert p1.data.targets == ["prid", "grid", "viper", "ilids"]
    base = load_config(os.path.join(ROOT, "experiments/ablations/table5_baseline.yaml"))
    assert not base.loss.two_view and base.data.aug_prob == 0.0


# train.sh of the released code: iterations per epoch for each protocol and target.
RELEASED_ITERS = {
    "protocol1/m_c2_c3_cs-prid_grid_viper_ilids.yaml": 500,
    "protocol2/m_ms_cs-c3.yaml": 500, "protocol2/m_cs_c3-ms.yaml": 200, "protocol2/ms_cs_c3-m.yaml": 500,
    "protocol3/m_ms_cs-c3.yaml": 1000, "protocol3/m_cs_c3-ms.yaml": 400, "protocol3/ms_cs_c3-m.yaml": 1000,
}


@pytest.mark.parametrize("name, iters", sorted(RELEASED_ITERS.items()))
def test_protocol_configs_carry_the_released_recipe(name, iters):
    cfg = load_config(os.path.join(ROOT, "experiments", name))
    assert cfg.train.iters_per_epoch == iters and cfg.train.epochs == 60
    assert (cfg.data.num_ids, cfg.data.num_instances, cfg.data.height, cfg.data.width) == (64, 4, 256, 128)
    assert (cfg.data.sampler, cfg.data.randaugment_ops, cfg.model.bn_views) == ("image", "released", "split")
    assert cfg.model.backbone == "resnet50" and cfg.model.last_stride == 1 and cfg.data.aug_prob == 0.5


def test_every_protocol_config_is_pinned():
    found = {os.path.relpath(p, os.path.join(ROOT, "experiments")) for p in
             glob.glob(os.path.join(ROOT, "experiments", "protocol*", "*.yaml"))}
    assert found == set(RELEASED_ITERS)


def test_ci_runs_make_test_only():
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        commands = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    assert commands[-1] == "make test"
