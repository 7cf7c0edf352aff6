"""Multi-object tracking of per-frame detections and MOT metrics, through maintained libraries.

- Trackers: roboflow's ``trackers`` (2.x: SORT, ByteTrack, OC-SORT, BoT-SORT, ...), fed with
  ``supervision.Detections`` per frame (:func:`track_video`).
- Metrics: ``trackeval``'s HOTA (HOTA, DetA, AssA), CLEAR (MOTA, IDS) and Identity (IDF1)
  metric classes, called on an in-memory sequence (:func:`trackeval_metrics`): the same code as
  its MOTChallenge file runner, without the file layout. ``motmetrics`` computes MOTA/IDF1/IDS as
  a cross-check (:func:`motmetrics_metrics`); both match boxes at IoU >= 0.5.

Rows everywhere are MOTChallenge rows ``(frame, id, x, y, w, h, conf)``: frame 1-based, box
xywh pixels (the format of :mod:`afss_utils.debris.simulation` ground truth).

NumPy 2 removed ``np.asfarray`` (and earlier ``np.float``/``np.int``/``np.bool``).
motmetrics 1.4.0's ``distances.iou_matrix`` still calls ``np.asfarray``; trackeval 1.3.0 is clean,
older trackeval releases use ``np.float``/``np.int``. Rather than patching site-packages,
:func:`_numpy_aliases` adds the missing names to the numpy module only for the duration of a
metrics call and removes them afterwards.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator

import numpy as np

__all__ = [
    "TRACKERS",
    "build_tracker",
    "mot_rows_from_results",
    "motmetrics_metrics",
    "score_tracks",
    "track_video",
    "trackeval_metrics",
]

TRACKERS = ("bytetrack", "ocsort", "sort")
METRIC_NAMES = ("MOTA", "IDF1", "IDS", "HOTA", "DetA", "AssA")


# ---------------------------------------------------------------------------- trackers
def build_tracker(name: str, **kwargs):
    """A fresh tracker from the ``trackers`` library by short name (bytetrack | ocsort | sort)."""
    import trackers

    classes = {
        "bytetrack": trackers.ByteTrackTracker,
        "ocsort": trackers.OCSORTTracker,
        "sort": trackers.SORTTracker,
    }
    if name not in classes:
        raise KeyError(f"unknown tracker {name!r}; known: {', '.join(classes)}")
    return classes[name](**kwargs)


def track_video(
    tracker_name: str, frames: Iterable[tuple[int, np.ndarray, np.ndarray]], **kwargs
) -> np.ndarray:
    """Track one video. frames: ``(frame_id, boxes (N, 4) xyxy px, scores (N,))`` in order.

    Returns (M, 7) MOT rows ``frame, id, x, y, w, h, conf`` of the tracked boxes (ids >= 1).
    ``trackers`` returns the detection that spawns a track with id -1, so each track's first
    box is never reported (one false negative per track; the library's contract).
    """
    import supervision as sv

    tracker = build_tracker(tracker_name, **kwargs)
    rows = []
    for frame_id, boxes, scores in frames:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        det = sv.Detections(xyxy=boxes, confidence=scores, class_id=np.zeros(len(boxes), int))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = tracker.update(det)
        if out.tracker_id is None:
            continue
        for b, tid, c in zip(out.xyxy, out.tracker_id, _conf(out), strict=True):
            if tid < 0:  # not yet confirmed
                continue
            rows.append([frame_id, int(tid) + 1, b[0], b[1], b[2] - b[0], b[3] - b[1], c])
    return np.asarray(rows, np.float64).reshape(-1, 7)


def _conf(det) -> np.ndarray:
    return np.ones(len(det)) if det.confidence is None else det.confidence


def mot_rows_from_results(results: list[dict], instances: dict) -> dict[str, list]:
    """COCO results + the split's instances (images carry ``video`` and ``frame_id``) ->
    video name -> list of ``(frame_id, boxes (N, 4) xyxy px, scores (N,))`` for every frame of
    the video in order, frames without detections included (a tracker must see them)."""
    by_image = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    videos: dict[str, list] = defaultdict(list)
    for im in sorted(instances["images"], key=lambda i: (i["video"], i["frame_id"])):
        recs = by_image.get(im["id"], [])
        b = np.array([r["bbox"] for r in recs], np.float64).reshape(-1, 4)
        b[:, 2:] += b[:, :2]
        videos[im["video"]].append((im["frame_id"], b, np.array([r["score"] for r in recs])))
    return dict(videos)


# ---------------------------------------------------------------------------- metrics
@contextlib.contextmanager
def _numpy_aliases() -> Iterator[None]:
    """Temporarily provide the NumPy names removed in 2.0 that the metric libraries still use."""

    def asfarray(a, dtype=np.float64):
        return np.asarray(a, dtype=dtype if np.issubdtype(dtype, np.floating) else np.float64)

    added = []
    for alias, typ in (("float", float), ("int", int), ("bool", bool), ("asfarray", asfarray)):
        if alias not in np.__dict__:
            setattr(np, alias, typ)
            added.append(alias)
    try:
        yield
    finally:
        for alias in added:
            delattr(np, alias)


def _rows(rows: np.ndarray) -> np.ndarray:
    """MOT rows as an (N, >=6) float array; an empty input gives (0, 6)."""
    rows = np.asarray(rows, np.float64)
    if rows.size == 0:
        return np.zeros((0, 6))
    if rows.ndim != 2 or rows.shape[1] < 6:
        raise ValueError(f"MOT rows must be (N, >=6) frame,id,x,y,w,h; got shape {rows.shape}")
    return rows


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xywh -> (N, M) IoU."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ax1, ay1, ax2, ay2 = a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(ax1[:, None], bx1), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(ay1[:, None], by1), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _sequence_data(gt: np.ndarray, pred: np.ndarray, num_frames: int | None = None) -> dict:
    """Two (N, >=6) MOT row arrays -> trackeval's per-sequence data dict (ids made 0..n-1)."""
    gt, pred = _rows(gt), _rows(pred)
    frames = [int(f) for f in np.concatenate([gt[:, 0], pred[:, 0]])]
    t = max([num_frames or 0, *frames]) if frames or num_frames else 0
    gt_map = {v: i for i, v in enumerate(np.unique(gt[:, 1]).tolist())}
    tr_map = {v: i for i, v in enumerate(np.unique(pred[:, 1]).tolist())}
    data: dict = {k: [] for k in ("gt_ids", "tracker_ids", "similarity_scores")}
    for f in range(1, t + 1):
        g, p = gt[gt[:, 0] == f], pred[pred[:, 0] == f]
        data["gt_ids"].append(np.array([gt_map[v] for v in g[:, 1].tolist()], int))
        data["tracker_ids"].append(np.array([tr_map[v] for v in p[:, 1].tolist()], int))
        data["similarity_scores"].append(_iou_xywh(g[:, 2:6], p[:, 2:6]))
    data.update(
        num_timesteps=t,
        num_gt_ids=len(gt_map),
        num_tracker_ids=len(tr_map),
        num_gt_dets=len(gt),
        num_tracker_dets=len(pred),
    )
    return data


def trackeval_metrics(
    sequences: dict[str, tuple[np.ndarray, np.ndarray]] | tuple[np.ndarray, np.ndarray],
) -> dict[str, float]:
    """MOT metrics of one or several sequences with trackeval (combined over sequences).

    sequences: name -> (gt rows, predicted rows), MOT rows (frame, id, x, y, w, h, ...); or a
    single (gt, pred) pair. Returns MOTA, IDF1, HOTA, DetA, AssA in percent and IDS (count),
    plus the CLEAR counts (CLR_TP, CLR_FN, CLR_FP) that explain MOTA.
    """
    from trackeval.metrics import CLEAR, HOTA, Identity

    if isinstance(sequences, tuple):
        sequences = {"seq": sequences}
    cfg = {"PRINT_CONFIG": False, "THRESHOLD": 0.5}
    with _numpy_aliases():
        metrics = [HOTA(), CLEAR(cfg), Identity(cfg)]
        per_seq: dict[str, dict] = {m.get_name(): {} for m in metrics}
        for name, (gt, pred) in sequences.items():
            data = _sequence_data(gt, pred)
            for m in metrics:
                per_seq[m.get_name()][name] = m.eval_sequence(data)
        combined = {m.get_name(): m.combine_sequences(per_seq[m.get_name()]) for m in metrics}
    hota, clear, ident = combined["HOTA"], combined["CLEAR"], combined["Identity"]
    return {
        "MOTA": 100 * float(clear["MOTA"]),
        "IDF1": 100 * float(ident["IDF1"]),
        "IDS": int(clear["IDSW"]),
        "HOTA": 100 * float(np.mean(hota["HOTA"])),
        "DetA": 100 * float(np.mean(hota["DetA"])),
        "AssA": 100 * float(np.mean(hota["AssA"])),
        "CLR_TP": int(clear["CLR_TP"]),
        "CLR_FN": int(clear["CLR_FN"]),
        "CLR_FP": int(clear["CLR_FP"]),
    }


def motmetrics_metrics(
    sequences: dict[str, tuple[np.ndarray, np.ndarray]] | tuple[np.ndarray, np.ndarray],
) -> dict[str, float]:
    """MOTA, IDF1 (percent) and IDS with py-motmetrics (IoU >= 0.5), over all sequences."""
    import motmetrics as mm

    if isinstance(sequences, tuple):
        sequences = {"seq": sequences}
    accs, names = [], []
    with _numpy_aliases():
        for name, (gt, pred) in sequences.items():
            accs.append(_mm_accumulator(gt, pred))
            names.append(name)
    summary = mm.metrics.create().compute_many(
        accs, names=names, metrics=["mota", "idf1", "num_switches"], generate_overall=True
    )
    row = summary.loc["OVERALL"]
    return {
        "MOTA": 100 * float(row["mota"]),
        "IDF1": 100 * float(row["idf1"]),
        "IDS": int(row["num_switches"]),
    }


def _mm_accumulator(gt: np.ndarray, pred: np.ndarray):
    """One sequence's motmetrics accumulator (frames where either side has boxes)."""
    import motmetrics as mm

    gt, pred = _rows(gt), _rows(pred)
    acc = mm.MOTAccumulator(auto_id=False)
    for f in np.unique(np.concatenate([gt[:, 0], pred[:, 0]])).astype(int):
        g, p = gt[gt[:, 0] == f], pred[pred[:, 0] == f]
        dist = mm.distances.iou_matrix(g[:, 2:6], p[:, 2:6], max_iou=0.5)
        acc.update(g[:, 1].astype(int).tolist(), p[:, 1].astype(int).tolist(), dist, frameid=f)
    return acc


# ---------------------------------------------------------------------------- evaluation
def ground_truth_rows(instances: dict) -> dict[str, np.ndarray]:
    """A debris COCO split (images with ``video``/``frame_id``, annotations with ``track_id``)
    -> video name -> (N, 7) MOT rows of its ground truth (every video, empty ones included)."""
    by_id = {im["id"]: im for im in instances["images"]}
    out: dict[str, list] = {im["video"]: [] for im in instances["images"]}
    for a in instances["annotations"]:
        if "track_id" not in a:
            raise KeyError(f"annotation {a.get('id')} has no 'track_id': not a tracking split")
        im = by_id[a["image_id"]]
        out[im["video"]].append([im["frame_id"], a["track_id"], *a["bbox"], 1.0])
    return {v: np.asarray(r, np.float64).reshape(-1, 7) for v, r in out.items()}


def evaluate_tracking(
    results: list[dict],
    instances: dict,
    trackers: Iterable[str] = ("bytetrack", "ocsort"),
    tracker_args: dict[str, dict] | None = None,
) -> list[dict]:
    """Track a detector's COCO results on every video of a split and score the tracks.

    Returns one record per tracker: ``tracker``, the trackeval metrics (MOTA, IDF1, IDS, HOTA,
    DetA, AssA, CLEAR counts) over all videos, the motmetrics cross-check ``mm_MOTA``,
    ``mm_IDF1``, ``mm_IDS`` and ``track_s`` (seconds spent tracking).
    """
    import time

    videos = sorted({im["video"] for im in instances["images"]})
    frames = mot_rows_from_results(results, instances)
    out = []
    for name in trackers:
        t0 = time.perf_counter()
        kw = (tracker_args or {}).get(name, {})
        tracks = {v: track_video(name, frames.get(v, []), **kw) for v in videos}
        seconds = time.perf_counter() - t0
        out.append({"tracker": name, **score_tracks(tracks, instances), "track_s": seconds})
    return out


def score_tracks(tracks: dict[str, np.ndarray], instances: dict) -> dict:
    """Tracks made by anything (a tracker above, or a network that tracks by itself, as SDT-Net)
    -> the trackeval metrics and the motmetrics cross-check (``mm_*``) over all videos.

    tracks: video name -> (M, 7) MOT rows ``frame, id, x, y, w, h, conf``; a video with no rows
    (or absent) counts all its ground truth as missed."""
    gt = ground_truth_rows(instances)
    unknown = sorted(set(tracks) - set(gt))
    if unknown:
        raise KeyError(f"tracks of video(s) not in the split: {', '.join(unknown)}")
    seqs = {
        v: (gt[v], np.asarray(tracks.get(v, np.zeros((0, 7))), np.float64).reshape(-1, 7))
        for v in gt
    }
    m = trackeval_metrics(seqs)
    mm = motmetrics_metrics(seqs)
    return {**m, **{f"mm_{k}": v for k, v in mm.items()}}
