"""Ray beside the serial path (issue #20): labelling images/s with 1 and 2 Ray Data actors, and
trainings/hour with 1 and 2 concurrent Ray training tasks, median of ``--repeats``.

labelling: the default study's labelling step: the classical teacher (``classical_threshold``,
    top-1) with TTA ``vflip`` + WBF (params ``fusion``, ``top_k`` 1) over ``--images`` images,
    through :func:`afss_utils.pseudolabel.pseudolabel` end to end (decode, teacher, fusion, RLE,
    cache, final json), each run into a fresh output. ``serial``: ``engine="serial"``, in this
    process; ``ray N actors``: ``engine="ray"`` with ``labelling_actors`` N. Images/s =
    images / wall seconds of the call; a Ray run's includes starting its actor pool (every
    labelling run in the study pays it), not starting Ray itself, which is timed once apart
    (``ray_startup_s``).
training: a YOLO11n-seg Oracle row at the default study's settings (params ``yolo``: imgsz 192,
    batch 16, nbs 16, precision auto, cache ram, workers 2) for ``--steps`` optimiser steps on
    ``--train-images`` training images with their ground truth, predicting ``--test-images``
    test images, through :func:`afss_utils.distill.train_fresh`. ``serial``: called in this
    process on all cores (the path without Ray); ``ray 1 task``: one Ray task pinned to 1 CPU
    (``cluster.cpus_per_training`` 1); ``ray 2 tasks``: two such tasks at once (seeds 0 and 1).
    Trainings/hour = trainings / wall seconds of the whole call (set-up, RAM cache, training,
    prediction) x 3600; s/step is a training's steady rate (median over the trainings): its
    epochs after the first (warm-up) and before the last (which also validates), when there
    are three or more; with the default 60 steps on 240 images, epochs 2-3 of 4.

Data: the default study's data (``data_dir`` of ``--params``: notebook 00's output) when it is
there, else a set rendered by :mod:`afss_utils.synthetic` at ``--image-size`` into ``--work``
(reused by later runs). Images are taken evenly across the pooled split, so every domain is in.
Serial rows run first, before Ray starts, so no idle Ray process shares their cores.

Every row carries the 1-minute load average before and after its runs, the date and the git sha
(``+dirty`` for a modified tree). Rows go to ``--out`` (``benchmarks/ray.csv``; a row replaces
the one with the same ``benchmark, setting, size``); ``--write`` also records the figures in
``results/tables/benchmarks.csv``. Run on a quiet machine:

    python benchmarks/bench_ray.py                           # ~15-20 min on 2 cores
    python benchmarks/bench_ray.py --images 20 --train-images 16 --test-images 4 --steps 2 \
        --repeats 1 --imgsz 64 --image-size 128 128 --work /tmp/bench_ray --out /tmp/ray.csv
"""

from __future__ import annotations

import argparse
import datetime
import functools
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from afss_utils import synthetic
from afss_utils.cluster import ClusterConfig
from afss_utils.config import load_params, quiet_ultralytics
from afss_utils.datasets import Dataset, DatasetNotFoundError, open_coco, open_split, pool
from afss_utils.distill import train_fresh
from afss_utils.fusion import FusionConfig
from afss_utils.pseudolabel import pseudolabel
from afss_utils.run import git_state
from afss_utils.students import build_student
from afss_utils.tables import record_benchmarks
from afss_utils.teachers import build_teacher

ROOT = Path(__file__).resolve().parents[1]
OUT_CSV = ROOT / "benchmarks" / "ray.csv"
KEY = ["benchmark", "setting", "size"]
COLUMNS = [
    *KEY,
    "value",
    "unit",
    "s_per_step",
    "runs",
    "ray_startup_s",
    "load_before",
    "load_after",
    "cpus",
    "date",
    "git_sha",
    "notes",
]
DOMAINS = ["lightbox", "sunlamp", "earth"]


