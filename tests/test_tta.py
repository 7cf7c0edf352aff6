"""Augmentations: views, exact inverses for boxes and masks, the registry, predict_views."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afss_utils.coco import mask_to_xyxy
from afss_utils.teachers.base import Prediction
from afss_utils.tta import (
    Augmentation,
    Flip,
    Identity,
    Photometric,
    Rotate,
    Scale,
    TTAError,
    get_augmentation,
    parse_tta,
    predict_views,
)

GEOMETRIC = ["identity", "hflip", "vflip", "rot90", "rot180", "rot270", "scale0.75", "scale1.25"]
EXACT = ["identity", "hflip", "vflip", "rot90", "rot180", "rot270"]  # pixel permutations
PHOTOMETRIC = ["brightness", "contrast", "gamma", "saturation", "hue", "brightness0.7", "gamma1.5"]


def rect_image(
    shape: tuple[int, int], box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A dark noisy colour image with a bright rectangle at integer xyxy ``box``, and its mask."""
    h, w = shape
    rng = np.random.default_rng(0)
    image = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = True
    image[mask] = (230, 160, 90)
    return image, mask


# ----------------------------------------------------------------------------- conventions
def test_hflip_box_uses_half_open_pixel_convention():
    box = np.array([[2.0, 3.0, 7.0, 9.0]])
    out = get_augmentation("hflip").boxes_to_view(box, (20, 30))
    np.testing.assert_array_equal(out, [[30 - 7, 3, 30 - 2, 9]])
    out = get_augmentation("vflip").boxes_to_view(box, (20, 30))
    np.testing.assert_array_equal(out, [[2, 20 - 9, 7, 20 - 3]])


@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize("shape", [(24, 40), (40, 24)])
def test_view_image_and_box_map_agree(name, shape):
    """The box map sends the rectangle's box to where the image transform puts its pixels."""
    aug = get_augmentation(name)
    box = (5, 3, 17, 11)
    image, mask = rect_image(shape, box)
    view = aug.apply(image)
    assert view.dtype == np.uint8 and view.shape[:2] == aug.view_shape(shape)
    seen = mask_to_xyxy(view.max(axis=2) > 128)
    mapped = aug.boxes_to_view(np.array([box], float), shape)[0]
    tol = 0 if name in EXACT else 1.0
    np.testing.assert_allclose(seen, mapped, atol=tol)
    if name in EXACT:
        np.testing.assert_array_equal(
            aug.masks_to_view(mask[None], shape)[0], view.max(axis=2) > 128
        )


@pytest.mark.parametrize("name", GEOMETRIC + PHOTOMETRIC)
def test_predict_views_map_back_to_original_frame(name, bright_teacher_cls):
    image, mask = rect_image((30, 44), (6, 4, 25, 19))
    teacher = bright_teacher_cls()
    (ident, pred) = predict_views(
        teacher, image, parse_tta([name]) if name != "identity" else [Identity(), Identity()]
    )
    assert teacher.calls == 2
    assert pred.masks.shape == (1, 30, 44)
    np.testing.assert_array_equal(ident.boxes, [[6, 4, 25, 19]])
    if name in EXACT or isinstance(get_augmentation(name), Photometric):
        np.testing.assert_allclose(pred.boxes, ident.boxes, atol=1e-5)
        np.testing.assert_array_equal(pred.masks, ident.masks)
    else:
        np.testing.assert_allclose(pred.boxes, ident.boxes, atol=1.5)
        assert (pred.masks != ident.masks).mean() < 0.05
    np.testing.assert_allclose(pred.extra["mask_scores"], [0.5])


def test_predict_views_uses_predict_batch_when_present(bright_teacher_cls):
    class BatchTeacher(bright_teacher_cls):
        def __init__(self):
            super().__init__()
            self.batches = []

        def predict_batch(self, images, prompt="spacecraft"):
            self.batches.append(len(images))
            return [self.predict(im, prompt) for im in images]

    image, _ = rect_image((16, 20), (2, 2, 9, 9))
    teacher = BatchTeacher()
    preds = predict_views(teacher, image, parse_tta("vflip,rot90"))
    assert teacher.batches == [3] and len(preds) == 3


