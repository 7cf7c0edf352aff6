"""Trackers from `trackers`, MOT metrics from trackeval, cross-checked with motmetrics."""

from __future__ import annotations

import numpy as np
import pytest

from afss_utils.debris.simulation import DebrisConfig, render_video
from afss_utils.debris.tracking import (
    mot_rows_from_results,
    motmetrics_metrics,
    track_video,
    trackeval_metrics,
)


def _two_tracks(frames: int = 10) -> np.ndarray:
    """Two objects moving apart along x: MOT rows (frame, id, x, y, w, h, conf)."""
    rows = []
    for f in range(1, frames + 1):
        rows.append([f, 1, 10 + 3 * f, 20, 12, 6, 1])
        rows.append([f, 2, 10 + 3 * f, 60, 12, 6, 1])
    return np.array(rows, float)


def test_perfect_tracker():
    gt = _two_tracks()
    pred = gt.copy()
    pred[:, 1] += 7  # tracker ids are arbitrary labels
    m = trackeval_metrics((gt, pred))
    assert m["MOTA"] == pytest.approx(100) and m["IDF1"] == pytest.approx(100) and m["IDS"] == 0
    assert m["HOTA"] == pytest.approx(100) and m["DetA"] == pytest.approx(100)
    assert m["AssA"] == pytest.approx(100)
    mm = motmetrics_metrics((gt, pred))
    assert mm == pytest.approx({"MOTA": 100.0, "IDF1": 100.0, "IDS": 0})


def test_swap_of_two_ids_at_one_frame():
    gt = _two_tracks(10)
    pred = gt.copy()
    late = pred[:, 0] >= 6  # from frame 6 on, the tracker exchanges the two ids
    pred[late, 1] = 3 - pred[late, 1]
    m, mm = trackeval_metrics((gt, pred)), motmetrics_metrics((gt, pred))
    assert m["IDS"] == 2 and mm["IDS"] == 2  # one switch per object
    # every box is still detected: MOTA = 1 - IDS / GT; IDF1 = 10 of 20 boxes keep their id
    assert m["MOTA"] == pytest.approx(100 * (1 - 2 / 20))
    assert m["IDF1"] == pytest.approx(50.0) and mm["IDF1"] == pytest.approx(50.0)
    assert m["DetA"] == pytest.approx(100) and m["AssA"] < 100


def test_trackeval_and_motmetrics_agree_on_a_noisy_tracker():
    rng = np.random.default_rng(0)
    gt = _two_tracks(12)
    pred = gt.copy()
    pred[:, 2:4] += rng.normal(0, 2.0, size=(len(pred), 2))  # some boxes fall below IoU 0.5
    pred = pred[rng.random(len(pred)) > 0.15]  # misses
    fp = np.array([[4, 9, 100, 100, 8, 8, 0.5], [7, 9, 104, 100, 8, 8, 0.5]])
    pred = np.vstack([pred, fp])
    m, mm = trackeval_metrics((gt, pred)), motmetrics_metrics((gt, pred))
    assert m["MOTA"] == pytest.approx(mm["MOTA"], abs=1e-6)
    assert m["IDF1"] == pytest.approx(mm["IDF1"], abs=1e-6)
    assert m["IDS"] == mm["IDS"]
    assert m["MOTA"] < 100


def test_empty_cases():
    gt = _two_tracks(4)
    none = np.zeros((0, 7))
    m = trackeval_metrics((gt, none))
    assert m["MOTA"] == 0 and m["IDF1"] == 0 and m["IDS"] == 0 and m["CLR_FN"] == len(gt)
    assert motmetrics_metrics((gt, none))["MOTA"] == pytest.approx(0)
    assert track_video("bytetrack", []).shape == (0, 7)


@pytest.mark.parametrize("name", ["bytetrack", "ocsort"])
def test_trackers_follow_simulated_debris(name):
    """Ground-truth boxes as detections: a maintained tracker keeps every debris' identity."""
    cfg = DebrisConfig(size=128, frames=8, debris=(2, 2), truncate_prob=0.0, speed=(2.0, 3.0))
    frames = render_video(2, cfg)
    dets = [(fr.frame_id, fr.boxes, np.full(len(fr.boxes), 0.9)) for fr in frames]
    gt = np.array(
        [
            [fr.frame_id, t, b[0], b[1], b[2] - b[0], b[3] - b[1], 1]
            for fr in frames
            for t, b in zip(fr.track_ids, fr.boxes, strict=True)
        ]
    )
    pred = track_video(name, dets, minimum_consecutive_frames=1)
    m = trackeval_metrics((gt, pred))
    n_tracks = len(np.unique(gt[:, 1]))
    assert m["IDS"] == 0 and m["CLR_FP"] == 0 and m["CLR_FN"] == n_tracks  # first boxes: id -1
    with pytest.raises(KeyError, match="deepsort"):
        track_video("deepsort", dets)


