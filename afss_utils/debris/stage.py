"""Stage 05 glue: simulated debris videos -> detectors without labels -> trackers -> MOT table.

Every step reuses the study's own pieces: :func:`afss_utils.pseudolabel.pseudolabel` (teacher,
TTA views, fusion) writes COCO results json; :func:`afss_utils.distill.confidence_filter` and
:func:`afss_utils.distill.pseudo_instances` (``top_k=None``: a frame holds several debris) make
the student's training set; :class:`afss_utils.students.YoloStudent` (``debris.yolo.task``:
axis-aligned boxes, ``detect``, or oriented boxes, ``obb``, scored through their hull) trains on
it; :func:`afss_utils.debris.tracking.evaluate_tracking` tracks and
scores. The table rows are (detector, tracker) and the columns the MOT metrics on the sparse and
dense test sets, beside the SDT-Net paper's Table 2 (:data:`afss_utils.tables.PAPER_DEBRIS_TABLE2`).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from afss_utils import coco
from afss_utils.coco import load_instances
from afss_utils.datasets import Dataset, open_coco
from afss_utils.debris.obb import mask_endpoints
from afss_utils.debris.simulation import DebrisConfig, generate_split, split_info
from afss_utils.debris.tracking import METRIC_NAMES, evaluate_tracking
from afss_utils.students import YoloStudent

__all__ = [
    "compare_to_teacher",
    "debris_config",
    "endpoint_labels",
    "make_videos",
    "score_detector",
    "score_sdtnet",
    "sdtnet_config",
    "train_and_track_sdtnet",
    "train_and_predict",
    "train_yolo_detector",
    "tracking_table",
]

TEST_SPLITS = {"test_sparse": "sparse", "test_dense": "dense"}


def debris_config(params: dict) -> DebrisConfig:
    """The simulator settings of the ``debris`` params section (``sim`` mapping)."""
    sim = dict(params.get("sim", {}))
    for key in ("debris", "length", "width", "speed", "brightness"):
        if key in sim:
            sim[key] = tuple(sim[key])
    return DebrisConfig(**sim)


def make_videos(
    params: dict, data_dir: str | os.PathLike, progress: bool = True
) -> dict[str, Dataset]:
    """Render (or reuse) the splits of ``params['videos']`` -> split -> Dataset.

    A split is reused when its json records the same simulator settings, seed and video count.
    """
    data_dir = Path(data_dir)
    cfg = debris_config(params)
    out = {}
    for split, n in dict(params["videos"]).items():
        path = data_dir / f"{split}.json"
        # dense_share mixes dense videos into the training split only: the sparse test split
        # stays sparse
        c = (
            cfg.dense()
            if "dense" in split
            else cfg
            if split == "train"
            else replace(cfg, dense_share=0.0)
        )
        if not path.is_file() or load_instances(path).get("info") != split_info(
            c, params["seed"], n
        ):
            generate_split(data_dir, split, n, c, seed=params["seed"], progress=progress)
        out[split] = open_coco(path, data_dir, name=split)
    return out


def endpoint_labels(
    results: list[dict], images: list[dict], radius: float, width: float = 2.0
) -> list[dict]:
    """Pseudo-labels -> annotations in the simulator's form, for training SDT-Net without any.

    results: COCO results with RLE masks (notebook 05: the streak teacher's after TTA + fusion);
    images: the split's COCO images (``video_id``, ``frame_id``, ``height``, ``width``).
    Each label gets ``endpoints`` ``[x1, y1, x2, y2]`` from its mask
    (:func:`afss_utils.debris.obb.mask_endpoints`), the streak ``width`` assumed there, and a
    ``track_id``: labels of consecutive frames of a video are linked when the mean distance of
    their endpoints (the pair's order free) is under ``radius`` pixels, one to one by the
    Hungarian method; a label left over starts a track. What SDT-Net's offset head learns from
    these links is the teacher's notion of motion, not the simulator's.
    """
    from scipy.optimize import linear_sum_assignment

    if radius <= 0:
        raise ValueError(f"radius must be > 0 pixels, got {radius}")
    by_id = {im["id"]: im for im in images}
    frames: dict[int, dict[int, list[dict]]] = {}  # video -> frame -> labels
    for r in results:
        if r["image_id"] not in by_id:
            raise ValueError(f"pseudo-label of image_id {r['image_id']} is not in the split")
        if "segmentation" not in r:
            raise ValueError(
                f"pseudo-label of image_id {r['image_id']} has no mask: endpoints come from masks"
            )
        im = by_id[r["image_id"]]
        frames.setdefault(im["video_id"], {}).setdefault(im["frame_id"], []).append(r)
    out: list[dict] = []
    next_id = 1
    for video in sorted(frames):
        prev: list[dict] = []  # the last frame's annotations
        for frame_id in sorted(frames[video]):
            cur = []
            for r in frames[video][frame_id]:
                im = by_id[r["image_id"]]
                ends = mask_endpoints(
                    coco.rle_to_mask(r["segmentation"], im["height"], im["width"]), width
                )
                if ends is None:
                    continue
                cur.append(
                    {
                        "id": len(out) + len(cur) + 1,
                        "image_id": r["image_id"],
                        "category_id": 1,
                        "bbox": list(map(float, r["bbox"])),
                        "area": float(r["bbox"][2] * r["bbox"][3]),
                        "iscrowd": 0,
                        "endpoints": [float(v) for v in ends.ravel()],
                        "width": float(width),
                        "score": float(r["score"]),
                    }
                )
            linked = frame_id - 1 in frames[video] and prev
            if linked and cur:
                a = np.array([c["endpoints"] for c in cur]).reshape(-1, 1, 2, 2)
                b = np.array([p["endpoints"] for p in prev]).reshape(1, -1, 2, 2)
                same = np.linalg.norm(a - b, axis=-1).mean(-1)
                swapped = np.linalg.norm(a - b[:, :, ::-1], axis=-1).mean(-1)
                cost = np.minimum(same, swapped)
                rows, cols = linear_sum_assignment(cost)
                for i, j in zip(rows, cols, strict=True):
                    if cost[i, j] < radius:
                        cur[i]["track_id"] = prev[j]["track_id"]
            for c in cur:
                if "track_id" not in c:
                    c["track_id"], next_id = next_id, next_id + 1
            out.extend(cur)
            prev = cur
    return out


SDTNET_TRAINING = (
    "ablation",
    "steps",
    "batch",
    "lr",
    "label_width",
    "precision",
)  # debris.sdtnet, not the net's


def sdtnet_config(params: dict, variant: str | None = None):
    """The :class:`~afss_utils.debris.sdtnet.SDTNetConfig` of ``params['sdtnet']`` (the ``debris``
    section's): every key but the training ones (:data:`SDTNET_TRAINING`) is a config field;
    ``variant`` overrides the section's. An unknown key is an error naming it."""
    from dataclasses import fields

    from afss_utils.debris.sdtnet import SDTNetConfig

    section = dict(params["sdtnet"])
    known = {f.name for f in fields(SDTNetConfig)} | set(SDTNET_TRAINING)
    unknown = sorted(set(section) - known)
    if unknown:
        raise KeyError(f"unknown params key(s) debris.sdtnet.{', debris.sdtnet.'.join(unknown)}")
    net = {k: v for k, v in section.items() if k not in SDTNET_TRAINING}
    if variant is not None:
        net["variant"] = variant
    return SDTNetConfig(**net)


def _frames_by_video(dataset: Dataset) -> dict[str, list[np.ndarray]]:
    """A debris split -> video name -> its frames in order, (H, W, 3) uint8 RGB."""
    from afss_utils.datasets import read_image

    videos: dict[str, list[dict]] = {}
    for im in dataset.instances["images"]:
        videos.setdefault(im["video"], []).append(im)
    return {
        v: [
            read_image(Path(dataset.image_dir) / im["file_name"])
            for im in sorted(ims, key=lambda i: i["frame_id"])
        ]
        for v, ims in sorted(videos.items())
    }


def train_and_track_sdtnet(
    instances: dict,
    image_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    params: dict,
    seed: int,
    test_sets: dict[str, Dataset],
    variant: str | None = None,
) -> tuple[dict[str, dict[str, np.ndarray]], float, list[dict]]:
    """Train one SDT-Net on ``instances`` (ground truth, or :func:`endpoint_labels`), save its
    weights to ``out_dir/sdtnet.pt``, and track every video of ``test_sets``.

    Returns (split -> video -> (M, 7) MOT rows, seconds, the loss history): one training task of
    notebook 05. ``params`` is the ``debris`` section (``sdtnet`` and ``device``)."""
    import torch

    from afss_utils.config import resolve_device
    from afss_utils.debris import sdtnet

    t0 = time.perf_counter()
    config = sdtnet_config(params, variant)
    opts = params["sdtnet"]
    device = resolve_device(params.get("device", "cpu"))
    samples = sdtnet.samples_from_coco(instances, image_dir)
    model, history = sdtnet.train(
        samples,
        config,
        opts["steps"],
        opts["batch"],
        opts["lr"],
        seed=seed,
        device=device,
        precision=opts.get("precision", "auto"),
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "sdtnet.pt.tmp"
    torch.save({"config": config.to_dict(), "state_dict": model.state_dict()}, tmp)
    os.replace(tmp, out / "sdtnet.pt")  # a task may run twice (Ray): never a half-written file
    tracks = {
        split: {
            v: sdtnet.track(model, frames, config, device)
            for v, frames in _frames_by_video(ds).items()
        }
        for split, ds in test_sets.items()
    }
    return tracks, time.perf_counter() - t0, history


def score_sdtnet(
    detector: str, tracks_by_split: dict[str, dict[str, np.ndarray]], datasets: dict[str, Dataset]
) -> list[dict]:
    """SDT-Net's own tracks on each test split -> long records as :func:`score_detector` gives
    them, tracker ``SDT-Net offsets`` (its association by endpoint offsets)."""
    from afss_utils.debris.tracking import score_tracks

    rows = []
    for split, label in TEST_SPLITS.items():
        if split in tracks_by_split:
            m = score_tracks(tracks_by_split[split], datasets[split].instances)
            rows.append({"detector": detector, "tracker": "SDT-Net offsets", "split": label, **m})
    return rows


def train_yolo_detector(
    instances: dict,
    image_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    params: dict,
    seed: int,
) -> YoloStudent:
    """A YOLO11 box student trained on ``instances`` (pseudo-labels or GT); ``params['yolo']``
    holds the model yaml, ``task`` (``detect`` | ``obb``, default detect) and ultralytics' train
    arguments. An obb student's predictions carry the hull as ``bbox`` and the corners as ``obb``.
    """
    opts = dict(params["yolo"])
    model, task = opts.pop("model"), opts.pop("task", "detect")
    if task not in ("detect", "obb"):
        raise ValueError(f"debris.yolo.task must be 'detect' or 'obb', got {task!r}")
    student = YoloStudent(task, model, params.get("device", "cpu"), seed, None, **opts)
    return student.train(instances, image_dir, out_dir)


def train_and_predict(
    instances: dict,
    image_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    params: dict,
    seed: int,
    test_sets: dict[str, Dataset],
) -> tuple[dict[str, list[dict]], float]:
    """:func:`train_yolo_detector`, then its COCO results on each of ``test_sets`` (split name
    -> dataset). Returns (results by split, seconds): one training task of notebook 05."""
    t0 = time.perf_counter()
    student = train_yolo_detector(instances, image_dir, out_dir, params, seed)
    results = {split: student.predict(ds) for split, ds in test_sets.items()}
    return results, time.perf_counter() - t0


def score_detector(
    detector: str,
    results_by_split: dict[str, list[dict]],
    datasets: dict[str, Dataset],
    params: dict,
) -> list[dict]:
    """Track one detector's results on each test split -> long records.

    Records: detector, tracker, split (sparse | dense), MOTA IDF1 IDS HOTA DetA AssA, the
    motmetrics cross-check and ``track_s``. Detections below ``params['det_conf']`` are dropped
    first (students predict down to 0.001 for AP; a tracker wants real detections).
    """
    rows = []
    for split, label in TEST_SPLITS.items():
        if split not in results_by_split:
            continue
        results = [r for r in results_by_split[split] if r["score"] >= params["det_conf"]]
        recs = evaluate_tracking(
            results, datasets[split].instances, params["trackers"], params["tracker_args"]
        )
        for r in recs:
            rows.append({"detector": detector, "split": label, **r})
    return rows


def tracking_table(rows: list[dict], paper: list[dict] | None = None) -> pd.DataFrame:
    """Long records -> the wide table: one row per (source, detector, tracker), columns
    ``<split> <metric>`` for split in sparse, dense and the metrics of Table 2."""
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["source"] = df.get("source", "ours (simulated)")
    if paper:
        df = pd.concat([df, pd.DataFrame(paper)], ignore_index=True)
    df["source"] = df["source"].fillna("ours (simulated)")
    wide = df.pivot_table(
        index=["source", "detector", "tracker"],
        columns="split",
        values=list(METRIC_NAMES),
        aggfunc="first",
        sort=False,
    )
    wide.columns = [f"{split} {metric}" for metric, split in wide.columns]
    order = [f"{s} {m}" for s in ("sparse", "dense") for m in METRIC_NAMES]
    return wide.reindex(columns=[c for c in order if c in wide.columns]).reset_index()


_PHRASE = {
    "better": "**better** than",
    "worse": "**worse** than",
    "mixed": "**mixed** (HOTA and MOTA disagree) against",
    "level": "**level** with",
}


def _verdict(d_hota: float, d_mota: float) -> str:
    """A difference below the table's shown precision (0.05) counts as none: 'level' when
    neither metric moves, 'better'/'worse' when one moves and the other does not disagree."""
    signs = {int(np.sign(d)) if abs(d) >= 0.05 else 0 for d in (d_hota, d_mota)}
    if signs == {0}:
        return "level"
    if -1 not in signs:
        return "better"
    if 1 not in signs:
        return "worse"
    return "mixed"


def compare_to_teacher(
    table: pd.DataFrame,
    students: tuple[str, ...] = ("student", "student +CF"),
    teachers: tuple[str, ...] = ("teacher zero-shot", "teacher TTA+fusion"),
    oracle: str = "Oracle",
) -> str:
    """Markdown prose read off the tracking table: per test split (sparse, dense) and distilled
    student, whether it tracks **better** or **worse** than each teacher, said only when HOTA
    and MOTA (mean over the trackers) do not disagree in sign, **level** when neither moves,
    else **mixed**; with the numbers, and its gap to the Oracle.

    table: :func:`tracking_table`'s wide table (rows of other sources, e.g. the paper's, are
    ignored); detectors that are absent are skipped.
    """
    if "source" in table.columns:
        table = table[table["source"] == "ours (simulated)"]
    if table.empty:
        return "No tracking rows to compare."
    mean = table.groupby("detector").mean(numeric_only=True)
    lines = []
    for split in TEST_SPLITS.values():
        cols = [f"{split} HOTA", f"{split} MOTA"]
        if not set(cols) <= set(mean.columns):
            continue
        for stud in (s for s in students if s in mean.index):
            h, m = mean.loc[stud, cols]
            parts = []
            for teach in (t for t in teachers if t in mean.index):
                th, tm = mean.loc[teach, cols]
                parts.append(
                    f"{_PHRASE[_verdict(h - th, m - tm)]} the {teach} (HOTA {h:.1f} vs {th:.1f}, "
                    f"MOTA {m:.1f} vs {tm:.1f})"
                )
            if parts:
                text = f"- **{split}**: the {stud} tracks " + "; ".join(parts)
            else:
                text = f"- **{split}**: the {stud} has HOTA {h:.1f}, MOTA {m:.1f}"
            if oracle in mean.index:
                oh, om = mean.loc[oracle, cols]
                text += (
                    f"; it is {oh - h:.1f} HOTA and {om - m:.1f} MOTA below the {oracle} "
                    f"(HOTA {oh:.1f}, MOTA {om:.1f})"
                )
            lines.append(text + ".")
    if not lines:
        return "No tracking rows to compare."
    head = (
        "Distilled students against their teachers (mean over the trackers; better or worse "
        "where HOTA and MOTA do not disagree, level where neither moves by 0.05, else mixed):"
    )
    return "\n".join([head, "", *lines])


def draw_tracks(ax, image, rows, title: str = "") -> None:
    """Draw (N, >=6) MOT rows of one frame on ``ax`` over ``image`` (H, W[, 3]); the colour is
    the track id (the same id keeps its colour across frames)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    cmap = plt.get_cmap("tab10")
    ax.imshow(image, cmap="gray")
    for r in rows:
        tid = int(r[1])
        ax.add_patch(Rectangle((r[2], r[3]), r[4], r[5], fill=False, lw=1.2, color=cmap(tid % 10)))
        ax.text(r[2], r[3] - 1, str(tid), color=cmap(tid % 10), fontsize=6)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