def test_empty_prediction_maps_back_empty():
    for name in GEOMETRIC:
        aug = get_augmentation(name)
        vh, vw = aug.view_shape((12, 18))
        out = aug.prediction_from_view(Prediction.empty(vh, vw), (12, 18))
        assert len(out) == 0 and out.masks.shape == (0, 12, 18)
        out = aug.prediction_from_view(Prediction.empty(vh, vw, with_masks=False), (12, 18))
        assert out.masks is None


@pytest.mark.parametrize("name", GEOMETRIC)
def test_boxes_beyond_the_view_come_back_clipped_to_the_image(name):
    """prediction_from_view promises boxes inside the original (H, W): a box overhanging the
    view by 5 px on every side maps back to the whole image; scores and extras untouched."""
    aug = get_augmentation(name)
    vh, vw = aug.view_shape((12, 18))
    pred = Prediction([[-5, -5, vw + 5, vh + 5]], [0.4], None, {"mask_scores": np.array([0.7])})
    out = aug.prediction_from_view(pred, (12, 18))
    np.testing.assert_allclose(out.boxes, [[0, 0, 18, 12]])
    assert out.scores.tolist() == pytest.approx([0.4]) and out.extra["mask_scores"][0] == 0.7


def test_a_box_overhanging_one_side_is_clipped_on_that_side_only():
    # hflip of a (12, 18) image: view box [-4, 2, 6, 8] -> [18 - 6, 2, 18 + 4, 8] -> x2 = 18
    out = Flip(True).prediction_from_view(Prediction([[-4, 2, 6, 8]], [0.9], None), (12, 18))
    np.testing.assert_allclose(out.boxes, [[12, 2, 18, 8]])
    out = Identity().prediction_from_view(Prediction([[3, -2.5, 7, 14]], [0.9], None), (12, 18))
    np.testing.assert_allclose(out.boxes, [[3, 0, 7, 12]])


def test_mask_of_wrong_view_size_is_an_error():
    with pytest.raises(TTAError, match="view"):
        Rotate(1).prediction_from_view(Prediction.empty(12, 18), (12, 18))


# ----------------------------------------------------------------------------- properties
@st.composite
def shape_and_box(draw):
    h = draw(st.integers(4, 60))
    w = draw(st.integers(4, 60))
    x1 = draw(st.floats(0, w - 1, allow_nan=False))
    y1 = draw(st.floats(0, h - 1, allow_nan=False))
    x2 = draw(st.floats(x1 + 0.5, w, allow_nan=False))
    y2 = draw(st.floats(y1 + 0.5, h, allow_nan=False))
    return (h, w), np.array([[x1, y1, x2, y2]])


@settings(max_examples=60, deadline=None)
@given(shape_and_box(), st.sampled_from(GEOMETRIC))
def test_box_forward_then_inverse_is_identity(sb, name):
    shape, box = sb
    aug = get_augmentation(name)
    view_box = aug.boxes_to_view(box, shape)
    vh, vw = aug.view_shape(shape)
    assert (
        np.all(view_box >= -1e-9)
        and np.all(view_box[:, [0, 2]] <= vw + 1e-9)
        and np.all(view_box[:, [1, 3]] <= vh + 1e-9)
    )
    assert np.all(view_box[:, 2:] > view_box[:, :2])
    np.testing.assert_allclose(aug.boxes_from_view(view_box, shape), box, atol=1e-9, rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 25),
    st.integers(1, 25),
    st.sampled_from(EXACT + ["scale1.25", "scale2"]),
    st.data(),
)
def test_mask_forward_then_inverse_is_identity(h, w, name, data):
    """Permutations and integer-ratio-free upscales lose nothing: the round trip is exact."""
    bits = data.draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))
    mask = np.array(bits, bool).reshape(1, h, w)
    aug = get_augmentation(name)
    view = aug.masks_to_view(mask, (h, w))
    assert view.shape == (1, *aug.view_shape((h, w))) and view.dtype == bool
    np.testing.assert_array_equal(aug.masks_from_view(view, (h, w)), mask)


@settings(max_examples=40, deadline=None)
@given(st.integers(12, 50), st.integers(12, 50), st.data())
def test_downscale_mask_round_trip_within_a_pixel(h, w, data):
    """scale0.75 drops pixels, so a rectangle comes back within one pixel of its edges."""
    x1 = data.draw(st.integers(0, w - 5))
    y1 = data.draw(st.integers(0, h - 5))
    x2 = data.draw(st.integers(x1 + 4, w))
    y2 = data.draw(st.integers(y1 + 4, h))
    mask = np.zeros((1, h, w), bool)
    mask[0, y1:y2, x1:x2] = True
    aug = Scale(0.75)
    back = aug.masks_from_view(aug.masks_to_view(mask, (h, w)), (h, w))
    np.testing.assert_allclose(mask_to_xyxy(back[0]), [x1, y1, x2, y2], atol=1)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 30), st.integers(2, 30), st.sampled_from(PHOTOMETRIC), st.integers(0, 2**16))
