"""The debris simulator's ground truth matches what it drew; ZScale; MOTChallenge io."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from afss_utils.coco import load_instances
from afss_utils.debris.obb import corners_to_xywh
from afss_utils.debris.simulation import (
    Debris,
    DebrisConfig,
    coco_to_mot,
    debris_state,
    generate_dataset,
    read_mot,
    render_video,
    write_mot,
    zscale,
)

# A clean sky makes "the endpoints are bright" a sharp test: no stars, no noise sources but Poisson.
CLEAN = DebrisConfig(
    size=96, frames=6, stars=0, hot_pixels=0, outliers=0, moon_prob=0.0, read_noise=0.0,
    truncate_prob=0.0, sky=100.0, brightness=(2000.0, 2000.0), brightness_noise=0.0,
)  # fmt: skip


def test_zscale_maps_median_pm_k_std_and_clips():
    rng = np.random.default_rng(0)
    data = rng.normal(1000, 50, size=(64, 64))
    med, std = np.median(data), np.std(data)
    data[0, 0], data[0, 1] = med - 2.5 * std, med + 2.5 * std
    data[0, 2], data[0, 3] = med - 10 * std, med + 10 * std
    out = zscale(data, k=2.5)
    med, std = np.median(data), np.std(data)  # the statistics zscale saw
    assert out.dtype == np.uint8
    lo, hi = med - 2.5 * std, med + 2.5 * std
    expect = np.clip(np.round(255 * (data - lo) / (hi - lo)), 0, 255)
    np.testing.assert_array_equal(out, expect)
    assert out[0, 2] == 0 and out[0, 3] == 255
    assert abs(int(out[np.unravel_index(np.argmin(abs(data - med)), data.shape)]) - 128) <= 1


def test_zscale_constant_and_empty():
    assert zscale(np.full((4, 4), 7.0)).max() == 0
    assert zscale(np.zeros((0, 0))).shape == (0, 0)


def test_track_centre_moves_by_v_dt():
    d = Debris(1, 20.0, 30.0, 10.0, 2.0, 0.3, 4.0, 1000.0)
    for t in range(1, 6):
        x, y, ends = debris_state(d, t)
        assert x == pytest.approx(20 + 4 * math.cos(0.3) * (t - 1))
        assert y == pytest.approx(30 + 4 * math.sin(0.3) * (t - 1))
        assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(10.0)


def test_ground_truth_matches_what_was_drawn():
    frames = render_video(3, CLEAN)
    assert len(frames) == CLEAN.frames
    sky = np.median(frames[0].image)
    n_checked = 0
    for fr in frames:
        for box, ends in zip(fr.boxes, fr.endpoints, strict=True):
            # endpoints (pulled half a pixel inwards) are bright compared with the sky
            mid = ends.mean(0)
            for e in ends:
                p = e + 0.5 * (mid - e) / max(np.linalg.norm(mid - e), 1e-9)
                assert fr.image[int(round(p[1])), int(round(p[0]))] > sky + 300
            # the box holds the streak: all flux above the sky near the streak is inside the box
            x0, y0, x1, y1 = box
            assert x0 <= ends[:, 0].min() and ends[:, 0].max() <= x1
            assert y0 <= ends[:, 1].min() and ends[:, 1].max() <= y1
            n_checked += 1
        # pixels far above the sky lie inside some box
        bright = np.argwhere(fr.image > sky + 600)
        for yy, xx in bright:
            assert any(b[0] - 1 <= xx <= b[2] + 1 and b[1] - 1 <= yy <= b[3] + 1 for b in fr.boxes)
    assert n_checked > 0
    # consecutive centres of one track differ by exactly v * dt
    by_track: dict[int, list] = {}
    for fr in frames:
        for tid, c in zip(fr.track_ids, fr.centres, strict=True):
            by_track.setdefault(int(tid), []).append((fr.frame_id, c))
    for seq in by_track.values():
        steps = [
            np.linalg.norm(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(seq, seq[1:], strict=False)
        ]
        if steps:
            assert np.allclose(steps, steps[0]) and CLEAN.speed[0] <= steps[0] <= CLEAN.speed[1]


def test_oriented_box_holds_the_streak_and_its_hull_is_the_box():
    for fr in render_video(3, CLEAN):
        assert fr.obbs.shape == (len(fr.track_ids), 4, 2) and fr.widths.shape == fr.track_ids.shape
        for box, ends, w, obb in zip(fr.boxes, fr.endpoints, fr.widths, fr.obbs, strict=True):
            assert CLEAN.width[0] <= w <= CLEAN.width[1]
            # the box is the obb's hull clipped to the frame
            hull = corners_to_xywh(obb)[0]
            lo, hi = np.clip(hull[:2], 0, CLEAN.size), np.clip(hull[:2] + hull[2:], 0, CLEAN.size)
            np.testing.assert_allclose(box, [*lo, *hi], atol=1e-9)
            # the obb's long side runs along the streak: both endpoints lie inside it
            side = np.linalg.norm(obb[1] - obb[0])
            assert (
                side >= np.linalg.norm(ends[1] - ends[0]) > np.linalg.norm(obb[2] - obb[1]) - 1e-9
            )


def test_truncation_and_leaving_the_frame_end_the_track():
    cfg = replace(CLEAN, truncate_prob=1.0, frames=8, speed=(1.0, 1.5), debris=(3, 3))
    for seed in range(5):
        frames = render_video(seed, cfg)
        present = {}
        for fr in frames:
            for tid in fr.track_ids:
                present.setdefault(int(tid), []).append(fr.frame_id)
        for fids in present.values():
            # a track is one contiguous run of frames that ends before the video does
            assert fids == list(range(fids[0], fids[-1] + 1))
            assert fids[-1] < cfg.frames
    # fast debris leave the frame: the track stops and never comes back
    fast = replace(CLEAN, speed=(30.0, 30.0), frames=8, debris=(2, 2))
    frames = render_video(1, fast)
    present = {}
    for fr in frames:
        for tid, box in zip(fr.track_ids, fr.boxes, strict=True):
            present.setdefault(int(tid), []).append(fr.frame_id)
            assert box.min() >= 0 and box[2] <= fast.size and box[3] <= fast.size
    for fids in present.values():
        assert fids == list(range(fids[0], fids[-1] + 1)) and fids[-1] < fast.frames


def test_deterministic_per_seed():
    a, b, c = render_video(7, CLEAN), render_video(7, CLEAN), render_video(8, CLEAN)
    np.testing.assert_array_equal(a[2].image, b[2].image)
    assert not np.array_equal(a[2].image, c[2].image)


def test_dense_split_has_more_than_three_debris_and_crossings(tmp_path):
    cfg = replace(CLEAN, frames=5, size=128)
    paths = generate_dataset(tmp_path, {"train": 1, "test_dense": 2}, cfg, seed=0, progress=False)
    dense = load_instances(paths["test_dense"])
    per_image = {}
    for a in dense["annotations"]:
        per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
        assert {"track_id", "video_id", "endpoints", "width", "obb"} <= set(a) and len(
            a["obb"]
        ) == 8
    assert max(per_image.values()) > 3
    im = dense["images"][0]
    assert {"video_id", "frame_id", "raw_file"} <= set(im)
    assert (tmp_path / im["file_name"]).is_file() and (tmp_path / im["raw_file"]).is_file()
    gt = read_mot(tmp_path / "mot" / "test_dense" / im["video"] / "gt" / "gt.txt")
    assert len(gt) == sum(1 for a in dense["annotations"] if a["video_id"] == im["video_id"])


def test_mot_round_trip(tmp_path):
    rows = np.array([[2, 5, 1.5, 2.25, 10, 4, 0.9, 1, 1, -1], [1, 3, 0, 0, 3, 3, 1, 1, 1, -1]])
    back = read_mot(write_mot(tmp_path / "a.txt", rows))
    np.testing.assert_allclose(back, rows[[1, 0]])  # sorted by frame
    # empty case
    assert read_mot(write_mot(tmp_path / "e.txt", np.zeros((0, 10)))).shape == (0, 10)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_mot(tmp_path / "missing.txt")


def test_coco_to_mot_round_trip(tmp_path):
    frames = render_video(0, CLEAN)
    images, anns = [], []
    for fr in frames:
        images.append({"id": fr.frame_id, "video": "v1", "frame_id": fr.frame_id,
                       "width": 96, "height": 96})  # fmt: skip
        for tid, b in zip(fr.track_ids, fr.boxes, strict=True):
            anns.append({"image_id": fr.frame_id, "track_id": int(tid),
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})  # fmt: skip
    paths = coco_to_mot({"images": images, "annotations": anns}, tmp_path)
    back = read_mot(paths["v1"])
    assert len(back) == len(anns)
    first = back[(back[:, 0] == 1)]
    np.testing.assert_allclose(np.sort(first[:, 1]), np.sort(frames[0].track_ids))
    assert (tmp_path / "v1" / "seqinfo.ini").read_text().count("seqLength=6") == 1


def test_dense_split_overlaps_in_space_and_time_not_only_at_one_point(tmp_path):
    """SDT-Net's dense sense: > 3 debris in a frame, streaks side by side for many frames."""
    from afss_utils.debris.simulation import SDTD_FACTS, split_statistics

    cfg = replace(CLEAN, frames=8, size=160)
    paths = generate_dataset(
        tmp_path, {"test_sparse": 6, "test_dense": 6}, cfg, seed=3, progress=False
    )
    sparse = split_statistics(load_instances(paths["test_sparse"]))
    dense_instances = load_instances(paths["test_dense"])
    dense = split_statistics(dense_instances)
    assert list(dense) == list(SDTD_FACTS) == list(sparse)
    assert dense["videos"] == "6" and dense["frames per video"] == "8"
    assert dense["frame size (px)"] == "160 x 160"
    share = lambda s: int(s.rstrip("%"))  # noqa: E731
    assert (
        share(dense["frames with > 3 debris"]) >= 60
        and share(sparse["frames with > 3 debris"]) == 0
    )
    assert share(dense["frames where two debris overlap"]) >= 50
    assert share(dense["frames where two debris overlap"]) > share(
        sparse["frames where two debris overlap"]
    )
    # break-up groups: two tracks whose boxes intersect in at least 3 frames of one video
    boxes: dict[tuple, dict] = {}
    for a in dense_instances["annotations"]:
        boxes.setdefault((a["video_id"], a["track_id"]), {})[a["image_id"]] = a["bbox"]

    def meet(b1, b2):
        return min(b1[0] + b1[2], b2[0] + b2[2]) > max(b1[0], b2[0]) and min(
            b1[1] + b1[3], b2[1] + b2[3]
        ) > max(b1[1], b2[1])

    long_overlaps = [
        (k1, k2)
        for k1 in boxes
        for k2 in boxes
        if k1 < k2
        and k1[0] == k2[0]
        and sum(meet(boxes[k1][i], boxes[k2][i]) for i in set(boxes[k1]) & set(boxes[k2])) >= 3
    ]
    assert len(long_overlaps) >= 3
    assert split_statistics({"images": [], "annotations": []})["videos"] == "none"


