"""The synthetic multi-domain generator: Market layout, splits, determinism, domain shift, stats."""
from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from typing import Dict, List, Tuple

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bau.core.errors import BauError
from bau.data import synthetic as S

pytestmark = pytest.mark.unit

NAME = re.compile(r"^(\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
TINY = dict(num_domains=2, ids_per_domain=6, seed=3, workers=1)


def read_split(folder: str) -> List[Tuple[str, int, int]]:
    items = []
    for name in sorted(os.listdir(folder)):
        m = NAME.match(name)
        assert m is not None, f"{name} is not Market-named"
        items.append((os.path.join(folder, name), int(m.group(1)), int(m.group(2))))
    return items


def read_domain(root: str) -> Dict[str, List[Tuple[str, int, int]]]:
    return {split: read_split(os.path.join(root, sub)) for split, sub in S.SPLIT_DIRS.items()}


def all_files(root: str) -> Dict[str, bytes]:
    out = {}
    for folder, _, names in os.walk(root):
        for n in names:
            if n.endswith(".jpg"):
                with open(os.path.join(folder, n), "rb") as f:
                    out[os.path.relpath(os.path.join(folder, n), root)] = f.read()
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synth"))
    return out, S.generate(out, **TINY)


def test_layout_and_market_names(tiny):
    out, stats = tiny
    assert sorted(os.listdir(out)) == ["synth_a", "synth_b", "synthetic.json"]
    for name, info in stats["domains"].items():
        assert sorted(os.listdir(os.path.join(out, name))) == sorted(S.SPLIT_DIRS.values())
        splits = read_domain(os.path.join(out, name))
        for items in splits.values():
            assert items
            for _, pid, cam in items:
                assert 1 <= pid <= TINY["ids_per_domain"]
                assert 1 <= cam <= info["num_cameras"]
    # The project's own Market parser reads the folders unchanged.
    market = pytest.importorskip("bau.data.datasets.market1501")
    train, query, gallery, distractors = market.read_market_split(
        os.path.join(out, "synth_a", "bounding_box_train"), os.path.join(out, "synth_a", "query"),
        os.path.join(out, "synth_a", "bounding_box_test"))
    assert len(train) == stats["domains"]["synth_a"]["train"]["images"] and not distractors
    assert {c for _, _, c in query} <= set(range(stats["domains"]["synth_a"]["num_cameras"]))


def test_train_and_test_ids_are_disjoint_and_split_in_half(tiny):
    out, stats = tiny
    for name in stats["domains"]:
        splits = read_domain(os.path.join(out, name))
        train_ids = {p for _, p, _ in splits["train"]}
        query_ids = {p for _, p, _ in splits["query"]}
        gallery_ids = {p for _, p, _ in splits["gallery"]}
        assert not train_ids & (query_ids | gallery_ids)
        assert query_ids == gallery_ids
        assert len(train_ids) == 3 and len(query_ids) == 3
        assert train_ids | query_ids == set(range(1, 7))


def test_one_query_per_camera_and_every_query_has_a_cross_camera_match(tiny):
    out, stats = tiny
    for name in stats["domains"]:
        splits = read_domain(os.path.join(out, name))
        query_keys = [(p, c) for _, p, c in splits["query"]]
        assert len(query_keys) == len(set(query_keys)), "two queries of one id in one camera"
        gallery_cams = defaultdict(set)
        for _, p, c in splits["gallery"]:
            gallery_cams[p].add(c)
        for p, c in query_keys:
            assert gallery_cams[p] - {c}, f"query {p} c{c} has no gallery match from another camera"
        # Each camera that saw a test id contributes exactly one query.
        assert {(p, c) for p, cams in gallery_cams.items() for c in cams} <= set(query_keys)
        # Train ids, too, are seen by at least two cameras.
        train_cams = defaultdict(set)
        for _, p, c in splits["train"]:
            train_cams[p].add(c)
        assert all(len(c) >= 2 for c in train_cams.values())


def test_images_are_jpeg_of_the_requested_size(tiny, tmp_path):
    out, stats = tiny
    path = read_domain(os.path.join(out, "synth_a"))["query"][0][0]
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (64, 128)
    S.generate(str(tmp_path), num_domains=1, ids_per_domain=2, height=160, width=80, workers=1)
    sizes = {Image.open(p).size for items in read_domain(str(tmp_path / "synth_a")).values() for p, _, _ in items}
    assert sizes == {(80, 160)}


def test_same_seed_same_bytes_whatever_the_worker_count_and_other_seed_differs(tiny, tmp_path):
    out, _ = tiny
    reference = all_files(out)
    again = str(tmp_path / "again")
    S.generate(again, **{**TINY, "workers": 2})
    assert all_files(again) == reference
    other = str(tmp_path / "other")
    S.generate(other, **{**TINY, "seed": 4})
    other_files = all_files(other)
    assert other_files.keys() != reference.keys() or any(other_files[k] != v for k, v in reference.items())
    same_names = set(other_files) & set(reference)
    assert all(other_files[k] != reference[k] for k in same_names)


def domain_statistics(root: str) -> Tuple[np.ndarray, float, float]:
    """Mean RGB, mean saturation and mean absolute horizontal gradient (sharpness) of a domain."""
    images = [np.asarray(Image.open(p), dtype=np.float64) for items in read_domain(root).values() for p, _, _ in items]
    stack = np.stack(images)
    saturation = (stack.max(-1) - stack.min(-1)).mean()
    sharpness = np.abs(np.diff(stack.mean(-1), axis=2)).mean()
    return stack.mean((0, 1, 2)), float(saturation), float(sharpness)


def test_domains_differ_measurably(tmp_path):
    S.generate(str(tmp_path), num_domains=4, ids_per_domain=4, seed=0, workers=1)
    stats = {d: domain_statistics(str(tmp_path / d)) for d in ("synth_a", "synth_b", "synth_c", "synth_d")}
    names = list(stats)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            mean_i, sat_i, _ = stats[names[i]]
            mean_j, sat_j, _ = stats[names[j]]
            assert np.abs(mean_i - mean_j).max() > 5 or abs(sat_i - sat_j) > 5, (names[i], names[j])
    # The low-resolution dusk domain is blurrier, darker and greyer than the sunny campus.
    assert stats["synth_d"][2] < 0.7 * stats["synth_a"][2]
    assert stats["synth_d"][0].mean() < stats["synth_a"][0].mean() - 10
    assert stats["synth_d"][1] < 0.7 * stats["synth_a"][1]
    # Domain habits show in the layout: camera counts differ.
    meta = json.loads((tmp_path / "synthetic.json").read_text())
    assert [meta["domains"][d]["num_cameras"] for d in names] == [6, 8, 4, 3]


def test_stats_json_and_table_match_the_files(tiny):
    out, stats = tiny
    with open(os.path.join(out, "synthetic.json")) as f:
        stored = json.load(f)
    assert stored == json.loads(json.dumps(stats))
    assert stored["seed"] == TINY["seed"] and stored["version"] == S.GENERATOR_VERSION
    assert stored["options"]["ids_per_domain"] == 6 and stored["options"]["height"] == 128
    for name, info in stored["domains"].items():
        splits = read_domain(os.path.join(out, name))
        for split, items in splits.items():
            assert info[split] == {"ids": len({p for _, p, _ in items}), "images": len(items),
                                   "cameras": len({c for _, _, c in items})}
        assert info["style"]["description"]
    table = S.format_stats(stats)
    assert "synth_a" in table and "synth_b" in table and "train" in table and "gallery" in table
    a = stored["domains"]["synth_a"]
    assert f"{a['train']['ids']:>8} / {a['train']['images']:>6} / {a['train']['cameras']:>2}" in table
    total = sum(d["gallery"]["images"] for d in stored["domains"].values())
    assert f"/ {total:>6} /" in table.splitlines()[-2]


def test_existing_output_is_reused_or_refused(tiny, tmp_path):
    out, stats = tiny
    before = os.path.getmtime(os.path.join(out, "synthetic.json"))
    assert S.generate(out, **TINY) == json.loads(json.dumps(stats))  # same options: reused as is
    assert os.path.getmtime(os.path.join(out, "synthetic.json")) == before
    with pytest.raises(BauError, match="already exists"):
        S.generate(out, **{**TINY, "seed": 9})
    assert not [n for n in os.listdir(out) if n.startswith(".")], "no partial folder left behind"
    fresh = S.generate(str(tmp_path), **{**TINY, "num_domains": 1})
    again = S.generate(str(tmp_path), **{**TINY, "num_domains": 1, "seed": 9}, overwrite=True)
    assert again["seed"] == 9 and fresh["seed"] == 3


@pytest.mark.parametrize("bad", [dict(height=100), dict(width=32), dict(ids_per_domain=1), dict(num_domains=0),
                                 dict(images_per_id=3), dict(num_cameras=1), dict(num_cameras=10)])
def test_bad_options_raise_one_line_errors(tmp_path, bad):
    with pytest.raises(BauError) as err:
        S.generate(str(tmp_path), **{**TINY, **bad})
    assert "\n" not in str(err.value) and "synthetic option" in str(err.value)


def test_size_options_images_per_id_and_cameras(tmp_path):
    stats = S.generate(str(tmp_path), num_domains=1, ids_per_domain=4, images_per_id=5, num_cameras=2, workers=1)
    splits = read_domain(str(tmp_path / "synth_a"))
    per_id = defaultdict(int)
    for items in splits.values():
        for _, p, c in items:
            per_id[p] += 1
            assert c in (1, 2)
    assert dict(per_id) == {p: 5 for p in range(1, 5)}
    assert stats["domains"]["synth_a"]["num_cameras"] == 2


def test_domain_names():
    assert S.domain_names(3) == ["synth_a", "synth_b", "synth_c"]
    names = S.domain_names(28)
    assert names[25:] == ["synth_z", "synth_aa", "synth_ab"] and len(set(names)) == 28
    # Domains beyond the presets get a random style of their own, fixed by the seed.
    assert S.domain_style(0, 7) == S.domain_style(0, 7) and S.domain_style(0, 7) != S.domain_style(1, 7)


def test_colour_transform_matches_per_pixel_formula():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 255, (3, 2, 3)).astype(np.float32)
    light = rng.uniform(0.5, 1.5, (3, 2)).astype(np.float32)
    gains = np.array([1.1, 0.9, 0.8])
    out = S.colour_transform(rgb, light, gains, saturation=0.6, contrast=1.2)
    for y in range(3):
        for x in range(2):
            c = light[y, x] * gains * rgb[y, x].astype(np.float64)
            grey = c.mean()
            expected = 1.2 * (grey + 0.6 * (c - grey) - 128.0) + 128.0
            np.testing.assert_allclose(out[y, x], expected, rtol=1e-5, atol=1e-3)
    # Identity settings leave the image unchanged.
    np.testing.assert_allclose(S.colour_transform(rgb, np.ones((3, 2)), np.ones(3), 1.0, 1.0), rgb, atol=1e-4)


