"""Axis-aligned (``detect``) against oriented (``obb``) YOLO11 boxes for debris tracking: the
measurements behind ``debris.yolo.task`` in params/default.yaml.

For each seed and task, two YOLO11n students are trained from scratch at the default ``debris``
params (notebook 05's budget): the distilled **student** on the teacher's TTA+fusion
pseudo-labels (the notebook's ``student`` row; obb labels are the minimum-area rectangles of the
pseudo-labels' masks) and the **Oracle** on ground truth (the simulator's oriented boxes). Each
predicts the sparse and dense test videos (an obb prediction is scored through its axis-aligned
hull), the default trackers follow the detections, and trackeval scores them. A row per
(detector, task, seed, tracker) and one for the mean over the trackers goes to
``benchmarks/debris_obb.csv`` (rows with the same key are replaced); ``--write`` also records the
tracker means in ``results/tables/benchmarks.csv``.

The tracking metrics do not depend on the machine's load; the training seconds do, so each row
carries the load average measured around its training.

    python benchmarks/bench_debris_obb.py --seeds 0
    python benchmarks/bench_debris_obb.py --seeds 0 1 --tasks obb --detectors Oracle
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from afss_utils.coco import load_results
from afss_utils.config import load_params, quiet_ultralytics, seed_everything
from afss_utils.debris.stage import TEST_SPLITS, make_videos, score_detector, train_yolo_detector
from afss_utils.distill import pseudo_instances
from afss_utils.fusion import FusionConfig
from afss_utils.pseudolabel import pseudolabel
from afss_utils.students import YoloStudent
from afss_utils.tables import record_benchmarks
from afss_utils.teachers import build_teacher

ROOT = Path(__file__).resolve().parents[1]
OUT_CSV = ROOT / "benchmarks" / "debris_obb.csv"
KEY = ["detector", "task", "seed", "tracker"]
METRICS = ("MOTA", "IDF1", "HOTA")


def teacher_labels(debris: dict, data: dict, work: Path, device: str) -> list[dict]:
    """The teacher's TTA+fusion pseudo-labels of the training split (reused when on disk)."""
    teacher = build_teacher("streak", top_k=None, device=device, **debris["teacher_options"])
    fusion = FusionConfig.from_params(debris["fusion"])
    out = work / "labels" / "teacher_TTA+fusion_train.json"
    pseudolabel(teacher, data["train"], out, debris["tta"], fusion, prompt="debris")
    return load_results(out)


def run_one(
    detector: str,
    task: str,
    seed: int,
    train: dict,
    data: dict,
    debris: dict,
    work: Path,
    reuse: pd.DataFrame | None = None,
) -> list[dict]:
    """Train one student, track its test detections -> wide rows (one per tracker + mean).

    reuse: earlier rows; when one matches and its weights are on disk, they are loaded instead
    of training again (its train seconds and load are kept), e.g. to rescore after a change to
    the prediction records.
    """
    seed_everything(seed)
    params = {**debris, "yolo": {**debris["yolo"], "task": task}}
    out = work / f"{detector}_{task}_{seed}"
    weights = out / "run" / "weights" / "best.pt"
    weights = weights if weights.is_file() else weights.with_name("last.pt")
    old = None
    if reuse is not None and weights.is_file():
        hit = reuse[(reuse["detector"] == detector) & (reuse["task"] == task)]
        old = hit[hit["seed"] == seed].head(1)
        old = None if old.empty else old.iloc[0]
    if old is not None:
        opts = dict(params["yolo"])
        opts.pop("task")
        student = YoloStudent(task, opts.pop("model"), debris["device"], seed, None, **opts)
        student.load(weights)
        student.train_seconds, load = float(old["train_s"]), float(old["load_avg"])
        print(f"{detector} {task} seed {seed}: reusing {weights}", flush=True)
    else:
        load0 = os.getloadavg()[0]
        student = train_yolo_detector(train, data["train"].image_dir, out, params, seed)
        load = max(load0, os.getloadavg()[0])
    preds = {s: student.predict(data[s]) for s in TEST_SPLITS}
    long = pd.DataFrame(score_detector(detector, preds, data, debris))
    wide = long.pivot_table(index="tracker", columns="split", values=list(METRICS), sort=False)
    wide.columns = [f"{split} {metric}" for metric, split in wide.columns]
    wide.loc["mean"] = wide.mean()
    cols = [f"{s} {m}" for s in TEST_SPLITS.values() for m in METRICS]
    rows = []
    for tracker, r in wide[cols].round(1).iterrows():
        rows.append(
            {
                "detector": detector,
                "task": task,
                "seed": seed,
                "tracker": tracker,
                **r.to_dict(),
                "train_s": round(student.train_seconds, 1),
                "load_avg": round(load, 2),
                "cpus": os.cpu_count(),
            }
        )
    print(pd.DataFrame(rows).to_string(index=False), flush=True)
    return rows


def save(rows: list[dict], path: Path = OUT_CSV) -> pd.DataFrame:
    """Merge ``rows`` into ``path`` (same (detector, task, seed, tracker) replaced)."""
    new = pd.DataFrame(rows)
    if path.is_file():
        old = pd.read_csv(path)
        keep = ~old.set_index(KEY).index.isin(new.set_index(KEY).index)
        new = pd.concat([old[keep], new], ignore_index=True)
    new = new.sort_values(KEY, kind="stable").reset_index(drop=True)
    new.to_csv(path, index=False)
    return new


def benchmark_rows(rows: list[dict]) -> list[dict]:
    """Tracker means as ``results/tables/benchmarks.csv`` rows."""
    out = []
    for r in rows:
        if r["tracker"] != "mean":
            continue
        for col in (f"{s} {m}" for s in TEST_SPLITS.values() for m in METRICS):
            out.append(
                {
                    "benchmark": "debris_box_task",
                    "setting": f"{r['detector']} yolo11n {r['task']} seed {r['seed']} {col}",
                    "value": r[col],
                    "unit": "%",
                    "notes": f"mean over trackers, default debris params; {r['train_s']:.0f} s "
                    f"training at load average {r['load_avg']:.2f}, {r['cpus']} CPUs",
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--tasks", nargs="+", default=["detect", "obb"], choices=["detect", "obb"])
    ap.add_argument("--detectors", nargs="+", default=["student", "Oracle"])
    ap.add_argument("--params", default=str(ROOT / "params" / "default.yaml"))
    ap.add_argument("--work", default=str(ROOT / "data" / "work" / "bench_debris_obb"))
    ap.add_argument("--write", action="store_true", help="also update results/tables/benchmarks")
    ap.add_argument(
        "--reuse", action="store_true", help="load the weights of rows already in the csv"
    )
    args = ap.parse_args(argv)
    quiet_ultralytics()
    params = load_params(args.params)
    debris, device = params["debris"], params.get("device", "cpu")
    debris = {**debris, "device": device}
    work = Path(args.work)
    data = make_videos(debris, work / "data")
    train_sets = {"Oracle": data["train"].instances}
    if "student" in args.detectors:
        labels = teacher_labels(debris, data, work, device)
        train_sets["student"] = pseudo_instances(labels, data["train"], top_k=None)
    rows = []
    for seed in args.seeds:
        for task in args.tasks:
            for detector in args.detectors:
                reuse = pd.read_csv(OUT_CSV) if args.reuse and OUT_CSV.is_file() else None
                rows += run_one(
                    detector, task, seed, train_sets[detector], data, debris, work, reuse
                )
                table = save(rows)
    print(table[table["tracker"] == "mean"].to_string(index=False))
    if args.write:
        record_benchmarks(benchmark_rows(rows), ROOT / "results")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
