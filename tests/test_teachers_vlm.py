"""VLM teachers end to end on tiny random-init checkpoints (built by tests/tiny_models.py).

Random weights mean the detections are meaningless; what is tested is the plumbing: coordinate
frames (boxes inside the image, masks of the image size for non-square images), top-k, the empty
case, SAM re-prompting and the missing-weights error.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from afss_utils.teachers import Prediction, Teacher, WeightsNotFoundError, build_teacher

H, W = 48, 80  # non-square on purpose: catches swapped axes and OWLv2's square padding


@pytest.fixture(scope="session")
def tiny(tiny_vlm_models):
    return tiny_vlm_models


def make_teacher(tiny, name, **kw):
    detector = tiny["grounding_dino"] if name == "grounded_sam2" else tiny["owlv2"]
    return build_teacher(name, detector=str(detector), segmenter=str(tiny["sam2"]), **kw)


@pytest.fixture(scope="session")
def teachers(tiny):
    # Threshold 0 keeps every query, so top-k selection is exercised on random weights.
    return {
        "grounded_sam2": make_teacher(tiny, "grounded_sam2", box_threshold=0.0, text_threshold=0.0),
        "owlv2_sam2": make_teacher(tiny, "owlv2_sam2", box_threshold=0.0),
    }


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 30, (H, W, 3), dtype=np.uint8)
    img[15:30, 30:60] = (200, 190, 170)  # a bright "bus"
    return img


NAMES = ["grounded_sam2", "owlv2_sam2"]


@pytest.mark.parametrize("name", NAMES)
def test_top1_in_image_frame(teachers, image, name):
    t = teachers[name]
    assert isinstance(t, Teacher) and t.name == name and t.top_k == 1
    pred = t.predict(image, "Spacecraft")
    assert isinstance(pred, Prediction) and len(pred) == 1
    b = pred.boxes[0]
    assert 0 <= b[0] <= b[2] <= W and 0 <= b[1] <= b[3] <= H
    assert pred.masks.shape == (1, H, W) and pred.masks.dtype == bool
    assert 0 <= pred.scores[0] <= 1
    assert pred.extra["mask_scores"].shape == (1,) and 0 <= pred.extra["mask_scores"][0] <= 1
    rec = pred.to_results(7)[0]
    assert rec["image_id"] == 7 and "mask_scores" in rec and rec["segmentation"]["size"] == [H, W]


@pytest.mark.parametrize("name", NAMES)
def test_top_k_keeps_best_in_order(teachers, image, name):
    t = teachers[name]
    t.top_k = None
    try:
        everything = t.predict(image)
    finally:
        t.top_k = 1
    best = t.predict(image)
    assert len(everything) > 1
    assert np.all(np.diff(everything.scores) <= 0)
    np.testing.assert_allclose(best.scores[0], everything.scores.max())
    np.testing.assert_allclose(best.boxes[0], everything.boxes[0])
    assert everything.masks.shape == (len(everything), H, W)


@pytest.mark.parametrize("name", NAMES)
def test_nothing_above_threshold_is_empty(tiny, image, name):
    t = make_teacher(tiny, name, box_threshold=1.01)
    pred = t.predict(image)
    assert len(pred) == 0 and pred.masks.shape == (0, H, W) and pred.to_results(1) == []
    assert [len(p) for p in t.predict_batch([image, image[:32, :40]])] == [0, 0]


@pytest.mark.parametrize("name", NAMES)
def test_batch_matches_single(teachers, image, name):
    t = teachers[name]
    other = np.ascontiguousarray(image[::-1, :, :])
    batch = t.predict_batch([image, other])
    assert len(batch) == 2 and t.predict_batch([]) == []
    for im, got in zip([image, other], batch, strict=True):
        single = t.predict(im)
        np.testing.assert_allclose(got.boxes, single.boxes, atol=1e-2)
        assert got.masks.shape == (1, H, W)


@pytest.mark.parametrize("name", NAMES)
def test_batch_of_different_sizes_matches_single(teachers, image, name):
    # a non-square image and its rot90 in one batch (what TTA sends): each in its own frame
    t = teachers[name]
    turned = np.ascontiguousarray(np.rot90(image))
    batch = t.predict_batch([image, turned, image])
    for im, got in zip([image, turned, image], batch, strict=True):
        single = t.predict(im)
        np.testing.assert_allclose(got.boxes, single.boxes, atol=1e-2)
        np.testing.assert_allclose(got.scores, single.scores, atol=1e-4)
        assert got.masks.shape == (1, *im.shape[:2])


@pytest.mark.parametrize("name", NAMES)
def test_segment_boxes(teachers, image, name):
    boxes = np.array([[30, 15, 60, 30], [0, 0, W, H], [-5, -5, 500, 500]], np.float32)
    masks, scores = teachers[name].segment_boxes(image, boxes)
    assert masks.shape == (3, H, W) and masks.dtype == bool
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    masks0, scores0 = teachers[name].segment_boxes(image, np.zeros((0, 4)))
    assert masks0.shape == (0, H, W) and scores0.shape == (0,)


def test_rejects_bad_image(teachers):
    with pytest.raises(ValueError, match="uint8 RGB"):
        teachers["grounded_sam2"].predict(np.zeros((H, W), np.uint8))


def test_missing_local_dir_fails_fast(tiny, tmp_path):
    missing = tmp_path / "no_such_model"
    t0 = time.perf_counter()
    with pytest.raises(WeightsNotFoundError, match="no_such_model") as err:
        build_teacher("grounded_sam2", detector=str(missing), segmenter=str(tiny["sam2"]))
    assert "teacher_options.<set>.grounded_sam2.detector in params/grids.yaml" in str(err.value)
    with pytest.raises(WeightsNotFoundError, match="segmenter"):
        build_teacher("owlv2_sam2", detector=str(tiny["owlv2"]), segmenter=str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsNotFoundError, match="config.json"):
        build_teacher("owlv2_sam2", detector=str(empty), segmenter=str(tiny["sam2"]))
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("name", NAMES)
def test_missing_hub_id_offline_fails_fast(monkeypatch, tmp_path, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    t0 = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as err:
        build_teacher(name, detector="afss-test/not-a-model")
    msg = str(err.value)
    assert (
        "afss-test/not-a-model" in msg and "huggingface-cli download afss-test/not-a-model" in msg
    )
    assert f"teacher_options.<set>.{name}.detector in params/grids.yaml" in msg
    assert time.perf_counter() - t0 < 10


# ----------------------------------------------------------------------------- exact geometry
def test_owlv2_known_normalised_box_lands_on_the_exact_pixel_box(tiny, image):
    """Stub OWLv2's raw output with one confident query whose normalised (cx, cy, w, h) refers to
    the padded max(H, W) square: the pixel box must be exact. A ``target_sizes`` of (H, W), or
    forgetting the square padding, gives y's scaled by 48 instead of 80 and fails here."""
    import torch

    t = make_teacher(tiny, "owlv2_sam2", box_threshold=0.5)
    real = t.detector

    def stub(**inputs):
        out = real(**inputs)
        out.pred_boxes = torch.zeros_like(out.pred_boxes)
        out.pred_boxes[:, :] = torch.tensor([0.5, 0.25, 0.25, 0.125])
        out.logits = torch.full_like(out.logits, -20.0)
        out.logits[:, 3, 0] = 20.0  # one patch-box above threshold
        return out

    t.detector = stub
    side = max(H, W)
    pred = t.predict(image, "spacecraft")
    np.testing.assert_allclose(
        pred.boxes[0], [0.375 * side, 0.1875 * side, 0.625 * side, 0.3125 * side], atol=1e-3
    )
    # rot90 of the non-square image in one batch with the original: each its own frame
    (a, b) = t.predict_batch([image, np.ascontiguousarray(np.rot90(image))], "spacecraft")
    np.testing.assert_allclose(a.boxes[0], pred.boxes[0], atol=1e-3)
    # the rotated view is W x H: same square side, so the same box, clipped to its width H
    np.testing.assert_allclose(
        b.boxes[0], [0.375 * side, 0.1875 * side, H, 0.3125 * side], atol=1e-3
    )
    assert a.masks.shape == (1, H, W) and b.masks.shape == (1, W, H)


