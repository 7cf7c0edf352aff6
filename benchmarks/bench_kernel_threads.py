"""What a notebook kernel's thread count costs the Ray trainings beside it (issue #20): the
measurement behind :func:`afss_utils.run.kernel_threads`.

A study notebook's kernel runs its own torch work (predictions, evaluation, rendering) outside
Ray's CPU accounting, while Ray's training tasks hold every core Ray counts. This script times a
training task as the study runs one (YOLO11n-seg Oracle at the default ``yolo`` params, pinned to
one thread by :func:`afss_utils.cluster.pinned_threads`, in its own process) in three settings:

- ``alone``: nothing beside it;
- ``beside 1-thread``: beside a second such process pinned to 1 thread (a kernel given
  ``kernel_threads`` 1 on 2 cores, or a second training);
- ``beside 2-thread``: beside a second process whose torch runs on 2 threads (a kernel given
  every core, as the runner did before).

The process beside it is the same training on another seed, so both sides are timed the same
way: seconds per optimiser step over the epochs after the first (warm-up), median over
``--repeats`` runs, for the timed training and for the one beside it. Each row carries the
1-minute load average before and after its runs. Run on a quiet machine (~6 minutes here):

    python benchmarks/bench_kernel_threads.py --write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"alone": None, "beside 1-thread": 1, "beside 2-thread": 2}


def train_once(threads: int, seed: int, images: int, epochs: int, out: Path) -> dict:
    """One pinned YOLO training on ``images`` of the default training split: its s/step."""
    from afss_utils.cluster import pinned_threads
    from afss_utils.config import load_params
    from afss_utils.datasets import open_split, pool
    from afss_utils.students import YoloStudent

    params = load_params()
    train = pool([open_split(s, "train", params["data_dir"]) for s in params["datasets"]])
    ids = train.image_ids
    subset = train.subset([ids[i * len(ids) // images] for i in range(images)], "bench")
    with pinned_threads(threads):
        student = YoloStudent.from_params({**params, "seed": seed}, "segment")
        student.train(subset.instances, subset.image_dir, out, epochs=epochs)
    times = [h["time"] for h in student.history]
    per_epoch = (times[-1] - times[0]) / (len(times) - 1)
    return {"s_per_step": per_epoch / student.steps_per_epoch(len(subset)), "threads": threads}


def run_setting(beside: int | None, args, tmp: Path, r: int) -> tuple[float, float | None]:
    """(s/step of the timed 1-thread training, s/step of the one beside it or None)."""

    def start(threads: int, seed: int) -> subprocess.Popen:
        cmd = [sys.executable, __file__, "--worker", str(threads), "--seed", str(seed)]
        cmd += ["--images", str(args.images), "--epochs", str(args.epochs)]
        cmd += ["--tmp", str(tmp / f"{threads}_{seed}_{r}_{beside}")]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)

    procs = [start(1, 0)] + ([start(beside, 1)] if beside else [])
    outs = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"a training process failed (exit {p.returncode})")
        outs.append(json.loads(stdout.strip().splitlines()[-1])["s_per_step"])
    return outs[0], (outs[1] if beside else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=160, help="training images per run")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--write", action="store_true", help="record in results/tables")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        from afss_utils.config import quiet_ultralytics

        quiet_ultralytics()
        row = train_once(args.worker, args.seed, args.images, args.epochs, Path(args.tmp))
        print(json.dumps(row))
        return 0

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, beside in SETTINGS.items():
            before = os.getloadavg()[0]
            runs = [run_setting(beside, args, Path(tmp), r) for r in range(args.repeats)]
            after = os.getloadavg()[0]
            timed = statistics.median(t for t, _ in runs)
            other = statistics.median(o for _, o in runs) if beside else None
            print(
                f"{name:16s} timed {timed:.3f} s/step" + (f", beside {other:.3f}" if beside else "")
            )
            note = (
                f"median of {args.repeats}; YOLO11n-seg Oracle at the default yolo params pinned "
                f"to 1 thread, {args.images} images, epochs 2-{args.epochs}; runs "
                f"{' '.join(f'{t:.3f}' for t, _ in runs)}"
                + (f"; the {beside}-thread process beside it: {other:.3f} s/step" if beside else "")
                + f"; load average {before:.2f} before, {after:.2f} after; {os.cpu_count()} CPUs"
            )
            rows.append(
                {
                    "benchmark": "kernel_threads_train_step",
                    "setting": f"1-thread training, {name}",
                    "value": round(timed, 4),
                    "unit": "s/step",
                    "notes": note,
                }
            )
    if args.write:
        from afss_utils.tables import record_benchmarks

        record_benchmarks(rows, ROOT / "results")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