def test_choose_follows_the_weights():
    rng = np.random.default_rng(0)
    weights = [1.0, 3.0, 0.0, 6.0]
    counts = np.bincount([S._choose(rng, weights) for _ in range(20000)], minlength=4)
    np.testing.assert_allclose(counts / counts.sum(), np.array(weights) / 10.0, atol=0.015)
    assert counts[2] == 0


def draw_on_blank(person: S.Person, view: str) -> np.ndarray:
    canvas = Image.new("RGB", (128, 256), (0, 255, 0))
    S.draw_person(ImageDraw.Draw(canvas), person, view, 0.0, 64.0, 10.0, 230.0)
    return np.asarray(canvas)


def count_colour(img: np.ndarray, color: Tuple[int, int, int]) -> np.ndarray:
    return (img == np.array(color)).all(-1)


def test_viewpoint_changes_what_is_visible():
    base = S.sample_person(np.random.default_rng(5), S.PRESETS[0])
    logo = (255, 0, 255)
    person = S.Person(**{**base.__dict__, "pattern": "logo", "second": logo, "bag": "shoulder", "bag_side": "L",
                         "bag_color": (0, 0, 255), "top": (200, 10, 10), "bottom": (10, 10, 90), "hair_style": "short"})
    front, back = draw_on_blank(person, "front"), draw_on_blank(person, "back")
    left, right = draw_on_blank(person, "left"), draw_on_blank(person, "right")
    assert count_colour(front, logo).sum() > 20 and count_colour(back, logo).sum() == 0
    assert count_colour(left, logo).sum() == 0
    # The bag hangs on the person's left: image right from the front, image left from the back,
    # visible from the left side, hidden (only a shaded corner) from the right side.
    bag_front, bag_back = count_colour(front, (0, 0, 255)), count_colour(back, (0, 0, 255))
    cols = np.arange(128)
    assert (bag_front.sum(0) * cols).sum() / bag_front.sum() > 64
    assert (bag_back.sum(0) * cols).sum() / bag_back.sum() < 64
    assert count_colour(left, (0, 0, 255)).sum() > 50 and count_colour(right, (0, 0, 255)).sum() == 0
    # The torso colour shows from every side; side views are narrower.
    widths = {v: count_colour(im, (200, 10, 10)).any(0).sum() for v, im in
              {"front": front, "back": back, "left": left, "right": right}.items()}
    assert min(widths.values()) > 10 and widths["left"] < widths["front"]


