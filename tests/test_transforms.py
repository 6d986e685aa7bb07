"""The original / augmented / test pipelines (Sec. 4.2, appendix A, Tables 8-9)."""
import numpy as np
import pytest
import torch
import torchvision.transforms.autoaugment as autoaugment
from PIL import Image
from torchvision import transforms as T

from bau.data.transforms import (EXCLUDED_RANDAUGMENT_OPS, IMAGENET_MEAN, IMAGENET_STD, ColourSafeRandAugment,
                                 TwoViewTransform, build_augmented_transform, build_original_transform,
                                 build_test_transform, build_transforms, denormalize)
from bau.errors import BauError

H, W = 32, 16


def noise_image(seed=0, size=(20, 45)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8), "RGB")


def constant_image(rgb=(200, 60, 120), size=(20, 45)):
    return Image.new("RGB", size, rgb)


def erased_mask(t):
    """Pixels set to exactly 0 in every channel: only Random Erasing writes those (a constant image's
    normalised colour and the black padding are both non-zero)."""
    return (t == 0).all(dim=0)


def op_types(pipeline):
    """Every transform class in a Compose, looking inside RandomApply."""
    types = []
    for t in pipeline.transforms:
        types.append(type(t))
        if isinstance(t, T.RandomApply):
            types += [type(inner) for inner in t.transforms]
    return types


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
    # (Pad 10 + random crop) at least once, and nothing else.
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


def test_p0_never_erases_and_p1_erasing_always_erases():
    torch.manual_seed(0)
    never = build_augmented_transform(H, W, aug_prob=0.0)
    always = build_augmented_transform(H, W, aug_prob=1.0, randaugment=False, color_jitter=False)
    assert T.RandomErasing in op_types(always)
    img = constant_image()
    for _ in range(20):
        assert not erased_mask(never(img)).any()
        mask = erased_mask(always(img))
        assert mask.any()
        # one rectangle covering 2%..40% of the image
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(mask.sum()) == int(box) and 0.02 * H * W - 1 <= int(box) <= 0.4 * H * W + 1


def test_randaugment_excludes_the_colour_destroying_ops():
    space = ColourSafeRandAugment()._augmentation_space(31, (H, W))
    assert not set(space) & EXCLUDED_RANDAUGMENT_OPS
    full = T.RandAugment()._augmentation_space(31, (H, W))
    assert set(space) == set(full) - EXCLUDED_RANDAUGMENT_OPS
    assert {"Posterize", "Solarize"} <= set(full), "torchvision's op names changed; re-check the exclusion"
    assert {"ShearX", "Rotate", "Brightness", "Equalize"} <= set(space)


def test_randaugment_never_applies_an_excluded_op(monkeypatch):
    applied = []
    real_apply = autoaugment._apply_op

    def recording_apply(img, op_name, magnitude, interpolation, fill):
        applied.append(op_name)
        return real_apply(img, op_name, magnitude, interpolation, fill)

    monkeypatch.setattr(autoaugment, "_apply_op", recording_apply)
    torch.manual_seed(0)
    ra = ColourSafeRandAugment()
    assert (ra.num_ops, ra.magnitude) == (2, 9)
    img = noise_image(3)
    for _ in range(300):
        ra(img)
    assert len(applied) == 600
    assert set(applied) == set(ra._augmentation_space(31, (H, W))), "every allowed op is drawn, no other"


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


def test_switches_remove_exactly_their_op():
    full = op_types(build_augmented_transform(H, W))
    assert {ColourSafeRandAugment, T.ColorJitter, T.RandomErasing} <= set(full)
    for switch, op in (("randaugment", ColourSafeRandAugment), ("color_jitter", T.ColorJitter),
                       ("random_erasing", T.RandomErasing)):
        types = op_types(build_augmented_transform(H, W, **{switch: False}))
        assert op not in types and len(types) == len(full) - (1 if op is T.RandomErasing else 2)


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