def test_results_to_frames_keeps_empty_frames():
    instances = {
        "images": [
            {"id": 1, "video": "v", "frame_id": 1},
            {"id": 2, "video": "v", "frame_id": 2},
            {"id": 3, "video": "w", "frame_id": 1},
        ]
    }
    results = [{"image_id": 2, "bbox": [1, 2, 3, 4], "score": 0.5}]
    out = mot_rows_from_results(results, instances)
    assert [f for f, _, _ in out["v"]] == [1, 2] and len(out["w"]) == 1
    np.testing.assert_allclose(out["v"][1][1], [[1, 2, 4, 6]])
    assert out["v"][0][1].shape == (0, 4)


def test_ground_truth_boxes_track_perfectly_through_evaluate_tracking(tmp_path):
    from afss_utils.coco import load_instances
    from afss_utils.debris.simulation import generate_dataset
    from afss_utils.debris.tracking import evaluate_tracking, ground_truth_rows

    cfg = DebrisConfig(size=96, frames=5, debris=(2, 2), truncate_prob=0.0, speed=(1.0, 2.0))
    inst = load_instances(generate_dataset(tmp_path, {"t": 2}, cfg, progress=False)["t"])
    gt = ground_truth_rows(inst)
    assert set(gt) == {im["video"] for im in inst["images"]}
    oracle = [
        {"image_id": a["image_id"], "bbox": a["bbox"], "score": 0.95} for a in inst["annotations"]
    ]
    args = {
        "bytetrack": {"minimum_consecutive_frames": 1},
        "ocsort": {"minimum_consecutive_frames": 1},
    }
    rows = evaluate_tracking(oracle, inst, tracker_args=args)
    assert [r["tracker"] for r in rows] == ["bytetrack", "ocsort"]
    n_tracks = len({(a["video_id"], a["track_id"]) for a in inst["annotations"]})
    for r in rows:
        # `trackers` returns a track's first detection with id -1 (it only spawns the track), so
        # exactly one box per track is missed; every later box is tracked, with no switch
        assert r["IDS"] == 0 and r["CLR_FP"] == 0 and r["CLR_FN"] == n_tracks
        assert r["MOTA"] == pytest.approx(r["mm_MOTA"]) and r["IDF1"] == pytest.approx(r["mm_IDF1"])
    empty = evaluate_tracking([], inst, trackers=["bytetrack"])[0]
    assert empty["MOTA"] == 0 and empty["CLR_FN"] == len(inst["annotations"])


def test_score_tracks_of_a_self_tracking_detector(tmp_path):
    """Tracks made outside the trackers (SDT-Net's own association) are scored the same way."""
    from afss_utils.coco import load_instances
    from afss_utils.debris.simulation import generate_dataset
    from afss_utils.debris.tracking import ground_truth_rows, score_tracks

    cfg = DebrisConfig(size=96, frames=5, debris=(2, 2), truncate_prob=0.0, speed=(1.0, 2.0))
    inst = load_instances(generate_dataset(tmp_path, {"t": 2}, cfg, progress=False)["t"])
    gt = ground_truth_rows(inst)
    perfect = score_tracks(gt, inst)  # the ground truth as its own tracks
    assert perfect["MOTA"] == pytest.approx(100) and perfect["HOTA"] == pytest.approx(100)
    assert perfect["IDS"] == 0 and perfect["mm_IDF1"] == pytest.approx(100)
    first = sorted(gt)[0]
    swapped = {v: r.copy() for v, r in gt.items()}
    late = swapped[first][:, 0] >= 3  # the two tracks of one video swap ids from frame 3 on
    swapped[first][late, 1] = 3 - swapped[first][late, 1]
    worse = score_tracks(swapped, inst)
    assert worse["IDS"] == 2 and worse["IDF1"] < perfect["IDF1"]
    missing = score_tracks({}, inst)
    assert missing["MOTA"] == 0 and missing["CLR_FN"] == len(inst["annotations"])
    with pytest.raises(KeyError, match="not in the split"):
        score_tracks({"nope": gt[first]}, inst)
