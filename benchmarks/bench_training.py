"""Student training cost and quality by configuration: the measurements behind default.yaml's
YOLO resolution, width, precision and memory layout.

speed:   seconds per optimiser step of YOLO11 training (batch 16, ultralytics' own loop, mosaic
         on, data cached in RAM) for each configuration, timed over the second epoch (the first
         carries set-up and warm-up), median of ``--repeats`` runs.
quality: one Oracle training per configuration on the default synthetic training split (ground
         truth labels, ``--steps`` optimiser steps), scored on the default test split: box AP per
         domain. Needs notebook 00's data (``python -m afss_utils.run --only 00``).

Run on a quiet machine (the load average is recorded with every figure):

    python benchmarks/bench_training.py speed --write
    python benchmarks/bench_training.py speed --configs bf16:192:nchw bf16:192 --threads 1 --write
    python benchmarks/bench_training.py speed --configs bf16:192 center:bf16:192 center:fp32:192 --write
    python benchmarks/bench_training.py quality --configs bf16:192 bf16:256 --steps 1500 --write
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
from pathlib import Path

import yaml

from afss_utils import synthetic
from afss_utils.config import import_ultralytics, load_params
from afss_utils.datasets import open_coco, open_split, pool
from afss_utils.evaluate import score_rows
from afss_utils.students import YoloStudent
from afss_utils.tables import record_benchmarks

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = ["fp32:192", "bf16:192", "fp32:256", "bf16:256", "bf16:192:narrow"]


def narrow_yaml(folder: Path) -> str:
    """YOLO11n-seg at half its channel width (width multiple 0.125 instead of 0.25)."""
    ultralytics = import_ultralytics()
    cfg = Path(ultralytics.__file__).parent / "cfg" / "models" / "11" / "yolo11-seg.yaml"
    spec = yaml.safe_load(cfg.read_text())
    spec["scales"] = {"n": [0.50, 0.125, 1024]}
    # ultralytics reads the scale from the file name (yolo11<n>...)
    path = folder / "yolo11n-narrow-seg.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def student_for(config: str, folder: Path, **args) -> YoloStudent:
    """``precision:imgsz[:narrow][:nchw]`` -> an untrained YOLO11n-seg student (``nchw``: trained
    in ultralytics' own NCHW layout instead of the students' channels-last; see
    :func:`layout_of`)."""
    precision, imgsz, *rest = config.split(":")
    model = narrow_yaml(folder) if "narrow" in rest else "yolo11n-seg.yaml"
    return YoloStudent(
        "segment",
        model,
        "cpu",
        precision=precision,
        imgsz=int(imgsz),
        batch=16,
        nbs=16,
        workers=2,
        cache="ram",
        amp=False,
        plots=False,
        **args,
    )


def layout_of(config: str) -> str:
    """The torch memory format a speed config trains in."""
    return "contiguous_format" if "nchw" in config.split(":")[2:] else "channels_last"


def load_note() -> str:
    return f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs"


def speed(configs: list[str], repeats: int, images: int, threads: int | None = None) -> list[dict]:
    """Seconds per step of each config; ``threads``: each training pinned to that many threads
    (as a study training task is), else torch's default (every core)."""
    from afss_utils.cluster import pinned_threads
    from afss_utils.students import yolo

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = synthetic.generate(
            tmp / "data", ["lightbox", "sunlamp", "earth"], images // 3, 7, progress=False
        )
        ds = open_coco(data)
        for config in configs:
            if config.startswith("center"):
                rows.append(center_speed(config, ds, tmp, repeats))
                continue
            per_step, loads = [], []
            for r in range(repeats):
                s = student_for(config, tmp, epochs=2, seed=r)
                loads.append(os.getloadavg()[0])
                yolo.TRAIN_MEMORY_FORMAT = layout_of(config)
                try:
                    with pinned_threads(threads) if threads else contextlib.nullcontext():
                        s.train(ds.instances, ds.image_dir, tmp / f"{config.replace(':', '_')}_{r}")
                finally:
                    yolo.TRAIN_MEMORY_FORMAT = "channels_last"
                # results.csv 'time' is cumulative seconds at the end of each epoch
                epoch2 = s.history[1]["time"] - s.history[0]["time"]
                per_step.append(epoch2 / s.steps_per_epoch(len(ds)))
            value = statistics.median(per_step)
            print(f"{config:20s} {value:.3f} s/step  runs {[round(v, 3) for v in per_step]}")
            rows.append(
                {
                    "benchmark": "yolo_train_step",
                    "setting": f"yolo11n-seg {config} batch 16"
                    + (f", {threads} thread{'s' * (threads > 1)}" if threads else ""),
                    "value": round(value, 4),
                    "unit": "s/step",
                    "notes": f"median of {repeats} (2nd epoch of {len(ds)} images); "
                    f"{layout_of(config)}; runs {' '.join(f'{v:.3f}' for v in per_step)}; "
                    f"load average {max(loads):.2f} at most, {os.cpu_count()} CPUs",
                }
            )
    return rows