def test_dense_share_renders_the_last_training_videos_dense_and_keeps_the_rest(tmp_path):
    from afss_utils.coco import load_instances
    from afss_utils.debris.simulation import generate_split

    cfg = replace(CLEAN, frames=3, size=96)
    plain = generate_split(tmp_path / "a", "train", 3, cfg, seed=2, progress=False)
    mixed = generate_split(
        tmp_path / "b", "train", 3, replace(cfg, dense_share=1 / 3), seed=2, progress=False
    )

    def per_video(inst):
        out = {}
        for a in inst["annotations"]:
            out.setdefault(a["video_id"], set()).add(a["track_id"])
        return out

    # the first two videos are the same pixels and streaks as without the share
    same = [a for a in mixed["annotations"] if a["video_id"] < 3]
    assert same == [a for a in plain["annotations"] if a["video_id"] < 3]
    assert len(per_video(mixed)[3]) >= 5 > 3 >= len(per_video(plain).get(3, set()))
    assert load_instances(tmp_path / "b" / "train.json")["info"]["dense_share"] == pytest.approx(
        1 / 3
    )
    with pytest.raises(ValueError, match="dense_share"):
        generate_split(tmp_path / "c", "x", 1, replace(cfg, dense_share=2.0), progress=False)


def test_make_videos_keeps_the_sparse_test_split_sparse(tmp_path):
    from afss_utils.debris.stage import make_videos

    params = {
        "seed": 0,
        "sim": {"size": 64, "frames": 2, "stars": 3, "dense_share": 1.0},
        "videos": {"train": 2, "test_sparse": 2, "test_dense": 1},
    }
    data = make_videos(params, tmp_path, progress=False)
    count = lambda s: max(  # noqa: E731  (most debris in one frame of split s)
        sum(1 for a in data[s].instances["annotations"] if a["image_id"] == im["id"])
        for im in data[s].instances["images"]
    )
    assert count("test_sparse") <= 3 and count("train") >= 4 and count("test_dense") >= 4
    assert data["test_sparse"].instances["info"]["dense_share"] == 0.0