@pytest.mark.parametrize("name", NAMES)
def test_loading_from_a_local_folder_touches_no_network(tiny, name, no_network):
    t = make_teacher(tiny, name)
    assert len(t.predict(np.zeros((H, W, 3), np.uint8) + 20, "spacecraft")) <= 1


@pytest.mark.parametrize("half", ["grounding_dino", "sam2"])
def test_half_precision_checkpoint_predicts_on_cpu(tiny, image, tmp_path, half):
    """transformers 5 loads a checkpoint in its saved dtype; a float16 Grounding DINO or SAM 2
    met the processors' float32 inputs (dtype mismatch). The teacher loads them as float32."""
    import shutil

    import torch
    from transformers import AutoModelForZeroShotObjectDetection, Sam2Model

    cls = AutoModelForZeroShotObjectDetection if half == "grounding_dino" else Sam2Model
    folder = tmp_path / half
    shutil.copytree(tiny[half], folder)
    cls.from_pretrained(folder).half().save_pretrained(folder)
    assert cls.from_pretrained(folder).dtype == torch.float16  # the checkpoint really is half
    sources = {**tiny, half: folder}
    teacher = build_teacher(
        "grounded_sam2",
        detector=str(sources["grounding_dino"]),
        segmenter=str(sources["sam2"]),
        box_threshold=0.0,
        text_threshold=0.0,
    )
    pred = teacher.predict(image, "spacecraft")
    assert len(pred) == 1 and pred.masks.shape == (1, H, W)


