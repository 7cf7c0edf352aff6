"""Weight-free teachers: real masks on drawn images, documented confidence, empty case."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from afss_utils.coco import box_iou, mask_iou, mask_to_xyxy
from afss_utils.teachers import Prediction, Teacher, build_teacher
from afss_utils.teachers.classical import (
    boundary_support,
    edge_map,
    fill_holes,
    frame_contact,
    gradient_level,
    group_edges,
    largest_component,
    mask_confidence,
    threshold_confidence,
)

NAMES = ["classical_threshold", "classical_grabcut"]


def drawn_spacecraft(h=192, w=256, background=10, noise=4.0, seed=0):
    """A bright bus with two grey panels on a noisy dark background; returns (image, gt mask)."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), background, np.float32)
    gt = np.zeros((h, w), np.uint8)
    cx, cy = int(w * 0.55), int(h * 0.45)
    cv2.rectangle(gt, (cx - 20, cy - 16), (cx + 20, cy + 16), 1, -1)  # bus
    cv2.rectangle(gt, (cx - 70, cy - 8), (cx - 20, cy + 8), 1, -1)  # left panel
    cv2.rectangle(gt, (cx + 20, cy - 8), (cx + 70, cy + 8), 1, -1)  # right panel
    img[gt > 0] = (200, 190, 170)
    panels = gt.copy()
    panels[cy - 16 : cy + 17, cx - 20 : cx + 21] = 0
    img[panels > 0] = (90, 100, 150)
    img += rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), gt > 0


