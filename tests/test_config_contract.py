"""The config's contract, option by option: every range check at its boundary (the last accepted value passes,
the first rejected one raises the exact one-line message), every conversion of a YAML or command-line value, and
the errors of the YAML files, overrides and stored configs. Kept fast: ``make mutation`` runs it per mutant."""
import dataclasses
import math
from typing import List, Optional

import pytest
import yaml

from bau.core import config as C
from bau.core.config import Config, apply_overrides, config_from_dict, load_config, load_yaml, parse_overrides
from bau.core.errors import BauError

pytestmark = pytest.mark.unit

BELOW_0, ABOVE_1, BELOW_1 = math.nextafter(0.0, -1.0), math.nextafter(1.0, 2.0), math.nextafter(1.0, 0.0)
ABOVE_0 = math.nextafter(0.0, 1.0)


def _config(**options):
    """A default ``Config`` with ``options`` (``section__key=value``) set directly, without conversion."""
    cfg = Config()
    for key, value in options.items():
        section, name = key.split("__")
        assert hasattr(getattr(cfg, section), name), key
        setattr(getattr(cfg, section), name, value)
    return cfg


def _message(option, expected):
    return f"config option {option}: expected {expected}"


def _assert_validation(cfg, error):
    """``cfg.validate()`` returns ``cfg`` when ``error`` is None, else raises ``BauError`` with exactly ``error``."""
    if error is None:
        assert cfg.validate() is cfg
    else:
        with pytest.raises(BauError) as info:
            cfg.validate()
        assert str(info.value) == error


# (option, its values that pass, its first values that fail, the expected words of the error)
BOUNDARIES = [
    ("data.aug_prob", [0.0, 1.0, 0.5], [BELOW_0, ABOVE_1], "a probability in [0, 1]"),
    ("data.height", [16], [15], None),
    ("data.width", [16], [15], None),
    ("data.num_instances", [2], [1], "at least 2 instances per identity (triplets need positives)"),
    ("data.num_ids", [2], [1], "at least 2 identities per batch"),
    ("data.sources", [["a"]], [[]], "at least one source dataset"),
    ("data.workers", [0], [-1], "0 or more loader processes"),
    ("data.image_cache_mb", [0], [-1], "0 (off) or a memory budget in MB"),
    ("data.split_seed", [0], [-1], "a seed >= 0"),
    ("data.num_splits", [1], [0], "at least 1 split"),
    ("model.gem_p", [1.0], [math.nextafter(1.0, 0.0)], "a GeM power >= 1 (1 = average pooling)"),
    ("model.bn_views", ["joint", "split"], ["both", "Joint"], "joint or split"),
    ("loss.lam", [0.0], [BELOW_0], "a weight lambda >= 0"),
    ("loss.k", [1], [0], "k >= 1"),
    ("loss.momentum", [0.0, 1.0], [BELOW_0, ABOVE_1], "a momentum in [0, 1]"),
    ("loss.n_neighbors", [None, 1], [0], "none (the batch size) or >= 1"),
    ("loss.label_smoothing", [0.0, BELOW_1], [BELOW_0, 1.0], "a smoothing epsilon in [0, 1)"),
    ("loss.margin", [0.0], [BELOW_0], "a triplet margin >= 0"),
    ("optim.lr", [ABOVE_0], [0.0], "a positive learning rate"),
    ("optim.weight_decay", [0.0], [BELOW_0], "a weight decay >= 0"),
    ("optim.warmup_epochs", [0], [-1], "0 or more warm-up epochs"),
    ("optim.warmup_factor", [ABOVE_0, 1.0], [0.0, ABOVE_1], "a starting factor in (0, 1]"),
    ("optim.milestones", [[], [1], [1, 2], [30, 50]], [[0], [0, 30], [50, 30], [30, 30], [2, 1]],
     "increasing epochs >= 1, e.g. [30, 50]"),
    ("optim.gamma", [ABOVE_0, 1.0], [0.0, ABOVE_1], "a decay factor in (0, 1]"),
    ("train.epochs", [1], [0], "at least 1 epoch"),
    ("train.iters_per_epoch", [0], [-1], "0 (one pass over the data) or a number of batches"),
    ("train.seed", [0], [-1], "a seed >= 0"),
    ("train.eval_every", [0], [-1], "0 (only after the last epoch) or a number of epochs"),
    ("train.log_every", [1], [0], "at least 1 step between log records"),
    ("train.max_steps", [0], [-1], "0 (no limit) or a number of steps"),
    ("train.threads", [0], [-1], "0 (torch's default) or a number of threads"),
    ("eval.batch_size", [1], [0], "a positive batch size"),
    ("eval.max_rank", [1], [0], "a CMC length >= 1"),
    ("eval.geometry_source_images", [0], [-1], "0 (automatic) or a number of images"),
]
CASES = [(option, value, None) for option, good, _, _ in BOUNDARIES for value in good] + [
    (option, value, _message("data.height/data.width", "image sizes of at least 16 pixels") if words is None
     else _message(option, words)) for option, _, bad, words in BOUNDARIES for value in bad]