def test_enable_tf32_sets_the_flags_on_cuda_only():
    import torch

    from afss_utils.teachers._hf import enable_tf32

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        enable_tf32("cpu")
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        enable_tf32("cuda")
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        enable_tf32("cuda:1")
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("name", NAMES)
def test_mask_score_option_scores_labels_by_sam(tiny, teachers, image, name):
    """score='mask' (the authors' label files): ``scores`` is SAM's mask score, the detector's
    box score is kept as ``box_score``; the default stays the box score."""
    thresholds = {"text_threshold": 0.0} if name == "grounded_sam2" else {}
    masked = make_teacher(tiny, name, box_threshold=0.0, score="mask", **thresholds)
    by_box, by_mask = teachers[name].predict(image), masked.predict(image)
    assert teachers[name].score == "box" and "box_score" not in by_box.extra
    np.testing.assert_array_equal(by_mask.boxes, by_box.boxes)  # top-1 still by the detector
    np.testing.assert_allclose(by_mask.scores, by_box.extra["mask_scores"])
    np.testing.assert_allclose(by_mask.extra["box_score"], by_box.scores)
    with pytest.raises(ValueError, match="score"):
        make_teacher(tiny, name, score="iou")


def test_mask_scored_tta_fuses_on_box_scores_then_scores_by_the_reprompted_mask(
    tiny, teachers, image
):
    """The authors' refinement: WBF on the detector scores, SAM re-prompted with the fused box,
    the label's score is that mask's score and ``box_score`` the fused box score."""
    from afss_utils.fusion import FusionConfig
    from afss_utils.pseudolabel import label_image
    from afss_utils.tta import parse_tta

    masked = make_teacher(
        tiny, "grounded_sam2", box_threshold=0.0, text_threshold=0.0, score="mask"
    )
    fusion = FusionConfig(mask_fusion="reprompt")
    augs = parse_tta(["vflip"])
    ref = label_image(teachers["grounded_sam2"], image, augs, fusion)
    got = label_image(masked, image, augs, fusion)
    np.testing.assert_allclose(got.boxes, ref.boxes)
    np.testing.assert_allclose(got.extra["box_score"], ref.scores)
    np.testing.assert_allclose(got.scores, ref.extra["mask_scores"])
    _, again = masked.segment_boxes(image, got.boxes)
    np.testing.assert_allclose(got.scores, again, rtol=1e-5)


def test_teacher_turns_tf32_on_for_its_device_when_built_and_unpickled(tiny, monkeypatch):
    import pickle

    from afss_utils.teachers import detector_sam2

    seen = []
    monkeypatch.setattr(detector_sam2, "enable_tf32", seen.append)
    teacher = make_teacher(tiny, "owlv2_sam2")
    pickle.loads(pickle.dumps(teacher))  # what a Ray labelling actor receives
    assert seen == ["cpu", "cpu"]


@pytest.mark.parametrize("name", NAMES)
def test_a_pickled_teacher_is_rebuilt_from_its_options_and_predicts_the_same(teachers, image, name):
    # Ray ships a teacher to each labelling actor with cloudpickle; transformers' models do not
    # pickle (local hook functions, ContextVars), so the copy reloads the same checkpoints.
    from ray import cloudpickle

    t = teachers[name]
    blob = cloudpickle.dumps(t)
    assert len(blob) < 10_000  # the options, not the weights
    copy = cloudpickle.loads(blob)
    assert type(copy) is type(t) and copy.options == t.options and copy is not t
    assert copy.checkpoints() == t.checkpoints()
    a, b = t.predict(image, "spacecraft"), copy.predict(image, "spacecraft")
    np.testing.assert_allclose(a.boxes, b.boxes, rtol=1e-5)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    np.testing.assert_array_equal(a.masks, b.masks)