@pytest.fixture(scope="module")
def teachers():
    return {n: build_teacher(n) for n in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_finds_drawn_object(teachers, name):
    image, gt = drawn_spacecraft()
    teacher = teachers[name]
    assert isinstance(teacher, Teacher) and teacher.name == name and teacher.top_k == 1
    pred = teacher.predict(image, "spacecraft")
    assert len(pred) == 1
    assert pred.masks.shape == (1, *gt.shape) and pred.masks.dtype == bool
    assert mask_iou(pred.masks[0], gt) > 0.8
    assert box_iou(pred.boxes, mask_to_xyxy(gt)[None])[0, 0] > 0.8
    # Box is the tight box of the mask, inside the image.
    np.testing.assert_allclose(pred.boxes[0], mask_to_xyxy(pred.masks[0]))
    assert 0.5 < pred.scores[0] <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_blank_image_is_empty(teachers, name):
    for value in (0, 128):
        pred = teachers[name].predict(np.full((64, 80, 3), value, np.uint8))
        assert len(pred) == 0
        assert pred.masks.shape == (0, 64, 80)
        assert pred.to_results(1) == []


@pytest.mark.parametrize("name", NAMES)
def test_confidence_tracks_visibility(teachers, name):
    """A faint, noisy object must score lower than a clear one (the score is not a constant)."""
    clear, _ = drawn_spacecraft(noise=3.0)
    faint = (clear.astype(np.float32) * 0.25 + 30).astype(np.float32)
    faint += np.random.default_rng(1).normal(0, 12.0, faint.shape)
    faint = np.clip(faint, 0, 255).astype(np.uint8)
    s_clear = teachers[name].predict(clear).scores
    s_faint = teachers[name].predict(faint).scores
    s_faint = s_faint[0] if len(s_faint) else 0.0
    assert s_clear[0] > s_faint


@pytest.mark.parametrize("name", NAMES)
def test_batch_matches_single_and_rejects_bad_input(teachers, name):
    images = [drawn_spacecraft(seed=s)[0] for s in range(2)] + [np.zeros((40, 50, 3), np.uint8)]
    batch = teachers[name].predict_batch(images)
    assert [len(p) for p in batch] == [1, 1, 0]
    single = teachers[name].predict(images[1])
    np.testing.assert_array_equal(batch[1].masks, single.masks)
    with pytest.raises(ValueError, match="uint8 RGB"):
        teachers[name].predict(np.zeros((40, 50), np.uint8))


def test_top_k_none_and_constructor_kwargs():
    t = build_teacher("classical_threshold", top_k=None, device="cpu", min_contrast=20.0)
    assert t.top_k is None and t.min_contrast == 20.0
    assert isinstance(t.predict(drawn_spacecraft()[0]), Prediction)


def test_mask_confidence_terms():
    gray = np.full((100, 100), 20, np.uint8)
    square = np.zeros((100, 100), bool)
    square[30:60, 30:60] = True
    gray[square] = 220
    high = mask_confidence(gray, square)
    assert high > 0.9
    # Same mask, no contrast with its ring.
    assert mask_confidence(np.full((100, 100), 20, np.uint8), square) < 0.05
    # Ragged (low-solidity) mask on the same contrast scores lower.
    comb = square.copy()
    comb[30:60:2, 30:55] = False
    comb[:, 30] = square[:, 30]
    gray2 = np.where(comb, 220, 20).astype(np.uint8)
    assert mask_confidence(gray2, comb) < high
    # A frame-filling mask is background, not an object.
    assert mask_confidence(gray, np.ones((100, 100), bool)) < 0.05
    assert mask_confidence(gray, np.zeros((100, 100), bool)) == 0.0


def test_helpers():
    m = np.zeros((20, 20), bool)
    m[2:5, 2:5] = True
    m[8:18, 8:18] = True
    m[12:14, 12:14] = False  # a hole
    big = largest_component(m)
    assert big.sum() == 100 - 4 and not big[3, 3]
    assert fill_holes(big).sum() == 100
    assert not largest_component(np.zeros((5, 5), bool)).any()
    assert not largest_component(m, min_area=1000).any()


def smooth_clutter(h=192, w=256, seed=0):
    """A bright, smooth-textured (Earth-like: large-scale, optically blurred) background."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(60, 200, (h // 32, w // 32)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(field, (0, 0), 6)


def test_threshold_confidence_clean_above_cluttered(teachers):
    """The same object scores lower over a bright smooth clutter than on a black background."""
    clean, gt = drawn_spacecraft(noise=3.0)
    clutter = np.repeat(smooth_clutter()[..., None], 3, axis=2)
    cluttered = clean.astype(np.float32)
    cluttered[~gt] = clutter[~gt] + np.random.default_rng(2).normal(0, 3.0, clutter[~gt].shape)
    cluttered = np.clip(cluttered, 0, 255).astype(np.uint8)
    t = teachers["classical_threshold"]
    s_clean, p_clut = t.predict(clean).scores[0], t.predict(cluttered)
    assert len(p_clut) == 1 and s_clean > p_clut.scores[0]
    # The sharp object, not the smooth clutter, is what is segmented (a low-contrast panel
    # may be lost, clutter must not be taken).
    m = p_clut.masks[0]
    assert (m & gt).sum() > 0.8 * m.sum() and (m & gt).sum() > 0.4 * gt.sum()


def test_threshold_ignores_smooth_glare(teachers):
    """A blurred bright halo (bloom, glare) has no sharp edges: nothing or a low score."""
    h, w = 192, 256
    glare = np.zeros((h, w), np.float32)
    cv2.circle(glare, (w // 2, h // 2), 40, 230.0, -1)
    glare = cv2.GaussianBlur(glare, (0, 0), 15)
    glare += np.random.default_rng(0).normal(0, 3.0, glare.shape)
    image = np.repeat(np.clip(glare, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    pred = teachers["classical_threshold"].predict(image)
    clean = teachers["classical_threshold"].predict(drawn_spacecraft(noise=3.0)[0])
    assert len(pred) == 0 or pred.scores[0] < 0.5 * clean.scores[0]


def test_threshold_cues():
    gray = np.full((100, 120), 10, np.uint8)
    gray[30:60, 40:80] = 200
    edges = edge_map(gray, 2.0, 4.5, 8.0)
    assert edges.dtype == np.uint8 and set(np.unique(edges)) == {0, 1}
    assert not edge_map(np.full((50, 60), 90, np.uint8), 2.0, 4.5, 8.0).any()
    square = gray > 100
    assert boundary_support(square, edges) > 0.9
    shifted = np.roll(square, 15, axis=1)  # outline off the real edges
    assert boundary_support(shifted, edges) < 0.6
    assert frame_contact(square) == 0.0
    cut = np.zeros_like(square)
    cut[:, :20] = True  # a band along the left side
    assert frame_contact(cut) > 0.25
    assert frame_contact(np.zeros_like(square)) == 0.0
    good = threshold_confidence(gray, square, edges)
    assert 0.5 < good <= 1.0
    assert threshold_confidence(gray, shifted, edges) < good
    assert threshold_confidence(gray, np.zeros_like(square), edges) == 0.0
    grouped = group_edges(edges, 5, 7, 10)
    assert mask_iou(grouped, square) > 0.9
    assert not group_edges(np.zeros((40, 40), np.uint8), 5, 7, 10).any()


# ----------------------------------------------------------------------------- determinism
def _at_offset(a: np.ndarray, offset: int) -> np.ndarray:
    """A copy of ``a`` whose data starts ``offset`` elements into a fresh buffer."""
    buf = np.empty(a.size + offset, a.dtype)[offset:].reshape(a.shape)
    buf[...] = a
    return buf


def test_gradient_level_is_exact_ieee_arithmetic_at_any_memory_alignment():
    """cv2.magnitude rounds differently on its SIMD and scalar paths, picked by the buffers'
    alignment: the same Sobel images gave two levels and, through Canny, two pseudo-labels.
    The level must be the correctly rounded float32 sqrt(gx^2 + gy^2), whatever the alignment."""
    rng = np.random.default_rng(3)
    gx, gy = (rng.standard_normal((2, 256, 256)) * 40).astype(np.float32)
    sx, sy = gx[::2, ::2], gy[::2, ::2]
    exact = float(np.median(np.sqrt(sx * sx + sy * sy)))
    for i in range(8):
        for j in (0, 3):
            assert gradient_level(_at_offset(gx, i), _at_offset(gy, j)) == exact
    assert gradient_level(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32)) == 0.0


def test_edges_and_scores_do_not_depend_on_the_opencv_thread_count(tmp_path):
    """Render 9 of the lightbox frames on which parallel Canny used to give other edges (and
    scores in the 4th decimal) with 1 vs 8 threads; each must now be bit-identical."""
    from afss_utils.datasets import open_coco
    from afss_utils.synthetic import generate

    ds = open_coco(
        generate(tmp_path, "lightbox", 10, 11, size=(320, 256), progress=False, workers=1)
    )
    teacher = build_teacher("classical_threshold")
    before = cv2.getNumThreads()
    try:
        runs = []
        for threads in (1, 8):
            cv2.setNumThreads(threads)
            runs.append([teacher.predict(ds.load_image(i)) for i in ds.image_ids])
    finally:
        cv2.setNumThreads(before)
    assert cv2.getNumThreads() == before
    for a, b in zip(*runs, strict=True):
        assert a.scores.tobytes() == b.scores.tobytes()
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.masks, b.masks)


def test_single_threaded_cv2_restores_the_count_after_an_error():
    from afss_utils.teachers.classical import single_threaded_cv2

    before = cv2.getNumThreads()
    with pytest.raises(RuntimeError), single_threaded_cv2():
        assert cv2.getNumThreads() == 1
        raise RuntimeError("boom")
    assert cv2.getNumThreads() == before