def test_identity_is_fixed_by_seed_domain_and_pid():
    style = S.PRESETS[1]
    a = S.sample_person(np.random.default_rng([0, 1, 1, 7]), style)
    b = S.sample_person(np.random.default_rng([0, 1, 1, 7]), style)
    c = S.sample_person(np.random.default_rng([0, 1, 1, 8]), style)
    assert a == b and a != c


def load_benchmark():
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                        "synthetic_difficulty.py")
    spec = importlib.util.spec_from_file_location("synthetic_difficulty", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_histograms_and_hellinger_distance():
    bench = load_benchmark()
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 5)), rng.random((4, 5))
    brute = np.array([[np.sqrt(((np.sqrt(x) - np.sqrt(y)) ** 2).sum()) for y in b] for x in a])
    np.testing.assert_allclose(bench.hellinger_distance(a, b), brute, atol=1e-9)
    img = rng.integers(0, 256, (12, 8, 3), dtype=np.uint8)
    h = bench.hsv_stripe_histogram(img, 3, (4, 2, 2), centre=False)
    assert h.shape == (3 * 16,)
    np.testing.assert_allclose(h.reshape(3, 16).sum(1), 1.0)
    # One stripe of a single colour puts all its mass in the bin of that colour's HSV value.
    flat = np.zeros((6, 4, 3), dtype=np.uint8)
    flat[..., 0] = 255  # pure red: H=0, S=255, V=255
    h = bench.hsv_stripe_histogram(flat, 1, (4, 2, 2), centre=False)
    assert h[0 * 4 + 1 * 2 + 1] == 1.0 and h.sum() == 1.0


def test_benchmark_runs_on_generated_data(tiny, tmp_path, capsys):
    out, _ = tiny
    bench = load_benchmark()
    assert bench.main(["--data", out, "--target", "synth_b", "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert set(result) == {"synth_b"} and set(result["synth_b"]) == set(bench.BASELINES)
    for r in result["synth_b"].values():
        assert 0.0 <= r["mAP"] <= 100.0 and 0.0 <= r["rank1"] <= r["rank5"] <= 100.0
    assert "best histogram mAP" in capsys.readouterr().out
