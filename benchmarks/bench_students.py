"""Student inference speed on this machine: YOLO11n (det, seg) and EfficientDet-D0.

Inference cost does not depend on the weights, so the models are built from their configs with
random weights (none can be downloaded here). Batch 1, one synthetic 512x512 image resized by the
model's own pre-processing, median frames/s over ``--repeats`` timed runs of ``--frames`` frames
each after a warm-up. YOLO runs through ultralytics' predict twice: on the PyTorch model and on
its ONNX export under ONNX Runtime (YoloStudent.export_onnx). The issue's target: >= 30 FPS for
YOLO11n at 320 on CPU.

    python benchmarks/bench_students.py [--sizes 320 640] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from afss_utils.config import cpu_cores, import_ultralytics, torch_threads
from afss_utils.students import EfficientDetStudent, letterbox
from afss_utils.synthetic import render_sample
from afss_utils.tables import record_benchmarks

ROOT = Path(__file__).resolve().parents[1]


def fps(call, frames: int, repeats: int) -> float:
    """Median frames/s of ``call()`` (one frame each) over ``repeats`` runs after a warm-up."""
    for _ in range(3):
        call()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(frames):
            call()
        rates.append(frames / (time.perf_counter() - t0))
    return statistics.median(rates)


def yolo_fps(
    model_yaml: str, imgsz: int, image: np.ndarray, frames: int, repeats: int, runtime: str
) -> float:
    """ultralytics' predict on a BGR numpy frame, through PyTorch or an ONNX export of the model
    (what YoloStudent.export_onnx() writes), so pre- and post-processing are counted too."""
    ultralytics = import_ultralytics()
    model = ultralytics.YOLO(model_yaml)
    bgr = image[..., ::-1].copy()  # ultralytics takes numpy images as BGR
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        if runtime == "onnxruntime":
            # a yaml-built model exports into the working directory
            path = Path(tmp) / model.export(format="onnx", imgsz=imgsz, device="cpu", verbose=False)
            model = ultralytics.YOLO(str(path), task=model.task)
        # as YoloStudent.predict: torch on one thread beside ONNX Runtime's own pool
        with torch_threads(1 if runtime == "onnxruntime" else cpu_cores()):
            return fps(
                lambda: model.predict(bgr, imgsz=imgsz, device="cpu", verbose=False),
                frames,
                repeats,
            )


def effdet_fps(imgsz: int, image: np.ndarray, frames: int, repeats: int) -> float:
    student = EfficientDetStudent(imgsz=imgsz)
    net = student._create().model.eval()  # the bare network, as after training

    def one() -> None:
        canvas, _ = letterbox(image, imgsz)
        x = torch.from_numpy(canvas).permute(2, 0, 1)[None].float() / 255.0
        with torch.inference_mode():
            net(x)

    return fps(one, frames, repeats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="update results/tables/benchmarks.csv")
    args = ap.parse_args(argv)
    image, _, _ = render_sample(0, "lightbox", (512, 512))
    notes = f"CPU, {torch.get_num_threads()} torch threads, batch 1, random weights, median of {args.repeats} x {args.frames} frames"
    rows = []
    for size in args.sizes:
        effdet_size = -(-size // 128) * 128  # effdet needs a multiple of 128 (anchor levels 3-7)
        runs = [
            (
                f"{yaml.removesuffix('.yaml')}{'' if runtime == 'pytorch' else ' onnxruntime'}",
                size,
                lambda s, y=yaml, r=runtime: yolo_fps(y, s, image, args.frames, args.repeats, r),
            )
            for yaml in ("yolo11n.yaml", "yolo11n-seg.yaml")
            for runtime in ("pytorch", "onnxruntime")
        ]
        runs.append(
            (
                "efficientdet_d0",
                effdet_size,
                lambda s: effdet_fps(s, image, args.frames, args.repeats),
            )
        )
        for name, px, measure in runs:
            value = measure(px)
            print(f"{name:16s} {px:4d} px: {value:6.1f} FPS", flush=True)
            rows.append(
                {
                    "benchmark": "student_inference",
                    "setting": f"{name} {px}px cpu",
                    "value": round(value, 1),
                    "unit": "FPS",
                    "notes": notes,
                }
            )
    if args.write:
        record_benchmarks(rows, ROOT / "results")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
