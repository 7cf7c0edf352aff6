"""YOLO11 students (ultralytics: detect, segment or obb): channels-last / bf16 trainer, result
conversion."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from afss_utils import coco
from afss_utils.config import (
    cpu_cores,
    import_ultralytics,
    resolve_device,
    torch_threads,
)
from afss_utils.datasets import Dataset
from afss_utils.debris import obb
from afss_utils.progress import bar as progress_bar
from afss_utils.students.protocol import PREDICT_CONF
from afss_utils.students.training import as_float32, resolve_precision
from afss_utils.students.yolo_export import export_yolo

# ---------------------------------------------------------------------------- YOLO11

# The training model's memory layout: a torch.memory_format name. "contiguous_format" is
# ultralytics' own NCHW layout (benchmarks/bench_training.py times both).
TRAIN_MEMORY_FORMAT = "channels_last"


def yolo_model_source(model: str, task: str) -> str:
    """The model yaml or checkpoint for ``task``: a yaml name is switched between its detect,
    ``-seg`` and ``-obb`` variants (``yolo11n.yaml`` <-> ``yolo11n-seg.yaml`` <->
    ``yolo11n-obb.yaml``); a ``.pt`` must exist."""
    if model.endswith(".pt"):
        if not Path(model).is_file():
            raise FileNotFoundError(
                f"YOLO checkpoint not found: {model} (set params yolo.model to a local .pt or a "
                "model yaml such as yolo11n-seg.yaml to train from scratch)"
            )
        return model
    if not model.endswith((".yaml", ".yml")):
        raise ValueError(f"yolo.model must be a model yaml or a local .pt, got {model!r}")
    stem, ext = os.path.splitext(model)
    stem = stem.removesuffix("-seg").removesuffix("-obb")
    suffix = {"segment": "-seg", "obb": "-obb"}.get(task, "")
    return f"{stem}{suffix}{ext}"


def _student_trainer(base: type, autocast: tuple[str, Any] | None = None) -> type:
    """An ultralytics trainer class that trains in channels-last memory format and, given
    ``autocast=(device_type, dtype)``, runs the network's forward pass under autocast with the
    loss in float32 (ultralytics' own ``amp`` is CUDA fp16 only).

    Channels-last is oneDNN's native convolution layout: a YOLO11n-seg bf16 step at 192 px on one
    CPU thread takes 0.28 s instead of 0.32 (``yolo_train_step`` rows of
    benchmarks/bench_training.py, ``bf16:192`` against ``bf16:192:nchw``, 1 thread);
    ultralytics trains in the default NCHW layout. Only the training model and its input batches
    are converted, after the EMA copy is made, so the EMA weights that are validated and saved
    (and every checkpoint) stay plain contiguous float32 ultralytics models.
    """
    import torch

    layout = getattr(torch, TRAIN_MEMORY_FORMAT)

    class StudentTrainer(base):
        def _setup_train(self):
            super()._setup_train()
            net = self.model.module if hasattr(self.model, "module") else self.model
            # in place (param.data), so the optimiser built above still holds the parameters
            net.to(memory_format=layout)
            if autocast is None:
                return
            inner = net.predict

            def predict(*args, **kwargs):
                with torch.autocast(autocast[0], dtype=autocast[1]):
                    out = inner(*args, **kwargs)
                return as_float32(out)

            net.predict = predict

        def preprocess_batch(self, batch):
            batch = super().preprocess_batch(batch)
            batch["img"] = batch["img"].contiguous(memory_format=layout)
            return batch

    if autocast is None:
        prefix = "ChannelsLast" if TRAIN_MEMORY_FORMAT == "channels_last" else "Student"
    else:
        prefix = {"cpu": "CpuBf16", "cuda": "CudaBf16"}.get(autocast[0], autocast[0].title())
    StudentTrainer.__name__ = StudentTrainer.__qualname__ = f"{prefix}{base.__name__}"
    return StudentTrainer


class YoloStudent:
    """YOLO11 via ultralytics; ``task='segment'`` gives both box and mask predictions.

    Options are ultralytics' own train arguments (epochs, imgsz, batch, patience, workers, amp,
    plots, save_period), plus ``precision`` (auto | bf16 | fp16 | fp32: auto is bf16 autocast
    when training on a CPU that has it, fp32 on a GPU; an explicit bf16 on a GPU is CUDA bf16
    autocast, fp16 (GPU only) ultralytics' amp). ``train`` writes the exported dataset to
    ``out_dir/dataset`` and the run (weights, results.csv) to ``out_dir/run``.
    """

    def __init__(
        self,
        task: str = "segment",
        model: str = "yolo11n-seg.yaml",
        device: str = "cpu",
        seed: int = 0,
        top_k: int | None = 1,
        conf: float = PREDICT_CONF,
        **train_args: Any,
    ):
        if task not in ("detect", "segment", "obb"):
            raise ValueError(f"task must be 'detect', 'segment' or 'obb', got {task!r}")
        self.task = task
        self.name = {"segment": "yolo11_seg", "obb": "yolo11_obb"}.get(task, "yolo11_det")
        self.iou_types = ("bbox", "segm") if task == "segment" else ("bbox",)
        self.model_source = yolo_model_source(model, task)
        self.device, self.seed, self.top_k, self.conf = resolve_device(device), seed, top_k, conf
        self.precision = resolve_precision(train_args.pop("precision", "auto"), self.device)
        self.steps = int(train_args.pop("steps", 1000))
        self.train_args = {"epochs": 30, "imgsz": 320, "batch": 16, **train_args}
        self.model = None
        self.weights: Path | None = None
        self.train_seconds: float | None = None
        self.history: list[dict] = []

    def __getstate__(self) -> dict:
        # A trained ultralytics model holds its trainer (dataloaders, worker processes): a
        # student that travels back from a training task carries its weights file instead.
        return {**self.__dict__, "model": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.weights is not None and Path(self.weights).is_file():
            self.load(self.weights)

    @property
    def epochs(self) -> int:
        return self.train_args["epochs"]

    @property
    def batch(self) -> int:
        return self.train_args["batch"]

    def steps_per_epoch(self, n_images: int) -> int:
        # ultralytics keeps the ragged last batch and accumulates gradients over nbs images
        batches = math.ceil(n_images / self.batch)
        accumulate = max(1, round(self.train_args.get("nbs", 64) / self.batch))
        return max(1, batches // accumulate)

    @classmethod
    def from_params(cls, params: dict, task: str) -> YoloStudent:
        opts = dict(params["yolo"])
        return cls(
            task,
            opts.pop("model"),
            params.get("device", "cpu"),
            params.get("seed", 0),
            params.get("top_k", 1),
            **opts,
        )

    def train(
        self,
        train_instances: dict,
        image_dir: str | os.PathLike,
        out_dir: str | os.PathLike,
        val: tuple[dict, str | os.PathLike] | None = None,
        epochs: int | None = None,
    ) -> YoloStudent:
        import torch

        ultralytics = import_ultralytics()
        out_dir = Path(out_dir).resolve()
        data = export_yolo(train_instances, image_dir, out_dir / "dataset", self.task, val)
        model = ultralytics.YOLO(self.model_source, task=self.task)
        train_args = {**self.train_args, "epochs": epochs or self.epochs}
        autocast = None
        if self.precision == "bf16":
            device_type = "cpu" if self.device.startswith("cpu") else "cuda"
            autocast = (device_type, torch.bfloat16)
        elif self.precision == "fp16":  # CUDA only (resolve_precision): ultralytics' own amp
            train_args["amp"] = True
        trainer = _student_trainer(model.task_map[self.task]["trainer"], autocast)
        t0 = time.perf_counter()
        model.train(
            data=str(data),
            project=str(out_dir),
            name="run",
            exist_ok=True,
            device=self.device,
            seed=self.seed,
            verbose=False,
            trainer=trainer,
            # without a real validation set, validating every epoch only costs time
            val=val is not None,
            **train_args,
        )
        self.train_seconds = time.perf_counter() - t0
        self.model = model  # ultralytics reloads best.pt (last.pt without val) after training
        self.weights = Path(
            model.trainer.best if model.trainer.best.exists() else model.trainer.last
        )
        self.history = _read_results_csv(Path(model.trainer.save_dir) / "results.csv")
        return self

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(epochs trained, path)`` of the periodic checkpoints of the last training
        (ultralytics' ``save_period``), oldest first, then the final weights."""
        if self.weights is None:
            return []
        found = []
        for p in self.weights.parent.glob("epoch*.pt"):
            # ultralytics names a checkpoint by its 0-based epoch index
            found.append((int(p.stem.removeprefix("epoch")) + 1, p))
        last = self.weights.parent / "last.pt"
        if last.exists() and self.history:
            found.append((int(self.history[-1]["epoch"]), last))
        return sorted(found)

    def predict(self, dataset: Dataset, batch: int = 16) -> list[dict]:
        if self.model is None:
            raise RuntimeError(f"{self.name}: train() (or load()) before predict()")
        ids = dataset.image_ids
        out: list[dict] = []
        # ONNX Runtime has its own thread pool; torch (pre- and post-processing only) spinning on
        # the same cores halves its speed (46 -> 26 FPS for YOLO11n at 320 px on 2 cores)
        onnx = self.weights is not None and self.weights.suffix == ".onnx"
        with (
            torch_threads(1 if onnx else cpu_cores()),
            progress_bar(total=len(ids), desc=f"{self.name} predict", leave=False) as bar,
        ):
            for chunk in equal_size_batches(dataset, ids, batch):
                # A list source is decoded up front and run as one batch whatever `batch` says
                # (ultralytics 8.4: check_source -> autocast_list -> LoadPilAndNumpy, bs = the
                # list's length), on the CPU as on a GPU; batch=len(chunk) says so, and keeps
                # it so should a release honour `batch` for lists.
                results = self.model.predict(
                    [str(dataset.image_path(i)) for i in chunk],
                    batch=len(chunk),
                    imgsz=self.train_args["imgsz"],
                    conf=self.conf,
                    max_det=self.top_k or 300,
                    device=self.device,
                    retina_masks=True,
                    verbose=False,  # masks at the original resolution
                )
                for image_id, r in zip(chunk, results, strict=True):
                    out.extend(_yolo_result_records(image_id, r))
                bar.update(len(chunk))
        return out

    def export_onnx(self) -> Path:
        """Export the trained weights to ONNX next to them (``best.onnx``) and return its path.

        ``load()`` the file to predict through ONNX Runtime: on a CPU it runs YOLO11n about twice
        as fast as PyTorch (benchmarks/bench_students.py), with the same boxes and masks.
        """
        if self.weights is None:
            raise RuntimeError(f"{self.name}: train() (or load() a .pt) before export_onnx()")
        if self.weights.suffix != ".pt":
            raise ValueError(f"{self.name}: can only export a .pt checkpoint, not {self.weights}")
        model = import_ultralytics().YOLO(str(self.weights), task=self.task)
        path = model.export(
            format="onnx", imgsz=self.train_args["imgsz"], device=self.device, verbose=False
        )
        return Path(path)

    def load(self, weights: str | os.PathLike) -> YoloStudent:
        """Use trained weights (a previous run's ``best.pt``, or its ``export_onnx()`` file)
        instead of training."""
        self.model = import_ultralytics().YOLO(str(weights), task=self.task)
        self.weights = Path(weights)
        return self


def equal_size_batches(dataset: Dataset, ids: list[int], batch: int) -> list[list[int]]:
    """``ids`` in order, cut into runs of at most ``batch`` images of one size (the json's
    width and height). ultralytics letterboxes a batch of equal shapes to its minimum rectangle
    and a mixed one to a square: other pixels, other predictions than image by image."""
    runs: list[list[int]] = []
    last = None
    for image_id in ids:
        info = dataset.image_info(image_id)
        size = (info.get("width"), info.get("height"))
        if not runs or size != last or len(runs[-1]) >= batch:
            runs.append([])
        runs[-1].append(image_id)
        last = size
    return runs


def _read_results_csv(path: Path) -> list[dict]:
    """ultralytics' per-epoch ``results.csv`` as a list of dicts (column names stripped)."""
    if not path.is_file():
        return []
    import pandas as pd

    df = pd.read_csv(path)
    df.columns = [c.strip() for c in df.columns]
    return df.to_dict("records")


def _yolo_result_records(image_id: int, r: Any) -> list[dict]:
    """COCO results of one ultralytics ``Results`` (boxes already in original pixels); an OBB
    result gives its axis-aligned hull, clipped to the image like ground-truth and detect boxes,
    as ``bbox`` and the (4, 2) corners as ``obb``."""
    if getattr(r, "obb", None) is not None:
        corners = r.obb.xyxyxyxy.cpu().numpy().astype(float).reshape(-1, 4, 2)
        (h, w), scores = r.orig_shape, r.obb.conf.cpu().numpy()
        xyxy = np.clip(coco.xywh_to_xyxy(obb.corners_to_xywh(corners)), 0, [w, h, w, h])
        return [
            coco.result_record(
                image_id, xyxy[i], float(scores[i]), obb=corners[i].round(2).ravel().tolist()
            )
            for i in range(len(scores))
        ]
    if r.boxes is None or len(r.boxes) == 0:
        return []
    boxes = r.boxes.xyxy.cpu().numpy()
    scores = r.boxes.conf.cpu().numpy()
    masks = None
    if r.masks is not None:
        masks = r.masks.data.cpu().numpy() > 0.5
        if masks.shape[1:] != tuple(r.orig_shape):
            raise RuntimeError(f"mask shape {masks.shape[1:]} != image shape {r.orig_shape}")
    return [
        coco.result_record(
            image_id, boxes[i], float(scores[i]), None if masks is None else masks[i]
        )
        for i in range(len(scores))
    ]