def center_speed(config: str, ds, tmp: Path, repeats: int) -> dict:
    """Seconds per optimiser step of the center-heatmap student (``center:precision:imgsz``,
    ResNet18, batch 16, its own loop), over two epochs of ``ds`` including the first, median of
    repeats."""
    from afss_utils.students.centernet import CenterNetStudent

    _, precision, imgsz = config.split(":")
    imgsz = int(imgsz)
    per_step, loads = [], []
    for r in range(repeats):
        s = CenterNetStudent(epochs=2, imgsz=imgsz, batch=16, precision=precision, seed=r)
        loads.append(os.getloadavg()[0])
        s.train(ds.instances, ds.image_dir, tmp / f"center_{imgsz}_{r}")
        per_step.append(s.train_seconds / (2 * s.steps_per_epoch(len(ds))))
    value = statistics.median(per_step)
    print(f"{config:20s} {value:.3f} s/step  runs {[round(v, 3) for v in per_step]}")
    return {
        "benchmark": "center_train_step",
        "setting": f"center_resnet18 {s.precision}:{imgsz} batch 16",
        "value": round(value, 4),
        "unit": "s/step",
        "notes": f"median of {repeats} (2 epochs of {len(ds)} images incl. the first); "
        f"load average {max(loads):.2f} at most, {os.cpu_count()} CPUs",
    }


def quality(configs: list[str], steps: int, params_file: str, seed: int) -> list[dict]:
    params = load_params(params_file)
    specs = params["datasets"]
    train = pool([open_split(s, "train", params["data_dir"]) for s in specs], "train")
    tests = {s["name"]: open_split(s, "test", params["data_dir"]) for s in specs}
    test = pool(list(tests.values()), "test")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:
            s = student_for(config, Path(tmp), steps=steps, seed=seed)
            epochs = -(-steps // s.steps_per_epoch(len(train)))
            note = load_note()
            s.train(
                train.instances,
                train.image_dir,
                Path(tmp) / config.replace(":", "_"),
                epochs=epochs,
            )
            predictions = s.predict(test)
            aps = {
                name: score_rows(test, predictions, ds.image_ids, tasks=("box",))[0]
                for name, ds in tests.items()
            }
            summary = " / ".join(f"{aps[n]['AP']:.1f}" for n in tests)
            print(f"{config:20s} box AP {summary} ({', '.join(tests)}), {s.train_seconds:.0f} s")
            setting = f"Oracle yolo11n-seg {config} {len(train)} images x {epochs} epochs"
            for name, ap in aps.items():
                for metric in ("AP", "AP75"):
                    rows.append(
                        {
                            "benchmark": "oracle_budget",
                            "setting": f"{setting} {name} box {metric}",
                            "value": round(ap[metric], 1),
                            "unit": "%",
                            "notes": f"{steps} steps, seed {seed}, {s.train_seconds:.0f} s "
                            f"training; {note} at start",
                        }
                    )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["speed", "quality"])
    ap.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=240, help="speed: training images")
    ap.add_argument("--threads", type=int, help="speed: pin each training to this many threads")
    ap.add_argument("--steps", type=int, default=1500, help="quality: optimiser steps")
    ap.add_argument("--params", default=str(ROOT / "params" / "default.yaml"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="update results/tables/benchmarks.csv")
    args = ap.parse_args(argv)
    if args.what == "speed":
        rows = speed(args.configs, args.repeats, args.images, args.threads)
    else:
        rows = quality(args.configs, args.steps, args.params, args.seed)
    if args.write:
        record_benchmarks(rows, ROOT / "results")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
