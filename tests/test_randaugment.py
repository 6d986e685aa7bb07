"""The released RandAugment (``data.randaugment_ops: released``): every op at its exact m = 10 value
against a brute-force / hand-computed reference on a tiny image, the draw rules, determinism."""
import math
import random
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from bau.core.errors import BauError
from bau.data import randaugment as ra
from bau.data.randaugment import PAPER_OPS, RELEASED_OPS, RandAugment, released_randaugment

pytestmark = pytest.mark.unit

OPS = {op.name: op for op in RELEASED_OPS}

# Values at magnitude 10 of 30: low + (10 / 30) (high - low).
M10 = {"TranslateX": 0.15, "TranslateY": 0.15, "ShearX": 0.1, "ShearY": 0.1, "Rotate": 10.0,
       "Posterize": 2.0, "Color": 0.7, "Contrast": 0.7, "Brightness": 0.7, "Sharpness": 0.7,
       "Solarize": 256 / 3, "SolarizeAdd": 110 / 3}
GEOMETRIC = {"TranslateX", "TranslateY", "ShearX", "ShearY", "Rotate"}


def noise(h=20, w=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def apply(name, a, value=None):
    value = OPS[name].value(10) if value is None else value
    return np.asarray(OPS[name].apply(Image.fromarray(a), value))


def warp_reference(a, source_of):
    """Nearest-neighbour warp: output pixel (x, y) takes input pixel ``source_of(x + .5, y + .5)``
    (floored), black where that falls outside."""
    h, w = a.shape[:2]
    out = np.zeros_like(a)
    for y in range(h):
        for x in range(w):
            sx, sy = source_of(x + 0.5, y + 0.5)
            sx, sy = math.floor(sx), math.floor(sy)
            if 0 <= sx < w and 0 <= sy < h:
                out[y, x] = a[sy, sx]
    return out


def test_sixteen_ops_in_the_released_order_and_values_at_m10():
    assert [op.name for op in RELEASED_OPS] == [
        "Identity", "TranslateX", "TranslateY", "ShearX", "ShearY", "Rotate", "AutoContrast", "Equalize",
        "Posterize", "Color", "Contrast", "Brightness", "Sharpness", "Invert", "Solarize", "SolarizeAdd"]
    for name, value in M10.items():
        assert OPS[name].value(10) == pytest.approx(value, abs=1e-12), name
    assert OPS["Solarize"].value(10) == pytest.approx(85.3333, abs=1e-4)
    assert OPS["SolarizeAdd"].value(10) == pytest.approx(36.6667, abs=1e-4)
    assert OPS["Rotate"].value(30) == 30 and OPS["Color"].value(0) == pytest.approx(0.1)
    assert {op.name for op in RELEASED_OPS if op.signed} == GEOMETRIC


@pytest.mark.parametrize("sign", [1, -1])
def test_translations_shift_by_a_fraction_of_the_size(sign):
    a = noise(20, 20)
    # 0.15 of 20 px = 3 px; a positive value moves the content left / up
    ref_x, ref_y = np.zeros_like(a), np.zeros_like(a)
    if sign > 0:
        ref_x[:, :17], ref_y[:17] = a[:, 3:], a[3:]
    else:
        ref_x[:, 3:], ref_y[3:] = a[:, :17], a[:17]
    assert np.array_equal(apply("TranslateX", a, sign * 0.15), ref_x)
    assert np.array_equal(apply("TranslateY", a, sign * 0.15), ref_y)


@pytest.mark.parametrize("sign", [1, -1])
def test_shears_against_brute_force(sign):
    a = noise(20, 12, seed=1)
    v = sign * M10["ShearX"]
    assert np.array_equal(apply("ShearX", a, v), warp_reference(a, lambda x, y: (x + v * y, y)))
    assert np.array_equal(apply("ShearY", a, v), warp_reference(a, lambda x, y: (x, y + v * x)))


@pytest.mark.parametrize("degrees", [10.0, -10.0])
def test_rotate_ten_degrees_counter_clockwise_about_the_centre(degrees):
    a = noise(20, 12, seed=2)
    h, w = a.shape[:2]
    t = math.radians(degrees)
    cx, cy = w / 2, h / 2

    def source(x, y):  # inverse rotation of the output point (image y axis points down)
        dx, dy = x - cx, y - cy
        return math.cos(t) * dx - math.sin(t) * dy + cx, math.sin(t) * dx + math.cos(t) * dy + cy

    assert np.array_equal(apply("Rotate", a, degrees), warp_reference(a, source))


def test_colour_ops_against_hand_computed_values():
    a = np.array([[[0, 85, 86], [91, 92, 100]], [[127, 128, 200], [240, 250, 255]]], dtype=np.uint8)
    # Solarize at 85.33: 85 stays (a threshold of 85 would invert it), 86 and above invert.
    assert apply("Solarize", a).tolist() == np.where(a < 85.34, a, 255 - a).tolist()
    assert apply("Solarize", a)[0, 0].tolist() == [0, 85, 169]
    # SolarizeAdd +36.67, fractions truncated, then solarize at 128: 91 -> 127 stays, 92 -> 128 -> 127,
    # 100 -> 136 -> 119, 240 -> 255 (clipped) -> 0.
    out = apply("SolarizeAdd", a)
    assert out[0, 1].tolist() == [127, 127, 119]
    assert out[1, 1].tolist() == [0, 0, 0] and out[0, 0].tolist() == [36, 121, 122]
    # Posterize 2 bits: keep the two high bits.
    assert (apply("Posterize", a)[1, 0].tolist() == [64, 128, 192]
            and apply("Posterize", a)[0, 1].tolist() == [64, 64, 64])
    assert np.array_equal(apply("Invert", a), 255 - a)
    assert np.array_equal(apply("Identity", a), a)


def test_enhance_ops_blend_at_0_7():
    a = noise(6, 5, seed=3)
    f = a.astype(np.float64)
    # ITU-R 601-2 luma in PIL's fixed point (its "L" conversion), rounded to an integer
    r, g, b = (a[..., c].astype(np.int64) for c in range(3))
    grey = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
    close = dict(atol=1.0, rtol=0)  # PIL stores the blend as integers
    np.testing.assert_allclose(apply("Brightness", a), 0.7 * f, **close)
    np.testing.assert_allclose(apply("Color", a), 0.3 * grey[..., None] + 0.7 * f, **close)
    mean_grey = int(grey.mean() + 0.5)
    np.testing.assert_allclose(apply("Contrast", a), 0.3 * mean_grey + 0.7 * f, **close)
    img = Image.fromarray(a)
    assert np.array_equal(apply("Sharpness", a), np.asarray(ImageEnhance.Sharpness(img).enhance(0.7)))
    flat = np.full((5, 5, 3), 77, dtype=np.uint8)  # nothing to sharpen or blur
    assert np.array_equal(apply("Sharpness", flat), flat)


def test_autocontrast_and_equalize():
    a = np.zeros((2, 3, 3), dtype=np.uint8)
    a[..., 0] = [[50, 100, 150], [50, 100, 150]]  # stretched to 0..255
    a[..., 1] = 9  # a constant channel is left alone
    out = apply("AutoContrast", a)
    assert out[0, :, 0].tolist() == [0, 127, 255] and (out[..., 1] == 9).all()
    img = Image.fromarray(noise(8, 8, seed=4))
    assert np.array_equal(np.asarray(OPS["Equalize"].apply(img, 0.0)), np.asarray(ImageOps.equalize(img)))


def test_draws_with_replacement_cover_all_ops_and_signs():
    aug = released_randaugment()
    assert (aug.num_ops, aug.magnitude) == (2, 10)
    torch.manual_seed(0)
    names, repeats, signs = Counter(), 0, {name: set() for name in GEOMETRIC}
    for _ in range(1500):
        draws = aug.draw()
        assert len(draws) == 2
        names.update(op.name for op, _ in draws)
        repeats += draws[0][0] is draws[1][0]
        for op, value in draws:
            assert abs(value) == pytest.approx(op.value(10))
            if op.signed:
                signs[op.name].add(value > 0)
            else:
                assert value == op.value(10)
    assert set(names) == set(OPS), "all 16 ops are drawn"
    # with replacement: the same op twice in 1/16 of the draws (~94 of 1500)
    assert 50 <= repeats <= 140
    assert all(s == {True, False} for s in signs.values()), "every geometric op is drawn with both signs"


def test_determinism_under_torch_seed_and_independence_from_python_random():
    aug = released_randaugment()
    img = Image.fromarray(noise(16, 8, seed=5))
    outs = []
    for s in range(12):
        torch.manual_seed(s)
        random.seed(1000 + s)
        outs.append(np.asarray(aug(img)))
    for s in (0, 7):
        torch.manual_seed(s)
        random.seed(-1)
        assert np.array_equal(np.asarray(aug(img)), outs[s])
    assert len({o.tobytes() for o in outs}) >= 8, "different seeds give different augmentations"


def test_bad_settings():
    with pytest.raises(BauError, match="magnitude"):
        released_randaugment(magnitude=31)
    with pytest.raises(BauError, match="num_ops"):
        released_randaugment(num_ops=-1)
    assert ra.MAX_MAGNITUDE == 30


# -- appendix A's op set (data.randaugment_ops: paper) -------------------------------------------
APPENDIX_A = ["AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color", "Contrast",
              "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY", "Cutout", "SolarizeAdd"]
COLOUR_DESTROYING = {"Invert", "Posterize", "Solarize", "SolarizeAdd"}


def test_paper_op_set_is_appendix_a_minus_the_colour_destroying_ops():
    names = [op.name for op in PAPER_OPS]
    assert names == [n for n in APPENDIX_A if n not in COLOUR_DESTROYING]
    assert len(names) == 12 and "Identity" not in names
    released = {op.name: op for op in RELEASED_OPS}
    for op in PAPER_OPS:  # the released value range wherever the released list has the op
        if op.name in released:
            r = released[op.name]
            assert (op.apply, op.low, op.high, op.signed) == (r.apply, r.low, r.high, r.signed), op.name
    cut = PAPER_OPS[-1]
    assert (cut.name, cut.low, cut.high, cut.signed) == ("Cutout", 0, 0.2, False)  # released Cutout: [0, 0.2]
    assert cut.value(10) == pytest.approx(0.2 / 3)


def brute_cutout(a, side, cx, cy):
    """Reference: the released CutoutAbs on a numpy array, centre given."""
    h, w = a.shape[:2]
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x1, y1 = min(w, x0 + side), min(h, y0 + side)
    out = a.copy()
    # PIL's rectangle includes both corner pixels (coordinates truncated to ints)
    out[y0:int(y1) + 1, x0:int(x1) + 1] = (125, 123, 114)
    return out


@pytest.mark.parametrize("hw", [(32, 16), (128, 64)])
def test_cutout_is_the_released_square_scaled_with_the_image(hw):
    h, w = hw
    a = noise(h, w, seed=7)
    side = PAPER_OPS[-1].value(10) * w
    torch.manual_seed(3)
    cx, cy = float(torch.rand(())) * w, float(torch.rand(())) * h
    torch.manual_seed(3)
    out = np.asarray(OPS_PAPER["Cutout"].apply(Image.fromarray(a), PAPER_OPS[-1].value(10)))
    assert np.array_equal(out, brute_cutout(a, side, cx, cy))
    grey = (out == (125, 123, 114)).all(-1) & ~(a == (125, 123, 114)).all(-1)
    # a square about 1/15 of the width on a side: its area scales with the image
    assert 0 < grey.sum() <= (int(side) + 2) ** 2
    assert OPS_PAPER["Cutout"].apply(Image.fromarray(a), 0.0) is not None


OPS_PAPER = {op.name: op for op in PAPER_OPS}


def test_paper_randaugment_draws_only_its_twelve_ops():
    aug = RandAugment(PAPER_OPS, 2, 10)
    torch.manual_seed(0)
    names = Counter(op.name for _ in range(1200) for op, _ in aug.draw())
    assert set(names) == set(OPS_PAPER)


# -- edge values of the value-taking ops, and the repr ------------------------------------------
def test_posterize_keeps_at_least_one_bit():
    a = np.array([[[0, 127, 128], [200, 255, 64]]], dtype=np.uint8)
    one_bit = (a & 0x80).tolist()
    for value in (1, 1.9, 0, -3):  # int(value) bits, never fewer than 1
        assert apply("Posterize", a, value).tolist() == one_bit, value
    assert apply("Posterize", a, 3).tolist() == (a & 0xE0).tolist()


def test_solarize_add_clips_both_ends_before_solarizing_at_128():
    a = np.array([[[0, 1, 127], [128, 200, 255]]], dtype=np.uint8)
    # + 0: unchanged, then solarize at 128 (a default threshold of PIL's, pinned here all the same)
    assert apply("SolarizeAdd", a, 0.0).tolist() == np.where(a < 128, a, 255 - a).tolist()
    # an integer value adds without wrapping around at 256: 127 + 100 = 227 -> 28; 200 + 100 -> 255 -> 0
    assert apply("SolarizeAdd", a, 100).tolist() == [[[100, 101, 28], [27, 0, 0]]]
    # a negative value clips at 0: 0 - 40 -> 0, 1 - 40 -> 0, 127 - 40 = 87, 255 - 40 = 215 -> 40
    assert apply("SolarizeAdd", a, -40).tolist() == [[[0, 0, 87], [88, 95, 40]]]
    assert apply("SolarizeAdd", a, -40.5).tolist() == [[[0, 0, 86], [87, 96, 41]]]


def test_repr_names_the_settings_and_the_ops():
    assert repr(RandAugment(PAPER_OPS[:2], 3, 7)) == "RandAugment(num_ops=3, magnitude=7, ops=[AutoContrast, Equalize])"
    assert repr(released_randaugment()).startswith("RandAugment(num_ops=2, magnitude=10, ops=[Identity, TranslateX, ")


def test_translations_scale_with_width_and_height_separately():
    a = noise(10, 20, seed=9)  # 10 high, 20 wide: 0.15 of the width is 3 px, of the height 1.5 px
    ref_x, ref_y = np.zeros_like(a), np.zeros_like(a)
    ref_x[:, :17] = a[:, 3:]
    assert np.array_equal(apply("TranslateX", a, 0.15), ref_x)
    ref_y[:8] = a[2:]  # 0.2 of 10 px = 2 px
    assert np.array_equal(apply("TranslateY", a, 0.2), ref_y)


def test_cutout_matches_the_reference_at_many_centres_including_clipped_ones():
    h, w = 128, 64
    a = noise(h, w, seed=8)
    value = 0.5  # a 32-px square: often clipped at the top or left border
    side = value * w
    clipped_x = clipped_y = 0
    for seed in range(40):
        torch.manual_seed(seed)
        cx, cy = float(torch.rand(())) * w, float(torch.rand(())) * h
        torch.manual_seed(seed)
        out = np.asarray(ra.cutout(Image.fromarray(a), value))
        assert np.array_equal(out, brute_cutout(a, side, cx, cy)), seed
        clipped_x += cx < side / 2
        clipped_y += cy < side / 2 + 1
    assert clipped_x >= 2 and clipped_y >= 2, "the seeds cover squares clipped at both borders"


def test_cutout_of_size_zero_leaves_the_image_and_the_generator_alone():
    a = noise(16, 8, seed=6)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    assert np.array_equal(np.asarray(ra.cutout(Image.fromarray(a), 0.0)), a)
    assert torch.equal(torch.get_rng_state(), state)


def test_defaults_and_boundary_settings():
    assert (RandAugment(PAPER_OPS).num_ops, RandAugment(PAPER_OPS).magnitude) == (2, 10)
    paper = ra.paper_randaugment()
    assert (paper.num_ops, paper.magnitude, paper.ops) == (2, 10, PAPER_OPS)
    custom = ra.paper_randaugment(3, 5)
    assert (custom.num_ops, custom.magnitude) == (3, 5)
    assert released_randaugment(1, 4).ops == RELEASED_OPS and released_randaugment(1, 4).magnitude == 4
    with pytest.raises(BauError, match=r"^RandAugment ops: expected at least one operation$"):
        RandAugment((), 2, 10)
    # zero ops: the image passes untouched; magnitudes 0 and 30 are the ends of the scale
    none = RandAugment(RELEASED_OPS, 0, 10)
    img = Image.fromarray(noise(4, 4))
    assert none.draw() == [] and none(img) is img
    for m in (0, 30):
        assert RandAugment(RELEASED_OPS, 1, m).magnitude == m
    for m in (-0.5, 30.5):
        with pytest.raises(BauError, match=r"^RandAugment magnitude: expected a value in \[0, 30\], got "):
            RandAugment(RELEASED_OPS, 1, m)
    with pytest.raises(BauError, match=r"^RandAugment num_ops: expected 0 or more operations, got -1$"):
        RandAugment(RELEASED_OPS, -1, 10)


def test_a_geometric_value_is_negative_only_below_one_half(monkeypatch):
    aug = RandAugment((OPS["Rotate"],), 1, 10)
    for u, expected in ((0.0, -10.0), (0.4999, -10.0), (0.5, 10.0), (0.9, 10.0)):
        monkeypatch.setattr(torch, "rand", lambda *args, u=u: torch.tensor(u))
        ((op, value),) = aug.draw()
        assert op.name == "Rotate" and value == pytest.approx(expected), u
