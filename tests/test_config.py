import pytest

from bau.core.config import Config, load_config, parse_overrides
from bau.core.errors import BauError

pytestmark = pytest.mark.unit


# Every default of the config, with where it comes from: "paper" (Sec. 4.2 / appendix A), "released" (the
# authors' code, where the paper is silent) or "toolkit" (this toolkit's own choice; docs/fidelity.md says why
# where it matters). mutmut does not mutate class-level defaults, so this table is what pins them (make mutation).
DEFAULTS = {
    "data.root": ("data", "toolkit"),
    "data.sources": (["msmt17", "cuhksysu", "cuhk03"], "paper"),  # Protocol-2 MS+CS+C3 -> M
    "data.targets": (["market1501"], "paper"),
    "data.height": (256, "paper"),
    "data.width": (128, "paper"),
    "data.num_instances": (4, "paper"),
    "data.num_ids": (64, "paper"),
    "data.aug_prob": (0.5, "paper"),
    "data.randaugment": (True, "paper"),
    "data.color_jitter": (True, "paper"),
    "data.random_erasing": (True, "paper"),
    "data.randaugment_ops": ("paper", "paper"),
    "data.sampler": ("image", "released"),
    "data.workers": (4, "toolkit"),
    "data.image_cache_mb": (2048, "toolkit"),
    "data.split_seed": (0, "toolkit"),
    "data.num_splits": (10, "paper"),
    "model.backbone": ("resnet50", "paper"),
    "model.pretrained": (True, "paper"),
    "model.pretrained_path": (None, "toolkit"),
    "model.gem_p": (3.0, "released"),
    "model.bn_views": ("split", "released"),
    "model.last_stride": (None, "released"),  # the backbone's usual: 1 for resnet50, as released
    "loss.ce": (True, "paper"),
    "loss.triplet": (True, "paper"),
    "loss.two_view": (True, "paper"),
    "loss.ce_aug": (False, "paper"),
    "loss.align": (True, "paper"),
    "loss.uniform": (True, "paper"),
    "loss.domain": (True, "paper"),
    "loss.weighting": (True, "paper"),
    "loss.domain_specific": (True, "paper"),
    "loss.lam": (1.5, "paper"),
    "loss.k": (10, "paper"),
    "loss.momentum": (0.1, "paper"),
    "loss.n_neighbors": (None, "paper"),  # N = the mini-batch size
    "loss.label_smoothing": (0.1, "released"),
    "loss.margin": (0.3, "released"),
    "optim.lr": (3.5e-4, "paper"),
    "optim.weight_decay": (5e-4, "paper"),
    "optim.warmup_epochs": (10, "paper"),
    "optim.warmup_factor": (0.01, "released"),
    "optim.milestones": ([30, 50], "paper"),
    "optim.gamma": (0.1, "paper"),
    "train.epochs": (60, "paper"),
    "train.iters_per_epoch": (0, "toolkit"),  # released: 500 (docs/fidelity.md); the protocol configs set it
    "train.seed": (1, "released"),
    "train.device": ("auto", "toolkit"),
    "train.amp": (True, "released"),
    "train.eval_every": (10, "toolkit"),
    "train.log_every": (1, "toolkit"),
    "train.max_steps": (0, "toolkit"),
    "train.threads": (0, "toolkit"),
    "train.channels_last": (True, "toolkit"),
    "train.tensorboard": (False, "toolkit"),
    "eval.batch_size": (128, "toolkit"),
    "eval.rerank": (False, "paper"),
    "eval.max_rank": (50, "toolkit"),
    "eval.geometry": (True, "toolkit"),
    "eval.geometry_source_images": (0, "toolkit"),
    "eval.select": ("last", "toolkit"),  # released: best of 50/55/60 on the target (a choice on the test set)
    "eval.select_epochs": ([50, 55, 60], "released"),
}


def _flatten(d, prefix=""):
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.fidelity
def test_every_default_is_pinned_with_its_source():
    defaults = _flatten(Config().to_dict())
    assert set(defaults) == set(DEFAULTS), "a config option without a pinned default, or a pinned one that is gone"
    for key, (value, source) in DEFAULTS.items():
        assert source in ("paper", "released", "toolkit")
        got = defaults[key]
        assert got == value and type(got) is type(value), f"{key}: default {got!r}, pinned {value!r} ({source})"


@pytest.mark.fidelity
def test_defaults_are_the_papers():
    c = Config()
    assert (c.data.height, c.data.width, c.data.num_ids, c.data.num_instances) == (256, 128, 64, 4)
    assert c.optim.lr == 3.5e-4 and c.optim.weight_decay == 5e-4 and c.optim.warmup_epochs == 10
    assert c.optim.milestones == [30, 50] and c.train.epochs == 60
    assert (c.loss.lam, c.loss.k, c.loss.momentum, c.data.aug_prob) == (1.5, 10, 0.1, 0.5)
    assert c.model.backbone == "resnet50"