@pytest.mark.parametrize("option, value, error", CASES, ids=[f"{o}={v!r}" for o, v, _ in CASES])
def test_every_range_check_at_its_boundary(option, value, error):
    _assert_validation(_config(**{option.replace(".", "__"): value}), error)


def test_the_defaults_pass_and_validate_returns_the_config():
    cfg = Config()
    assert cfg.validate() is cfg


@pytest.mark.parametrize("options, error", [
    ({"data__sampler": "identity"}, None),
    ({"data__sampler": "image"}, None),
    ({"data__sampler": "Image"}, _message("data.sampler", "'identity' or 'image', got 'Image'")),
    ({"data__randaugment_ops": "paper"}, None),
    ({"data__randaugment_ops": "released"}, None),
    ({"data__randaugment_ops": "all"}, _message("data.randaugment_ops", "'paper' or 'released', got 'all'")),
    ({"model__backbone": "ResNet50"}, None),  # case-insensitive, as the backbone registry
    ({"model__backbone": "mobilenetv2"}, None),
    ({"model__backbone": "VIT_B16"}, None),
    ({"model__backbone": "resnet18"}, _message("model.backbone", "one of mobilenetv2, resnet50, vit_b16")),
    ({"model__last_stride": None}, None),
    ({"model__last_stride": 1}, None),
    ({"model__last_stride": 2}, None),
    ({"model__last_stride": 0}, _message("model.last_stride", "1, 2 or none (the backbone's usual), got 0")),
    ({"model__last_stride": 3}, _message("model.last_stride", "1, 2 or none (the backbone's usual), got 3")),
    ({"eval__select": "last"}, None),
    ({"eval__select": "best"}, _message("eval.select", "'last' or 'best_of', got 'best'")),
    # the selected epochs matter only to best_of, and must lie in 1..train.epochs
    ({"eval__select": "last", "eval__select_epochs": []}, None),
    ({"eval__select": "last", "eval__select_epochs": [0, 99]}, None),
    ({"eval__select": "best_of", "eval__select_epochs": [1, 60]}, None),
    ({"eval__select": "best_of", "eval__select_epochs": [3], "train__epochs": 3}, None),
    ({"eval__select": "best_of", "eval__select_epochs": []},
     _message("eval.select_epochs", "epochs between 1 and train.epochs=60 for eval.select=best_of, got []")),
    ({"eval__select": "best_of", "eval__select_epochs": [0, 60]},
     _message("eval.select_epochs", "epochs between 1 and train.epochs=60 for eval.select=best_of, got [0, 60]")),
    ({"eval__select": "best_of", "eval__select_epochs": [2, 4], "train__epochs": 3},
     _message("eval.select_epochs", "epochs between 1 and train.epochs=3 for eval.select=best_of, got [2, 4]")),
])
def test_named_choices_and_the_selected_epochs(options, error):
    _assert_validation(_config(**options), error)


def test_the_first_violation_is_the_one_reported():
    with pytest.raises(BauError) as info:
        _config(data__aug_prob=2.0, eval__batch_size=0).validate()
    assert str(info.value) == _message("data.aug_prob", "a probability in [0, 1]")
    with pytest.raises(BauError) as info:
        _config(data__height=8, data__width=8, data__num_ids=1).validate()
    assert str(info.value) == _message("data.height/data.width", "image sizes of at least 16 pixels")


