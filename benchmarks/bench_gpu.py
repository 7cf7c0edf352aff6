"""GPU cost of the paper's student recipe (issue #21): YOLO11n-seg training seconds per optimiser
step and prediction seconds per image at 640 px on a CUDA device, on default synthetic images
rendered at 640 px, bf16 autocast and fp32.

Two sources:

    python benchmarks/bench_gpu.py measure --out DIR      # on the GPU machine: DIR/bench_gpu.json
    python benchmarks/bench_gpu.py record DIR/bench_gpu.json --write   # here: benchmark rows
    python benchmarks/bench_gpu.py run-rows results/gpu --write

``measure`` times YOLO11n-seg alone (repeated, bf16 and fp32); ``run-rows`` reads the tables of a
study run on the GPU (benchmarks/gpu_study.sh: notebooks 00-03 with params/paper.yaml +
params/gpu.yaml) and gives its seconds per teacher image, per training step of each student and
per notebook.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

IMAGES_PER_DOMAIN = 160  # 480 images: 30 steps per epoch at batch 16
STUDENT_KEY = {"YOLOv11": "yolo", "EfficientDet": "efficientdet"}  # Table III model -> params


def measure(out: Path, repeats: int, epochs: int) -> dict:
    import torch

    from afss_utils import synthetic
    from afss_utils.datasets import open_coco
    from afss_utils.students.yolo import YoloStudent

    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu measure needs a CUDA device; torch sees none")
    try:
        import polars  # noqa: F401
    except ImportError:  # the GPU image lacks it (35 MB wheel): checkpoints without the csv copy
        from ultralytics.engine.trainer import BaseTrainer

        BaseTrainer.read_results_csv = lambda self: {}
    result = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = synthetic.generate(
            tmp / "data",
            ["lightbox", "sunlamp", "earth"],
            IMAGES_PER_DOMAIN,
            7,
            (640, 640),
            progress=False,
            workers=8,
        )
        ds = open_coco(data)
        for precision in ("bf16", "fp32"):
            for r in range(repeats):
                s = YoloStudent(
                    "segment",
                    "yolo11n-seg.yaml",
                    "cuda",
                    seed=r,
                    precision=precision,
                    imgsz=640,
                    batch=16,
                    nbs=16,
                    epochs=epochs,
                    workers=8,
                    cache="ram",
                    amp=False,
                    plots=False,
                )
                s.train(ds.instances, ds.image_dir, tmp / f"{precision}_{r}")
                # results.csv 'time' is cumulative: the last epoch, past set-up and warm-up
                last = s.history[-1]["time"] - s.history[-2]["time"]
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                preds = s.predict(ds)
                torch.cuda.synchronize()
                predict_s = time.perf_counter() - t0
                result["runs"].append(
                    {
                        "precision": precision,
                        "repeat": r,
                        "s_per_step": last / s.steps_per_epoch(len(ds)),
                        "s_per_image_predict": predict_s / len(ds),
                        "predictions": len(preds),
                        "images": len(ds),
                    }
                )
                print(result["runs"][-1], flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_gpu.json").write_text(json.dumps(result, indent=1))
    return result


def record(path: Path, write: bool) -> list[dict]:
    from afss_utils.tables import record_benchmarks

    result = json.loads(path.read_text())
    rows = []
    for precision in ("bf16", "fp32"):
        runs = [r for r in result["runs"] if r["precision"] == precision]
        if not runs:
            continue
        note = (
            f"median of {len(runs)} runs on {result['gpu']} (torch {result['torch']}), 480 "
            "synthetic 640x640 images, batch 16, last epoch of a fresh training; device lent "
            "alone to this benchmark"
        )
        for bench, key, unit in (
            ("gpu_yolo_train_step", "s_per_step", "s/step"),
            ("gpu_yolo_predict", "s_per_image_predict", "s/image"),
        ):
            value = statistics.median(r[key] for r in runs)
            rows.append(
                {
                    "benchmark": bench,
                    "setting": f"yolo11n-seg {precision}:640 batch 16",
                    "value": round(value, 4),
                    "unit": unit,
                    "notes": note,
                }
            )
            print(f"{bench:22s} {precision} {value:.4f} {unit}")
    if write:
        record_benchmarks(rows)
    return rows


def run_rows(run_dir: Path, write: bool) -> list[dict]:
    """Benchmark rows from a study run's tables and manifest (one run: each figure is the median
    over the run's datasets or trainings, not over repeats)."""
    import pandas as pd

    from afss_utils.tables import record_benchmarks

    manifest = json.loads((run_dir / "manifest.json").read_text())
    gpu = ", ".join(manifest["machine"]["gpus"]) or "no GPU"
    where = f"{run_dir.as_posix()} ({gpu}, params {' + '.join(manifest['params_file'])})"
    rows = []
    zero_shot = pd.read_csv(run_dir / "tables" / "table1_zero_shot.csv")
    ours = zero_shot[zero_shot["source"].str.startswith("ours")].drop_duplicates(
        ["dataset", "model"]
    )
    for model, group in ours.groupby("model", sort=True):
        rows.append(
            {
                "benchmark": "gpu_study_teacher",
                "setting": f"{model}:640",
                "value": round(float(group["seconds_per_image"].median()), 4),
                "unit": "s/image",
                "notes": f"median over {len(group)} test splits; {where}",
            }
        )
    runs = pd.read_csv(run_dir / "tables" / "table3_seed_runs.csv").drop_duplicates(
        ["method", "model", "seed"]
    )
    runs = runs[runs["steps"] > 0]
    for model, group in runs.groupby("model", sort=True):
        # the rows on the whole training set: the filtered rows (CF, TR) train fewer steps on
        # fewer images and pay the same per-epoch validation and set-up, so their s/step is
        # mostly overhead
        group = group[group["train_images"] >= 0.95 * group["train_images"].max()]
        per_step = group["train_seconds"] / group["steps"]
        rows.append(
            {
                "benchmark": "gpu_study_train_step",
                "setting": f"{model}:640 batch {manifest['params'][STUDENT_KEY[model]]['batch']}",
                "value": round(float(per_step.median()), 4),
                "unit": "s/step",
                "notes": (
                    f"median over its {len(group)} trainings ({', '.join(group['method'])}); "
                    f"{where}"
                ),
            }
        )
    for name, entry in manifest["notebooks"].items():
        rows.append(
            {
                "benchmark": "gpu_study_notebook",
                "setting": name,
                "value": round(entry["duration_s"], 1),
                "unit": "s",
                "notes": where,
            }
        )
    for row in rows:
        print(f"{row['benchmark']:22s} {row['setting']:36s} {row['value']} {row['unit']}")
    if write:
        record_benchmarks(rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out/gpu")))
    m.add_argument("--repeats", type=int, default=2)
    m.add_argument("--epochs", type=int, default=3)
    r = sub.add_parser("record")
    r.add_argument("path", type=Path)
    r.add_argument("--write", action="store_true", help="update results/tables/benchmarks.csv")
    rr = sub.add_parser("run-rows")
    rr.add_argument("run_dir", type=Path)
    rr.add_argument("--write", action="store_true", help="update results/tables/benchmarks.csv")
    args = ap.parse_args()
    if args.what == "measure":
        measure(args.out, args.repeats, args.epochs)
    elif args.what == "record":
        record(args.path, args.write)
    else:
        run_rows(args.run_dir, args.write)


if __name__ == "__main__":
    main()