def test_yaml_then_overrides(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("loss:\n  k: 5\ndata:\n  sources: [a, b]\n")
    child = tmp_path / "child.yaml"
    child.write_text("_base_: base.yaml\nloss:\n  lam: 2.0\n")
    cfg = load_config(str(child), ["loss.k=7", "data.targets=x,y", "loss.n_neighbors=none", "train.amp=false"])
    assert cfg.loss.k == 7 and cfg.loss.lam == 2.0
    assert cfg.data.sources == ["a", "b"] and cfg.data.targets == ["x", "y"]
    assert cfg.loss.n_neighbors is None and cfg.train.amp is False


@pytest.mark.parametrize("override, fragment", [
    ("loss.nope=1", "loss.nope"),
    ("loss.k=abc", "loss.k"),
    ("data.aug_prob=1.5", "data.aug_prob"),
    ("nokey", "expected section.key=value"),
    ("train.amp=maybe", "train.amp"),
    # every numeric option has its range checked when the config is loaded, not at first use
    ("optim.weight_decay=-5", "optim.weight_decay"),
    ("loss.label_smoothing=5", "loss.label_smoothing"),
    ("loss.label_smoothing=1", "loss.label_smoothing"),
    ("loss.lam=-1", "loss.lam"),
    ("loss.margin=-0.3", "loss.margin"),
    ("loss.n_neighbors=0", "loss.n_neighbors"),
    ("eval.max_rank=0", "eval.max_rank"),
    ("eval.batch_size=0", "eval.batch_size"),
    ("optim.milestones=[50,30]", "optim.milestones"),
    ("optim.gamma=0", "optim.gamma"),
    ("optim.warmup_factor=2", "optim.warmup_factor"),
    ("optim.warmup_epochs=-1", "optim.warmup_epochs"),
    ("train.iters_per_epoch=-3", "train.iters_per_epoch"),
    ("train.log_every=0", "train.log_every"),
    ("train.eval_every=-1", "train.eval_every"),
    ("train.max_steps=-1", "train.max_steps"),
    ("train.threads=-2", "train.threads"),
    ("train.seed=-1", "train.seed"),
    ("data.workers=-1", "data.workers"),
    ("data.num_splits=0", "data.num_splits"),
    ("model.gem_p=0.5", "model.gem_p"),
    ("model.backbone=resnet18", "model.backbone"),
    ("model.bn_views=both", "model.bn_views"),
])
def test_bad_overrides_name_the_option(override, fragment):
    with pytest.raises(BauError, match=fragment.replace(".", r"\.")):
        load_config(None, [override])


def test_bad_yaml_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("loss: [unclosed\n")
    with pytest.raises(BauError, match="bad.yaml"):
        load_config(str(p))
    with pytest.raises(BauError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))


def test_single_view_rejects_two_view_terms():
    with pytest.raises(BauError, match="two_view"):
        load_config(None, ["loss.two_view=false"])
    cfg = load_config(None, ["loss.two_view=false", "loss.align=false", "loss.uniform=false"])
    assert not cfg.loss.two_view


def test_parse_overrides_nests():
    assert parse_overrides(["a.b=1", "a.c=x=y"]) == {"a": {"b": "1", "c": "x=y"}}


def test_the_configs_choices_are_what_the_stages_implement():
    """The config lists its choices without importing the stages; each stage implements exactly those."""
    import bau.core.config as config
    from bau.data import samplers, transforms
    from bau.models import backbones
    from bau.models.batchnorm import views_per_batchnorm

    assert tuple(samplers.SAMPLERS) == config.SAMPLERS
    assert tuple(backbones.BACKBONES.names()) == config.BACKBONES
    for op_set in config.RANDAUGMENT_OP_SETS:
        assert callable(transforms.build_randaugment(op_set))
    with pytest.raises(BauError, match="data.randaugment_ops"):
        transforms.build_randaugment("other")
    for stride in config.LAST_STRIDES:
        assert backbones._check_last_stride(stride, "resnet50") == stride
    with pytest.raises(BauError, match="model.last_stride"):
        backbones._check_last_stride(3, "resnet50")
    assert set(config.BN_VIEWS) == {"joint", "split"} and callable(views_per_batchnorm)
    for name, value in [("model.backbone", "ResNet50"), ("data.sampler", "image"), ("model.bn_views", "joint")]:
        assert load_config(overrides=[f"{name}={value}"])  # case-insensitive backbone names, as the registry