# ----------------------------------------------------------------------------- data
def evenly(ds: Dataset, n: int, name: str) -> Dataset:
    """``n`` images of ``ds`` spread evenly over its id list (so over its domains)."""
    ids = ds.image_ids
    if n > len(ids):
        raise SystemExit(f"{name}: {n} images asked for, the data has {len(ids)}")
    return ds.subset([ids[i * len(ids) // n] for i in range(n)], name)


def rendered(work: Path, split: str, n: int, size: tuple[int, int], seed: int) -> Dataset:
    """A synthetic set of >= ``n`` images (all domains), rendered once into ``work``."""
    per_domain = math.ceil(n / len(DOMAINS))
    folder = work / f"{split}_{per_domain}x3_{size[0]}x{size[1]}_seed{seed}"
    ann = folder / "annotations.json"
    if not ann.is_file():
        print(f"rendering {per_domain * len(DOMAINS)} {split} images into {folder} ...", flush=True)
        synthetic.generate(folder, DOMAINS, per_domain, seed, size=size, progress=False)
    return open_coco(ann)


def load_data(args) -> tuple[Dataset, Dataset, Dataset, str]:
    """(labelling images, training images with GT, test images, where they came from)."""
    params = load_params(args.params)
    need = max(args.images, args.train_images)
    try:
        train = pool([open_split(s, "train", params["data_dir"]) for s in params["datasets"]])
        test = pool([open_split(s, "test", params["data_dir"]) for s in params["datasets"]])
        if len(train) < need or len(test) < args.test_images:
            raise DatasetNotFoundError("too few images")
        source = f"{params['data_dir']} (the study's data)"
    except DatasetNotFoundError:
        size = tuple(args.image_size)
        train = rendered(Path(args.work), "train", need, size, seed=7)
        test = rendered(Path(args.work), "test", args.test_images, size, seed=8)
        source = f"rendered {size[0]}x{size[1]} (afss_utils.synthetic)"
    return (
        evenly(train, args.images, "labelling"),
        evenly(train, args.train_images, "train"),
        evenly(test, args.test_images, "test"),
        source,
    )


# ----------------------------------------------------------------------------- rows
def stamp() -> dict:
    git = git_state(ROOT)
    sha = (git["sha"] or "unknown")[:10] + ("+dirty" if git["dirty"] else "")
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "git_sha": sha,
        "cpus": os.cpu_count(),
    }


def timed_runs(run, repeats: int) -> tuple[list, float, float]:
    """``run(r)`` for r in range(repeats): (its results, load average before, after)."""
    before = os.getloadavg()[0]
    results = [run(r) for r in range(repeats)]
    return results, before, os.getloadavg()[0]


# ----------------------------------------------------------------------------- labelling
def bench_labelling(ds: Dataset, params: dict, engine: str, actors: int, args, tmp: Path) -> dict:
    teacher = build_teacher("classical_threshold", top_k=1, device="cpu")
    fusion = FusionConfig.from_params({**params["fusion"], "top_k": 1})
    cluster = ClusterConfig(labelling_actors=actors)

    def run(r: int) -> float:
        out = tmp / f"labels_{engine}_{actors}_{r}" / "labels.json"
        t0 = time.perf_counter()
        pseudolabel(
            teacher, ds, out, params["tta"], fusion, progress=False, engine=engine, cluster=cluster
        )
        return time.perf_counter() - t0

    seconds, before, after = timed_runs(run, args.repeats)
    value = len(ds) / statistics.median(seconds)
    setting = "serial" if engine == "serial" else f"ray {actors} actor{'s' * (actors > 1)}"
    print(f"labelling {setting:14s} {value:7.2f} images/s  runs {[round(s, 1) for s in seconds]} s")
    return {
        "benchmark": "ray_labelling",
        "setting": setting,
        "size": f"{len(ds)} images",
        "value": round(value, 3),
        "unit": "images/s",
        "runs": " ".join(f"{s:.2f}" for s in seconds),
        "load_before": round(before, 2),
        "load_after": round(after, 2),
        "notes": f"classical_threshold, TTA {'+'.join(params['tta'])} + "
        f"{params['fusion']['method']}; wall s per run in runs",
    }


# ----------------------------------------------------------------------------- training
def train_row(seed: int, yolo: dict, gt: list, train: Dataset, test: Dataset, out: Path) -> dict:
    """One Oracle training (the body of every row): its node, threads, steps and timings."""
    import torch

    quiet_ultralytics()  # in this process and in a Ray worker alike
    make = functools.partial(
        build_student, "yolo11_seg", {"device": "cpu", "seed": seed, "top_k": 1, "yolo": yolo}
    )
    t0 = time.perf_counter()
    record, student = train_fresh(make, gt, train, test, out)
    # cumulative seconds at the end of each epoch; the last one also validates, the first
    # carries the warm-up: the steady rate is over the epochs between when there are any
    times = [h["time"] for h in student.history]
    per_epoch = student.steps_per_epoch(len(train))
    if len(times) >= 3:
        steady = (times[-2] - times[0]) / ((len(times) - 2) * per_epoch)
    elif len(times) == 2:
        steady = (times[1] - times[0]) / per_epoch
    else:
        steady = student.train_seconds / record.steps
    return {
        "wall_s": time.perf_counter() - t0,
        "steps": record.steps,
        "s_per_step": steady,
        "threads": torch.get_num_threads(),
        "pid": os.getpid(),
    }


def bench_training(data: tuple, params: dict, mode: str, args, tmp: Path) -> dict:
    """mode: serial | ray1 | ray2."""
    _, train, test, _ = data
    yolo = {**params["yolo"], "steps": args.steps}
    if args.imgsz:
        yolo["imgsz"] = args.imgsz
    gt = [
        {k: a[k] for k in ("image_id", "bbox", "segmentation")} | {"score": 1.0}
        for a in train.instances["annotations"]
    ]
    n_tasks = 2 if mode == "ray2" else 1

    def run(r: int) -> tuple[float, list[dict]]:
        calls = {
            seed: functools.partial(
                train_row, seed, yolo, gt, train, test, tmp / f"train_{mode}_{r}_{seed}"
            )
            for seed in range(n_tasks)
        }
        t0 = time.perf_counter()
        if mode == "serial":
            rows = [call() for call in calls.values()]
        else:
            from afss_utils import cluster

            rows = list(
                cluster.run_all(calls, ClusterConfig(cpus_per_training=1), progress=False).values()
            )
        return time.perf_counter() - t0, rows

    results, before, after = timed_runs(run, args.repeats)
    walls = [w for w, _ in results]
    rows = [row for _, rs in results for row in rs]
    per_hour = n_tasks * 3600 / statistics.median(walls)
    s_per_step = statistics.median(row["s_per_step"] for row in rows)
    setting = {
        "serial": "serial (in-process, all cores)",
        "ray1": "ray 1 task x 1 CPU",
        "ray2": "ray 2 tasks x 1 CPU",
    }[mode]
    threads = sorted({row["threads"] for row in rows})
    print(
        f"training  {setting:30s} {per_hour:7.1f} trainings/h  {s_per_step:.3f} s/step  "
        f"runs {[round(w, 1) for w in walls]} s"
    )
    return {
        "benchmark": "ray_training",
        "setting": setting,
        "size": f"{rows[0]['steps']} steps",
        "value": round(per_hour, 2),
        "unit": "trainings/h",
        "s_per_step": round(s_per_step, 4),
        "runs": " ".join(f"{w:.1f}" for w in walls),
        "load_before": round(before, 2),
        "load_after": round(after, 2),
        "notes": f"yolo11n-seg Oracle, imgsz {yolo['imgsz']} batch {yolo['batch']} "
        f"precision {yolo['precision']} cache {yolo['cache']} workers {yolo['workers']}, "
        f"{len(train)} train / {len(test)} test images, torch threads {threads}; "
        "wall s per run (set-up, cache, training, prediction) in runs",
    }


# ----------------------------------------------------------------------------- output
def write_csv(rows: list[dict], path: Path) -> pd.DataFrame:
    """Rows into ``path``; an existing row with the same KEY is replaced, others are kept."""
    new = pd.DataFrame(rows, columns=COLUMNS)
    if path.is_file():
        old = pd.read_csv(path, dtype=str)
        replaced = old.set_index(KEY).index.isin(new.set_index(KEY).index)
        new = pd.concat([old[~replaced], new.astype(str)], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    new.to_csv(path, index=False)
    return new


def markdown(rows: list[dict]) -> str:
    cols = [
        "benchmark",
        "setting",
        "size",
        "value",
        "unit",
        "s_per_step",
        "load_before",
        "load_after",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = ["" if row.get(c) is None else str(row[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--what", nargs="+", default=["labelling", "training"])
    ap.add_argument("--images", type=int, default=300, help="labelling: images")
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="labelling: actors")
    ap.add_argument("--steps", type=int, default=60, help="training: optimiser steps")
    ap.add_argument("--train-images", type=int, default=240, help="training: images (GT)")
    ap.add_argument("--test-images", type=int, default=30, help="training: images predicted")
    ap.add_argument("--imgsz", type=int, default=None, help="training: imgsz (default: params)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--image-size", type=int, nargs=2, default=[512, 512], metavar=("W", "H"))
    ap.add_argument("--params", default=str(ROOT / "params" / "default.yaml"))
    ap.add_argument("--work", default=str(ROOT / "data" / "work" / "bench_ray"))
    ap.add_argument("--out", default=str(OUT_CSV), help="csv (rows with the same key replaced)")
    ap.add_argument("--write", action="store_true", help="also update results/tables/benchmarks")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    data = load_data(args)
    print(
        f"data: {data[3]}; {len(data[0])} labelling, {len(data[1])} train, {len(data[2])} test "
        f"images; load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        tmp = Path(tmp)
        # serial first: no Ray process shares its cores
        if "labelling" in args.what:
            rows.append(bench_labelling(data[0], params, "serial", 1, args, tmp))
        if "training" in args.what:
            rows.append(bench_training(data, params, "serial", args, tmp))
        from afss_utils import cluster

        t0 = time.perf_counter()
        ray = cluster.connect(ClusterConfig(), num_cpus=os.cpu_count())
        startup = time.perf_counter() - t0
        cpus = ray.cluster_resources().get("CPU")
        print(f"ray start-up {startup:.1f} s ({cpus:g} CPUs at {os.environ['RAY_ADDRESS']})")
        try:
            ray_rows = []
            if "labelling" in args.what:
                for actors in args.actors:
                    ray_rows.append(bench_labelling(data[0], params, "ray", actors, args, tmp))
            if "training" in args.what:
                for mode in ("ray1", "ray2"):
                    ray_rows.append(bench_training(data, params, mode, args, tmp))
        finally:
            cluster.shutdown()
        for row in ray_rows:
            row["ray_startup_s"] = round(startup, 2)
            row["notes"] += f"; Ray: {cpus:g} CPUs, start-up {startup:.1f} s not included"
        rows += ray_rows
    common = stamp()
    for row in rows:
        row.update({**common, "notes": f"median of {args.repeats}; data {data[3]}; {row['notes']}"})
    print()
    print(markdown(rows))
    path = Path(args.out)
    write_csv(rows, path)
    print(f"\nwrote {path}")
    if args.write:
        record_benchmarks(
            [
                {
                    "benchmark": r["benchmark"],
                    "setting": f"{r['setting']}, {r['size']}",
                    "value": r["value"],
                    "unit": r["unit"],
                    "notes": f"{r['notes']}; load {r['load_before']}-{r['load_after']}",
                }
                for r in rows
            ],
            ROOT / "results",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
