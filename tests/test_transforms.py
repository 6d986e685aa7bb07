"""The original / augmented / test pipelines (Sec. 4.2, appendix A, Tables 8-9)."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from bau.core.config import DataConfig
from bau.core.errors import BauError
from bau.data.randaugment import PAPER_OPS, RELEASED_OPS, RandAugment
from bau.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TwoViewTransform,
    build_augmented_transform,
    build_original_transform,
    build_randaugment,
    build_test_transform,
    build_train_transform,
    build_transforms,
    denormalize,
    pad_pixels,
)

pytestmark = pytest.mark.unit

H, W = 32, 16


def noise_image(seed=0, size=(20, 45)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8), "RGB")


def constant_image(rgb=(200, 60, 120), size=(20, 45)):
    return Image.new("RGB", size, rgb)


ERASE_FILL = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)  # what Random Erasing writes, normalised tensor


def erased_mask(t):
    """Pixels holding exactly the ImageNet mean numbers (0.485, 0.456, 0.406) in the normalised tensor:
    only Random Erasing writes those (a constant image's normalised colour and the black padding differ)."""
    return (t == ERASE_FILL).all(dim=0)


def black_border(t):
    """Rows on top, rows at the bottom, columns on the left, columns on the right that are padding black."""
    black = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
    is_black = torch.isclose(t, black.view(3, 1, 1), atol=1e-5).all(dim=0)
    rows, cols = is_black.all(dim=1).tolist(), is_black.all(dim=0).tolist()

    def run(flags):
        n = 0
        while n < len(flags) and flags[n]:
            n += 1
        return n

    return run(rows), run(rows[::-1]), run(cols), run(cols[::-1])


def op_types(pipeline):
    """Every transform class in a Compose, looking inside RandomApply."""
    types = []
    for t in pipeline.transforms:
        types.append(type(t))
        if isinstance(t, T.RandomApply):
            types += [type(inner) for inner in t.transforms]
    return types


def test_pad_scales_with_the_height():
    # round(10 * height / 256), Python's round: 10 at 256x128 (the released Pad(10)), 2 at 64x32
    assert [pad_pixels(h) for h in (256, 384, 128, 64, 32, 16)] == [10, 15, 5, 2, 1, 1]
    for h, w in ((64, 32), (256, 128)):
        pads = [t.padding for t in build_original_transform(h, w).transforms if isinstance(t, T.Pad)]
        pads += [t.padding for t in build_augmented_transform(h, w).transforms if isinstance(t, T.Pad)]
        assert pads == [pad_pixels(h)] * 2


def test_crop_jitter_is_at_most_the_scaled_pad():
    # At 64x32 the crop moves the image by at most 2 px in each direction, and does reach 2 px.
    torch.manual_seed(0)
    tf = build_original_transform(64, 32)
    widest = [0, 0, 0, 0]
    for _ in range(60):
        border = black_border(tf(constant_image((200, 60, 120), size=(32, 64))))
        assert max(border) <= 2
        widest = [max(a, b) for a, b in zip(widest, border)]
    assert widest == [2, 2, 2, 2]


def test_two_views_have_the_right_shapes_and_dtypes():
    tf = build_transforms(H, W)
    assert isinstance(tf, TwoViewTransform)
    orig, aug = tf(noise_image())
    for view in (orig, aug):
        assert view.shape == (3, H, W) and view.dtype == torch.float32


def test_test_transform_is_bicubic_resize_and_imagenet_normalisation():
    img = noise_image(1)
    out = build_test_transform(H, W)(img)
    expected = np.asarray(img.resize((W, H), Image.BICUBIC), dtype=np.float32) / 255.0
    expected = (expected - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert out.shape == (3, H, W)
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert torch.equal(out, build_test_transform(H, W)(img)), "no randomness at test time"


def test_original_view_flips_and_crops_but_keeps_colours():
    # Over a few draws the original view of a constant image shows its colour, the black padding
    # (pad + random crop) at least once, and nothing else.
    colour = (torch.tensor([200, 60, 120]) / 255.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    black = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
    torch.manual_seed(0)
    tf = build_original_transform(H, W)
    saw_padding = False
    for _ in range(10):
        pixels = tf(constant_image()).reshape(3, -1).T
        is_colour = torch.isclose(pixels, colour, atol=1e-5).all(dim=1)
        is_black = torch.isclose(pixels, black, atol=1e-5).all(dim=1)
        assert (is_colour | is_black).all()
        saw_padding |= bool(is_black.any())
    assert saw_padding


@pytest.mark.parametrize("switches", [dict(), dict(randaugment=False, color_jitter=False, random_erasing=False)])
def test_p0_or_all_switches_off_gives_an_original_view_draw(switches):
    p = 0.0 if not switches else 1.0
    aug = build_augmented_transform(H, W, aug_prob=p, **switches)
    orig = build_original_transform(H, W)
    assert op_types(aug) == op_types(orig)
    img = noise_image(2)
    for seed in range(5):
        torch.manual_seed(seed)
        a = aug(img)
        torch.manual_seed(seed)
        assert torch.equal(a, orig(img)), "same ops, same random numbers -> same tensor"


@pytest.mark.parametrize("ops", ["paper", "released"])
def test_p0_never_erases_and_p1_erasing_always_erases(ops):
    torch.manual_seed(0)
    never = build_augmented_transform(H, W, aug_prob=0.0, randaugment_ops=ops)
    always = build_augmented_transform(H, W, aug_prob=1.0, randaugment=False, color_jitter=False, randaugment_ops=ops)
    assert T.RandomErasing in op_types(always)
    img = constant_image()
    for _ in range(20):
        assert not erased_mask(never(img)).any()
        out = always(img)
        mask = erased_mask(out)
        assert mask.any()
        # one rectangle covering 2%..40% of the image
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(mask.sum()) == int(box) and 0.02 * H * W - 1 <= int(box) <= 0.4 * H * W + 1
        # the released fill: the mean's numbers written into the normalised tensor, not 0
        assert torch.equal(out[:, mask], ERASE_FILL.view(3, 1).expand(3, int(mask.sum())))


@pytest.mark.parametrize("ops", ["paper", "released"])
def test_full_pipeline_erases_with_the_mean_numbers(ops):
    # All three augmentations at p = 1: whatever RandAugment and ColorJitter did before, the erased
    # rectangle holds (0.485, 0.456, 0.406) (a fill of 0, or of the normalised mean colour, fails this).
    torch.manual_seed(1)
    pipeline = build_augmented_transform(H, W, aug_prob=1.0, randaugment_ops=ops)
    hits = sum(bool(erased_mask(pipeline(noise_image(5))).any()) for _ in range(10))
    assert hits == 10


def test_p1_augmentations_change_the_view():
    img = noise_image(4)
    orig = build_original_transform(H, W)
    for only in ("randaugment", "color_jitter"):
        switches = dict(randaugment=False, color_jitter=False, random_erasing=False)
        switches[only] = True
        aug = build_augmented_transform(H, W, aug_prob=1.0, **switches)
        assert len(op_types(aug)) == len(op_types(orig)) + 2  # RandomApply + the op inside it
        differ = 0
        for seed in range(10):
            torch.manual_seed(seed)
            a = aug(img)
            torch.manual_seed(seed)
            differ += not torch.allclose(a, orig(img))
        assert differ >= 8, only


@pytest.mark.parametrize("ops", ["paper", "released"])
def test_switches_remove_exactly_their_op(ops):
    rand_augment = RandAugment
    full = op_types(build_augmented_transform(H, W, randaugment_ops=ops))
    assert {rand_augment, T.ColorJitter, T.RandomErasing} <= set(full)
    for switch, op in (("randaugment", rand_augment), ("color_jitter", T.ColorJitter),
                       ("random_erasing", T.RandomErasing)):
        types = op_types(build_augmented_transform(H, W, randaugment_ops=ops, **{switch: False}))
        assert op not in types and len(types) == len(full) - (1 if op is T.RandomErasing else 2)


def test_op_set_selection_and_config_route():
    paper, released = build_randaugment("paper"), build_randaugment("released")
    assert paper.ops == PAPER_OPS and (paper.num_ops, paper.magnitude) == (2, 10)
    assert released.ops == RELEASED_OPS and (released.num_ops, released.magnitude) == (2, 10)
    with pytest.raises(BauError, match="data.randaugment_ops"):
        build_randaugment("autoaugment")
    with pytest.raises(BauError, match="data.randaugment_ops"):
        build_augmented_transform(H, W, randaugment_ops="Paper")
    cfg = DataConfig(height=H, width=W, randaugment_ops="released", aug_prob=0.3)
    two = build_train_transform(cfg)
    assert RandAugment in op_types(two.aug) and RandAugment not in op_types(two.orig)
    one = build_train_transform(cfg, two_view=False)
    assert RandAugment in op_types(one)
    assert [t.p for t in one.transforms if isinstance(t, (T.RandomApply, T.RandomErasing))] == [0.3, 0.3, 0.3]
    ra = [t for t in build_train_transform(DataConfig(height=H, width=W)).aug.transforms
          if isinstance(t, T.RandomApply)]
    assert ra[0].transforms[0].ops == PAPER_OPS


def test_config_validates_the_op_set():
    from bau.core.config import load_config

    assert load_config(None, ["data.randaugment_ops=released"]).data.randaugment_ops == "released"
    assert load_config(None, []).data.randaugment_ops == "paper"
    with pytest.raises(BauError, match="data.randaugment_ops: expected 'paper' or 'released', got 'full'"):
        load_config(None, ["data.randaugment_ops=full"])


def test_probability_reaches_every_op():
    pipeline = build_augmented_transform(H, W, aug_prob=0.25)
    probs = [t.p for t in pipeline.transforms if isinstance(t, (T.RandomApply, T.RandomErasing))]
    assert probs == [0.25, 0.25, 0.25]


def test_augment_original_augments_both_views():
    tf = build_transforms(H, W, augment_original=True)
    assert T.RandomErasing in op_types(tf.orig)
    assert T.RandomErasing not in op_types(build_transforms(H, W).orig)


def test_bad_options_are_one_line_errors():
    with pytest.raises(BauError, match="aug_prob"):
        build_augmented_transform(H, W, aug_prob=1.5)
    with pytest.raises(BauError, match="height"):
        build_test_transform(0, W)
    with pytest.raises(BauError, match="denormalize"):
        denormalize(torch.zeros(1, H, W))


def test_denormalize_inverts_normalisation_and_clamps():
    x = torch.rand(2, 3, 5, 4)
    normalised = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)(x)
    torch.testing.assert_close(denormalize(normalised), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(denormalize(normalised[0]), x[0], atol=1e-6, rtol=0)
    out = denormalize(torch.full((3, 2, 2), 10.0))
    assert out.max() == 1.0 and denormalize(torch.full((3, 2, 2), -10.0)).min() == 0.0


# ---------------------------------------------------------------- edge cases pinned by mutation testing (issue 17)


def signature(pipeline):
    """Each step of a Compose by type, with its probability and settings where it has them."""
    out = []
    for t in pipeline.transforms:
        if isinstance(t, T.RandomApply):
            inner = t.transforms[0]
            out.append(("apply", t.p, type(inner).__name__, tuple(getattr(inner, "ops", ()))))
        elif isinstance(t, T.RandomErasing):
            out.append(("erase", t.p, t.scale, t.ratio, tuple(t.value)))
        else:
            out.append(type(t).__name__)
    return out


SWITCH_CASES = [
    {},
    {"randaugment": False},
    {"color_jitter": False},
    {"random_erasing": False},
    {"aug_prob": 0.3, "randaugment_ops": "released"},
]


@pytest.mark.parametrize("options", SWITCH_CASES)
def test_every_option_reaches_both_views(options):
    reference = signature(build_augmented_transform(H, W, **options))
    for augment_original in (False, True):
        tf = build_train_transform(DataConfig(height=H, width=W, **options), augment_original=augment_original)
        assert signature(tf.aug) == reference
        orig = reference if augment_original else signature(build_original_transform(H, W))
        assert signature(tf.orig) == orig
        direct = build_transforms(H, W, augment_original=augment_original, **options)
        assert (signature(direct.orig), signature(direct.aug)) == (signature(tf.orig), signature(tf.aug))
    single = build_train_transform(DataConfig(height=H, width=W, **options), two_view=False)
    assert signature(single) == reference


def test_build_transforms_defaults_are_every_augmentation_at_half():
    full = signature(build_augmented_transform(H, W, 0.5, True, True, True, "paper"))
    assert [step[:3] for step in full if isinstance(step, tuple)] == [
        ("apply", 0.5, "RandAugment"), ("apply", 0.5, "ColorJitter"), ("erase", 0.5, (0.02, 0.4))]
    assert signature(build_transforms(H, W).aug) == full
    assert signature(build_augmented_transform(H, W)) == full


def test_one_pixel_images_are_valid_and_zero_is_named():
    for build in (build_test_transform, build_original_transform, build_augmented_transform):
        assert build(1, 1)(noise_image()).shape == (3, 1, 1)
    for h, w in ((0, 5), (5, 0)):
        with pytest.raises(BauError, match=rf"^data.height/data.width: expected positive image sizes, got {h}x{w}$"):
            build_test_transform(h, w)


def test_unknown_op_set_lists_the_known_ones():
    with pytest.raises(BauError, match=r"^data.randaugment_ops: expected one of paper, released, got 'x'$"):
        build_randaugment("x")


def test_denormalize_keeps_the_dtype_and_computes_in_it():
    x = torch.rand(3, 2, 2, dtype=torch.float64)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(3, 1, 1)
    assert torch.equal(denormalize(x), (x * std + mean).clamp(0.0, 1.0))
    assert denormalize(x.bfloat16()).dtype == torch.bfloat16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_denormalize_on_cuda():
    x = torch.rand(2, 3, 4, 4)
    out = denormalize(x.cuda())
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), denormalize(x))