def test_photometric_keeps_geometry_dtype_and_shape(h, w, name, seed):
    image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    aug = get_augmentation(name)
    assert isinstance(aug, Photometric)
    view = aug.apply(image)
    assert view.shape == image.shape and view.dtype == np.uint8
    box = np.array([[0.5, 1.0, w - 0.25, h]])
    np.testing.assert_array_equal(aug.boxes_to_view(box, (h, w)), box)
    np.testing.assert_array_equal(aug.boxes_from_view(box, (h, w)), box)
    mask = image[None, ..., 0] > 127
    np.testing.assert_array_equal(
        aug.masks_from_view(aug.masks_to_view(mask, (h, w)), (h, w)), mask
    )


@pytest.mark.parametrize("name", PHOTOMETRIC)
def test_photometric_changes_pixels(name):
    image = np.random.default_rng(1).integers(20, 220, (16, 16, 3), dtype=np.uint8)
    assert not np.array_equal(get_augmentation(name).apply(image), image)


@pytest.mark.parametrize("gamma", [0.7, 1.5])
def test_gamma_is_255_times_the_normalised_intensity_to_the_gamma(gamma):
    """Every 8-bit level v becomes round(255 (v / 255) ** gamma): gamma < 1 lifts shadows."""
    levels = np.arange(256, dtype=np.uint8)
    image = np.repeat(levels.reshape(16, 16, 1), 3, axis=2)
    expected = np.rint(255 * (levels / 255.0) ** gamma).reshape(16, 16, 1)
    view = get_augmentation(f"gamma{gamma}").apply(image)
    assert np.abs(view.astype(float) - expected).max() <= 1  # float32 rounding at .5
    assert view[4, 0, 0] == round(255 * (64 / 255) ** gamma)  # 97 and 32 for v = 64


def test_rotations_compose_to_identity_on_non_square_image():
    image, _ = rect_image((10, 17), (1, 2, 6, 9))
    view = image
    for _ in range(4):
        view = Rotate(1).apply(view)
    np.testing.assert_array_equal(view, image)
    assert Rotate(1).apply(image).shape == (17, 10, 3)
    np.testing.assert_array_equal(Rotate(3).apply(Rotate(1).apply(image)), image)


# ----------------------------------------------------------------------------- registry
def test_parse_tta_identity_first_and_deduplicated():
    augs = parse_tta("vflip, hflip,vflip,identity")
    assert [a.name for a in augs] == ["identity", "vflip", "hflip"]
    assert [a.name for a in parse_tta(["scale0.75", "scale0.750", "gamma", "gamma0.7"])] == [
        "identity",
        "scale0.75",
        "gamma0.7",
    ]
    for spec in (None, "", "none", [], ()):
        augs = parse_tta(spec)
        assert len(augs) == 1 and isinstance(augs[0], Identity)
    mixed = parse_tta([Flip(horizontal=True), "hflip", Rotate(2)])
    assert [a.name for a in mixed] == ["identity", "hflip", "rot180"]


def test_registry_names_round_trip():
    for name in GEOMETRIC + [
        "brightness1.3",
        "contrast1.3",
        "gamma0.7",
        "saturation1.5",
        "hue0.05",
    ]:
        aug = get_augmentation(name)
        assert isinstance(aug, Augmentation)
        assert get_augmentation(aug.name).name == aug.name


@pytest.mark.parametrize("bad", ["flipx", "rot45", "scale", "scale0", "sharpen2", 3])
def test_unknown_or_malformed_names_are_errors(bad):
    with pytest.raises(TTAError):
        parse_tta([bad])


def test_teacher_returning_wrong_count_is_an_error(bright_teacher_cls):
    class Bad(bright_teacher_cls):
        def predict_batch(self, images, prompt="spacecraft"):
            return []

    image, _ = rect_image((8, 8), (1, 1, 4, 4))
    with pytest.raises(TTAError, match="0 predictions for 2 views"):
        predict_views(Bad(), image, parse_tta("hflip"))