FLOAT_OPTIONS = [f"{s.name}.{f.name}" for s in dataclasses.fields(Config)
                 for f in dataclasses.fields(getattr(Config(), s.name)) if f.type in ("float", float)]


@pytest.mark.parametrize("option", FLOAT_OPTIONS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_every_non_finite_number_is_named_before_its_range(option, value):
    # -inf fails most range checks too, NaN all of them: the finite check comes first, in its own words
    with pytest.raises(BauError) as info:
        _config(**{option.replace(".", "__"): value}).validate()
    assert str(info.value) == _message(option, f"a finite number, got {value!r}")


def test_float_options_are_all_there():
    assert set(FLOAT_OPTIONS) == {"data.aug_prob", "model.gem_p", "loss.lam", "loss.momentum",
                                  "loss.label_smoothing", "loss.margin", "optim.lr", "optim.weight_decay",
                                  "optim.warmup_factor", "optim.gamma"}


def test_non_finite_numbers_in_a_list_and_in_order():
    with pytest.raises(BauError) as info:
        _config(optim__milestones=[30, math.inf]).validate()
    assert str(info.value) == _message("optim.milestones", "a finite number, got [30, inf]")
    # several: the first in the config's order
    with pytest.raises(BauError) as info:
        _config(optim__gamma=math.nan, loss__lam=math.inf).validate()
    assert str(info.value) == _message("loss.lam", "a finite number, got inf")
    assert C._non_finite(Config()) == []
    assert C._non_finite(_config(loss__lam=math.nan, optim__lr=-math.inf)) == [
        (False, "loss.lam", "a finite number, got nan"), (False, "optim.lr", "a finite number, got -inf")]


SINGLE_VIEW = ("config option loss.two_view=false: align, uniform and ce_aug need the augmented view; "
               "switch them off too")


@pytest.mark.parametrize("align, uniform, ce_aug", [(True, False, False), (False, True, False), (False, False, True)])
def test_one_view_rejects_each_two_view_term(align, uniform, ce_aug):
    cfg = _config(loss__two_view=False, loss__align=align, loss__uniform=uniform, loss__ce_aug=ce_aug)
    with pytest.raises(BauError) as info:
        cfg.validate()
    assert str(info.value) == SINGLE_VIEW
    # with two views every term is allowed
    cfg.loss.two_view = True
    assert cfg.validate() is cfg


def test_one_view_without_the_two_view_terms_passes():
    cfg = _config(loss__two_view=False, loss__align=False, loss__uniform=False, loss__ce_aug=False)
    assert cfg.validate() is cfg


# ---- conversion of YAML values and command-line strings (_convert) ----

@pytest.mark.parametrize("value, typ, want", [
    # Optional[X]: none, null or empty is None, anything else is an X
    (None, Optional[int], None), ("none", Optional[int], None), ("None", Optional[int], None),
    ("NULL", Optional[int], None), ("", Optional[int], None), ("5", Optional[int], 5), (5, Optional[int], 5),
    ("path/w.pth", Optional[str], "path/w.pth"),
    # List[X]: a YAML list, or a comma-separated string, brackets optional
    (["a", "b"], List[str], ["a", "b"]), (("a",), List[str], ["a"]), ("a,b", List[str], ["a", "b"]),
    ("[a, b]", List[str], ["a", "b"]), (" a , b ", List[str], ["a", "b"]), ("a,,b,", List[str], ["a", "b"]),
    ("[]", List[str], []), ("", List[str], []), ("[ ]", List[str], []), ("[30,50]", List[int], [30, 50]),
    ([" 7 ", 8.0], List[int], [7, 8]), ("x", List[str], ["x"]), ("X", List[str], ["X"]),
    ("[ [ ]", List[str], []), ("[[]]", List[str], []),  # nothing but brackets and spaces is no item
    # bool: words (any case), 0/1
    (True, bool, True), (False, bool, False), ("TRUE", bool, True), ("1", bool, True), ("yes", bool, True),
    ("On", bool, True), ("false", bool, False), ("0", bool, False), ("NO", bool, False), ("off", bool, False),
    (1, bool, True), (0, bool, False),
    # int: whole numbers only, never a bool
    ("7", int, 7), (7, int, 7), (3.0, int, 3), ("-2", int, -2),
    # float
    ("1.5", float, 1.5), (2, float, 2.0), ("1e-3", float, 1e-3), (0.25, float, 0.25),
    # str: scalars only
    ("x", str, "x"), (5, str, "5"), (1.5, str, "1.5"),
])
def test_convert_accepts(value, typ, want):
    got = C._convert(value, typ, "sec.opt")
    assert got == want and type(got) is type(want)
    if isinstance(want, list):
        assert all(type(g) is type(w) for g, w in zip(got, want))


@pytest.mark.parametrize("value, typ, error", [
    ("maybe", bool, "expected bool, got 'maybe'"), (2, bool, "expected bool, got 2"),
    (1.0, bool, "expected bool, got 1.0"), (None, bool, "expected bool, got None"),
    ("", bool, "expected bool, got ''"), ([True], bool, "expected bool, got [True]"),
    (True, int, "expected int, got True"), (2.5, int, "expected int, got 2.5"),
    ("abc", int, "expected int, got 'abc'"),
    (None, int, "expected int, got None"), ("1.0", int, "expected int, got '1.0'"),
    (False, float, "expected float, got False"), ("x", float, "expected float, got 'x'"),
    (None, float, "expected float, got None"),
    (None, str, "expected str, got None"), (["a"], str, "expected str, got ['a']"),
    ({}, str, "expected str, got {}"),
    (5, List[str], "expected a list, got 5"), ({"a": 1}, List[str], "expected a list, got {'a': 1}"),
    ("1, x", List[int], "expected int, got 'x'"), ("abc", Optional[int], "expected int, got 'abc'"),
    (1, dict, "unsupported type <class 'dict'>"),
])
def test_convert_rejects_in_one_line_naming_the_option(value, typ, error):
    with pytest.raises(BauError) as info:
        C._convert(value, typ, "sec.opt")
    assert str(info.value) == f"config option sec.opt: {error}"


# ---- applying layers (_apply, parse_overrides, apply_overrides, config_from_dict) ----

def test_overrides_set_typed_values_in_place():
    cfg = Config()
    out = apply_overrides(cfg, ["loss.k=5", "data.sources=a,b", "model.last_stride=1", " train.amp =off",
                                "optim.lr=1e-3", "eval.select_epochs=[7]"])
    assert out is cfg
    assert cfg.loss.k == 5 and cfg.data.sources == ["a", "b"] and cfg.model.last_stride == 1
    assert cfg.train.amp is False and cfg.optim.lr == 1e-3 and cfg.eval.select_epochs == [7]
    # not validated: that is the caller's call
    assert apply_overrides(cfg, ["data.aug_prob=3"]).data.aug_prob == 3.0


def test_parse_overrides_keeps_values_as_strings():
    assert parse_overrides([]) == {}
    assert parse_overrides([" a.b =1 ", "a.c=", "d=x"]) == {"a": {"b": "1 ", "c": ""}, "d": "x"}
    assert parse_overrides(["a.b.c=1", "a.b.d=2"]) == {"a": {"b": {"c": "1", "d": "2"}}}


@pytest.mark.parametrize("items, error", [
    (["nokey"], "override 'nokey': expected section.key=value, e.g. loss.lam=1.5"),
    (["a.b=1", "a.b.c=2"], "override 'a.b.c=2': 'b' is both a value and a section"),
    (["a=1", "a.b=2"], "override 'a.b=2': 'a' is both a value and a section"),
])
def test_parse_overrides_errors(items, error):
    with pytest.raises(BauError) as info:
        parse_overrides(items)
    assert str(info.value) == error


def _known(section):
    return ", ".join(f"{section}.{f.name}" for f in dataclasses.fields(getattr(Config(), section)))


@pytest.mark.parametrize("overrides, error", [
    (["loss.nope=1"], f"command line: unknown config option 'loss.nope'; expected one of: {_known('loss')}"),
    (["nope.k=1"],
     "command line: unknown config option 'nope'; expected one of: data, model, loss, optim, train, eval"),
    (["loss=1"], "command line: config section 'loss' must be a mapping, got '1'"),
    (["loss.k=x"], "config option loss.k: expected int, got 'x'"),
])
def test_apply_errors_name_the_source_and_option(overrides, error):
    with pytest.raises(BauError) as info:
        apply_overrides(Config(), overrides)
    assert str(info.value) == error


def test_config_from_dict_round_trips_and_names_a_stored_config():
    cfg = _config(loss__k=3, data__sources=["x"], model__last_stride=2, optim__milestones=[5])
    again = config_from_dict(cfg.to_dict())
    assert again == cfg and again is not cfg
    assert config_from_dict({}) == Config()
    with pytest.raises(BauError) as info:
        config_from_dict({"loss": {"kk": 1}})
    assert str(info.value) == f"stored config: unknown config option 'loss.kk'; expected one of: {_known('loss')}"
    # not validated: a stored config is read as it was written
    assert config_from_dict({"loss": {"k": 0}}).loss.k == 0


def test_to_dict_is_the_nested_options():
    d = Config().to_dict()
    assert list(d) == ["data", "model", "loss", "optim", "train", "eval"]
    assert d["loss"]["lam"] == 1.5 and d["optim"]["milestones"] == [30, 50]


# ---- YAML files (load_yaml, _yaml_chain, load_config, save_config) ----

def _load_error(path):
    with pytest.raises(BauError) as info:
        load_yaml(str(path))
    return str(info.value)


def test_load_yaml_reads_a_mapping_and_an_empty_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("loss:\n  k: 5\n", encoding="utf-8")
    assert load_yaml(str(p)) == {"loss": {"k": 5}}
    p.write_text("", encoding="utf-8")
    assert load_yaml(str(p)) == {}
    p.write_text("# only a comment\n", encoding="utf-8")
    assert load_yaml(str(p)) == {}
    p.write_text("data:\n  root: \"d\u00e9j\u00e0\"\n", encoding="utf-8")  # UTF-8, whatever the locale
    assert load_yaml(str(p)) == {"data": {"root": "d\u00e9j\u00e0"}}


def test_load_yaml_reads_utf8_whatever_the_locale(tmp_path, monkeypatch):
    import builtins

    def open_with_a_latin1_locale(path, mode="r", encoding=None, **kwargs):  # what open() does on such a system
        return builtins.open(path, mode, encoding=encoding or "latin-1", **kwargs)
    monkeypatch.setattr(C, "open", open_with_a_latin1_locale, raising=False)
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  root: d\u00e9j\u00e0\n", encoding="utf-8")
    assert load_yaml(str(p)) == {"data": {"root": "d\u00e9j\u00e0"}}


def test_load_yaml_errors_name_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    assert _load_error(p) == f"config file {p}: not found (expected a YAML file)"
    assert _load_error(tmp_path) == f"config file {tmp_path}: not found (expected a YAML file)"  # a folder
    p.write_bytes(b"loss:\n  k: 5\n  name: caf\xe9\n")
    assert _load_error(p) == f"config file {p}: not UTF-8 text (byte 24: b'\\xe9'); save it as UTF-8"
    p.write_text("loss:\n  k: 5\n  lam: [unclosed\n")
    assert _load_error(p) == f"config file {p}: not valid YAML at line 4"
    p.write_text("a: 1\n  b: 2\n")
    assert _load_error(p) == f"config file {p}: not valid YAML at line 2"
    p.write_text("a: 1\nb: \x07\n")  # a reader error carries no line
    assert _load_error(p) == f"config file {p}: not valid YAML"
    for text in ("- a\n- b\n", "5\n", "just words\n"):
        p.write_text(text)
        assert _load_error(p) == f"config file {p}: expected a mapping of sections (data:, model:, loss:, ...)"


def test_yaml_chain_layers_from_the_base_up(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("loss:\n  k: 5\n  lam: 0.5\ndata:\n  sources: [a]\n")
    (tmp_path / "d").mkdir()
    child = tmp_path / "d" / "child.yaml"
    child.write_text("_base_: ../base.yaml\nloss:\n  k: 7\n")
    chain = C._yaml_chain(str(child))
    assert chain == [(str(tmp_path / "d" / "../base.yaml"), {"loss": {"k": 5, "lam": 0.5}, "data": {"sources": ["a"]}}),
                     (str(child), {"loss": {"k": 7}})]
    cfg = load_config(str(child))
    assert (cfg.loss.k, cfg.loss.lam, cfg.data.sources) == (7, 0.5, ["a"])
    assert C._yaml_chain(str(base)) == [(str(base), {"loss": {"k": 5, "lam": 0.5}, "data": {"sources": ["a"]}})]
    child.write_text("_base_:\nloss:\n  k: 7\n")  # an empty base is none
    assert C._yaml_chain(str(child)) == [(str(child), {"loss": {"k": 7}})]


def test_yaml_chain_allows_nine_files_and_names_the_tenth(tmp_path):
    files = [tmp_path / f"c{i}.yaml" for i in range(11)]
    files[0].write_text("loss:\n  k: 3\n")
    for i in range(1, 11):
        files[i].write_text(f"_base_: c{i - 1}.yaml\ntrain:\n  epochs: {i}\n")
    chain = C._yaml_chain(str(files[8]))  # c8 <- ... <- c0: nine files
    assert [p for p, _ in chain] == [str(f) for f in files[:9]]
    assert load_config(str(files[8])).train.epochs == 8
    with pytest.raises(BauError) as info:
        C._yaml_chain(str(files[9]))  # ten files
    assert str(info.value) == f"config file {files[0]}: _base_ chain is deeper than 8 files (a cycle?)"
    # the depth counts from the file it started at
    assert len(C._yaml_chain(str(files[9]), depth=-1)) == 10
    with pytest.raises(BauError) as info:
        C._yaml_chain(str(files[1]), depth=8)
    assert str(info.value) == f"config file {files[0]}: _base_ chain is deeper than 8 files (a cycle?)"
    assert C._yaml_chain(str(files[0]), depth=8) == [(str(files[0]), {"loss": {"k": 3}})]
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text("_base_: cycle.yaml\n")
    with pytest.raises(BauError, match="deeper than 8 files"):
        load_config(str(cycle))


def test_load_config_layers_defaults_base_file_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("loss:\n  k: 5\n  lam: 2.0\n")
    cfg = load_config(str(p), ["loss.k=7"], base={"loss": {"k": 3, "margin": 0.5}, "train": {"epochs": 9}})
    assert (cfg.loss.k, cfg.loss.lam, cfg.loss.margin, cfg.train.epochs) == (7, 2.0, 0.5, 9)
    assert load_config(None, None, base={"loss": {"k": 4}}).loss.k == 4
    assert load_config(str(p)).loss.k == 5
    assert load_config() == Config()
    assert load_config(None, [], base={}) == Config()


@pytest.mark.parametrize("layer, error", [
    ("base", "config option loss.k: expected k >= 1"),  # every layer's result is validated
    ("file", "config option loss.k: expected k >= 1"),
    ("override", "config option loss.k: expected k >= 1"),
    ("base-unknown", "config: unknown config option 'loss.kk'; expected one of: " + _known("loss")),
    ("file-unknown", "config file {p}: unknown config option 'loss.kk'; expected one of: " + _known("loss")),
    ("file-section", "config file {p}: config section 'loss' must be a mapping, got [1, 2]"),
])
def test_load_config_errors_name_the_layer(tmp_path, layer, error):
    p = tmp_path / "c.yaml"
    p.write_text({"file": "loss:\n  k: 0\n", "file-unknown": "loss:\n  kk: 1\n",
                  "file-section": "loss: [1, 2]\n"}.get(layer, "train:\n  epochs: 60\n"))
    base = {"base": {"loss": {"k": 0}}, "base-unknown": {"loss": {"kk": 1}}}.get(layer)
    overrides = ["loss.k=0"] if layer == "override" else None
    with pytest.raises(BauError) as info:
        load_config(str(p), overrides, base=base)
    assert str(info.value) == error.format(p=p)


def test_save_config_writes_the_resolved_config_in_order(tmp_path):
    cfg = _config(loss__k=3, data__sources=["x", "y"], model__last_stride=1, train__amp=False)
    path = tmp_path / "config.yaml"
    C.save_config(cfg, str(path))
    text = path.read_text(encoding="utf-8")
    assert [line[:-1] for line in text.splitlines() if not line.startswith(" ")] == [
        "data", "model", "loss", "optim", "train", "eval"]  # the config's order, not sorted
    assert yaml.safe_load(text) == cfg.to_dict()
    assert load_config(str(path)) == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # atomic: no temporary left behind
