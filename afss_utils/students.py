"""Student detectors the pseudo-labels are distilled into (paper III-C, IV-C): YOLO11 (detect or
segment, ultralytics) and EfficientDet-D0 (effdet), trained from scratch here (no weights can be
downloaded; a local ``.pt`` may be given for YOLO).

Every student has the same small interface (:class:`Student`): ``train(instances, image_dir,
out_dir, val=None)`` on a COCO instances dict, and ``predict(dataset)`` -> COCO results (``bbox``
xywh pixels of the original image, ``score``, RLE ``segmentation`` for segmenters), so all
stages are scored by the same evaluator. ``build_student(name, params)`` makes one from the
study params (keys ``yolo``, ``efficientdet``, ``device``, ``seed``, ``top_k``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from afss_utils import coco, obb
from afss_utils.config import (
    cpu_cores,
    import_ultralytics,
    resolve_device,
    seed_everything,
    torch_threads,
)
from afss_utils.datasets import Dataset, read_image
from afss_utils.distill import export_yolo

# A low score threshold: AP integrates over the whole precision-recall curve, so cutting
# low-confidence detections would truncate it.
PREDICT_CONF = 0.001


@runtime_checkable
class Student(Protocol):
    """A trainable detector. ``iou_types`` are the COCO metrics its predictions support."""

    name: str
    iou_types: tuple[str, ...]
    epochs: int  # the training length under the paper's fixed-epoch budget
    steps: int  # the training length under the equal-steps budget (see distill.training_epochs)
    train_seconds: float | None

    def steps_per_epoch(self, n_images: int) -> int:
        """Optimiser steps one epoch over ``n_images`` training images takes."""
        ...

    def train(
        self,
        train_instances: dict,
        image_dir: str | os.PathLike,
        out_dir: str | os.PathLike,
        val: tuple[dict, str | os.PathLike] | None = None,
        epochs: int | None = None,
    ) -> Student:
        """Train from scratch on a COCO instances dict whose file names are under ``image_dir``,
        for ``epochs`` (default: the configured ``self.epochs``)."""
        ...

    def predict(self, dataset: Dataset) -> list[dict]:
        """COCO results over the dataset's images, top ``top_k`` per image, original pixels."""
        ...


# ---------------------------------------------------------------------------- YOLO11


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


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX), where autocast to
    bf16 roughly halves a YOLO11n training step; elsewhere it is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str) -> str:
    """``'bf16'`` or ``'fp32'`` for CPU training; ``'auto'`` picks bf16 where the CPU has it.
    On CUDA, mixed precision is ultralytics' own ``amp`` argument, so this returns ``'fp32'``."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"yolo.precision must be auto, bf16 or fp32, got {precision!r}")
    if not str(device).startswith("cpu"):
        return "fp32"
    if precision == "auto":
        return "bf16" if cpu_supports_bf16() else "fp32"
    return precision


def _as_float32(x: Any) -> Any:
    """Cast the floating tensors of a (nested) model output back to float32."""
    import torch

    if isinstance(x, torch.Tensor):
        return x.float() if x.is_floating_point() else x
    if isinstance(x, (list, tuple)):
        return type(x)(_as_float32(v) for v in x)
    if isinstance(x, dict):
        return {k: _as_float32(v) for k, v in x.items()}
    return x


def _cpu_bf16_trainer(base: type) -> type:
    """An ultralytics trainer class that runs the network's forward pass under CPU bf16
    autocast and the loss in float32 (ultralytics' own ``amp='bf16'`` is CUDA-only).

    Only the training model is wrapped, after the EMA copy is made, so the EMA weights that are
    validated and saved (and every checkpoint) stay plain float32 ultralytics models.
    """
    import torch

    class CpuBf16Trainer(base):
        def _setup_train(self):
            super()._setup_train()
            net = self.model.module if hasattr(self.model, "module") else self.model
            inner = net.predict

            def predict(*args, **kwargs):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = inner(*args, **kwargs)
                return _as_float32(out)

            net.predict = predict

    CpuBf16Trainer.__name__ = CpuBf16Trainer.__qualname__ = f"CpuBf16{base.__name__}"
    return CpuBf16Trainer


class YoloStudent:
    """YOLO11 via ultralytics; ``task='segment'`` gives both box and mask predictions.

    Options are ultralytics' own train arguments (epochs, imgsz, batch, patience, workers, amp,
    plots, save_period), plus ``precision`` (auto | bf16 | fp32: bf16 autocast when training on
    a CPU that has it). ``train`` writes the exported dataset to ``out_dir/dataset`` and the run
    (weights, results.csv) to ``out_dir/run``.
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
        ultralytics = import_ultralytics()
        out_dir = Path(out_dir).resolve()
        data = export_yolo(train_instances, image_dir, out_dir / "dataset", self.task, val)
        model = ultralytics.YOLO(self.model_source, task=self.task)
        trainer = None
        if self.precision == "bf16":
            trainer = _cpu_bf16_trainer(model.task_map[self.task]["trainer"])
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
            **{**self.train_args, "epochs": epochs or self.epochs},
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
            tqdm(total=len(ids), desc=f"{self.name} predict", leave=False) as bar,
        ):
            for start in range(0, len(ids), batch):
                chunk = ids[start : start + batch]
                results = self.model.predict(
                    [str(dataset.image_path(i)) for i in chunk],
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


# ---------------------------------------------------------------------------- shared training
# Pieces the hand-written training loops (EfficientDet here, CenterNet in afss_utils.centernet)
# share: letterboxed images cached in memory, random flips, the learning-rate schedule.


def load_letterboxed(
    instances: dict, image_dir: str | os.PathLike, size: int, desc: str = "load"
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Letterbox every image of a COCO instances dict once, to keep in memory (decoding images
    every epoch dominates training on a CPU).

    Returns (N, S, S, 3) uint8 canvases, per-image (K, 4) float xyxy boxes in the canvas frame
    (annotations in their json order) and the (N, 2) int w, h extent of each resized image
    inside its canvas (top-left, see :func:`letterbox`). Images follow ``instances["images"]``.
    """
    image_dir = Path(image_dir)
    by_image: dict[int, list[list[float]]] = {img["id"]: [] for img in instances["images"]}
    for a in instances["annotations"]:
        by_image[a["image_id"]].append(a["bbox"])
    canvases, boxes, extents = [], [], []
    for img in tqdm(instances["images"], desc=desc, leave=False):
        image = read_image(image_dir / img["file_name"])
        canvas, scale = letterbox(image, size)
        canvases.append(canvas)
        boxes.append(coco.xywh_to_xyxy(np.array(by_image[img["id"]]).reshape(-1, 4)) * scale)
        extents.append(
            (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        )
    if not canvases:
        return np.zeros((0, size, size, 3), np.uint8), [], np.zeros((0, 2), int)
    return np.stack(canvases), boxes, np.array(extents)


def random_flips(
    canvas: np.ndarray, boxes: np.ndarray, extent: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical flips, each with probability 0.5, of a letterboxed (S, S, 3)
    canvas and its (K, 4) xyxy boxes. The flip axis is the image's own ``extent`` (w, h), not
    the padded canvas, so the image stays top-left as at inference. Returns copies."""
    img, b = canvas.copy(), boxes.copy()
    w_img, h_img = extent
    if rng.random() < 0.5:
        img[:, :w_img] = img[:, :w_img][:, ::-1]
        b[:, [0, 2]] = w_img - b[:, [2, 0]]
    if rng.random() < 0.5:
        img[:h_img] = img[:h_img][::-1]
        b[:, [1, 3]] = h_img - b[:, [3, 1]]
    return img, b


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """``LambdaLR`` factor: linear warm-up over ``warmup_steps``, then cosine decay to 0 at
    ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return factor


# ---------------------------------------------------------------------------- EfficientDet

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Resize (H, W, 3) uint8 so its longer side is ``size`` and pad bottom/right with zeros to
    (size, size, 3). Returns the canvas and the scale (resized px = original px * scale); the
    image sits at the top-left, so mapping back is a division by the scale."""
    import cv2

    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=interp)
    return canvas, scale


def to_effdet_target(boxes_xyxy: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) xyxy original pixels -> effdet's target: (N, 4) float32 **yxyx** pixels of the
    letterboxed input, and (N,) float32 classes starting at **1** (effdet's AnchorLabeler
    subtracts 1 and reserves 0 for background; -1 marks padding)."""
    b = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4) * np.float32(scale)
    return b[:, [1, 0, 3, 2]].copy(), np.ones(len(b), dtype=np.float32)


def from_effdet_detections(
    detections: np.ndarray, scale: float, width: int, height: int, min_score: float = PREDICT_CONF
) -> tuple[np.ndarray, np.ndarray]:
    """effdet's (M, 6) ``[x1, y1, x2, y2, score, class]`` in the letterboxed input -> (K, 4)
    xyxy original pixels (clipped to the image) and (K,) scores, best first; rows below
    ``min_score`` (including effdet's zero padding) are dropped."""
    d = np.asarray(detections, dtype=np.float64).reshape(-1, 6)
    d = d[d[:, 4] >= max(min_score, 1e-12)]
    d = d[np.argsort(-d[:, 4], kind="stable")]
    boxes = d[:, :4] / scale
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep], d[keep, 4]


def _to_tensor(canvases: np.ndarray):
    import torch

    x = (canvases.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


class EfficientDetStudent:
    """EfficientDet (effdet) detector from scratch, with a small training loop: letterboxed
    inputs at ``imgsz`` (a multiple of 128), random flips, AdamW, linear warm-up + cosine decay,
    gradient clipping. Detection only."""

    def __init__(
        self,
        model: str = "efficientdet_d0",
        epochs: int = 30,
        imgsz: int = 384,
        batch: int = 8,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        device: str = "cpu",
        seed: int = 0,
        top_k: int | None = 1,
        conf: float = PREDICT_CONF,
        warmup_epochs: float = 1.0,
        steps: int = 1000,
        backbone_weights: str | None = None,
    ):
        if backbone_weights not in (None, "imagenet_lite0"):
            raise ValueError(
                f"efficientdet.backbone_weights must be null or imagenet_lite0, got {backbone_weights!r}"
            )
        if backbone_weights and model != "tf_efficientdet_lite0":
            raise ValueError(
                "efficientdet.backbone_weights imagenet_lite0 needs model tf_efficientdet_lite0, "
                f"got {model!r}"
            )
        if imgsz % 128:
            raise ValueError(
                f"efficientdet.imgsz must be a multiple of 128 (anchor levels 3-7), got {imgsz}"
            )
        self.name, self.iou_types = "efficientdet_d0", ("bbox",)
        self.model_name, self.epochs, self.imgsz, self.batch = model, epochs, imgsz, batch
        self.steps = steps
        self.lr, self.weight_decay, self.warmup_epochs = lr, weight_decay, warmup_epochs
        self.backbone_weights = backbone_weights
        self.device, self.seed, self.top_k, self.conf = resolve_device(device), seed, top_k, conf
        self.net = None  # the EfficientDet module (weights shared by the train/predict benches)
        self.train_seconds: float | None = None
        self.history: list[dict] = []

    @classmethod
    def from_params(cls, params: dict) -> EfficientDetStudent:
        opts = dict(params["efficientdet"])
        return cls(
            opts.pop("model"),
            device=params.get("device", "cpu"),
            seed=params.get("seed", 0),
            top_k=params.get("top_k", 1),
            **opts,
        )

    def steps_per_epoch(self, n_images: int) -> int:
        return max(1, n_images // self.batch)  # the training loop drops the ragged batch

    def _create(self):
        from effdet import create_model_from_config, get_efficientdet_config

        config = get_efficientdet_config(self.model_name)
        config.image_size = (self.imgsz, self.imgsz)
        n_anchors = sum(
            (self.imgsz // 2**lvl) ** 2 for lvl in range(config.min_level, config.max_level + 1)
        )
        # effdet's top-k pre-NMS step fails when asked for more points than there are anchors
        config.max_detection_points = min(
            config.max_detection_points, n_anchors * config.num_scales * len(config.aspect_ratios)
        )
        # pretrained_backbone=False: the default reaches for the hub (46 s of retries offline);
        # the offline ImageNet Lite0 weights are loaded from the installed package instead
        bench = create_model_from_config(
            config,
            bench_task="train",
            num_classes=1,
            pretrained=False,
            pretrained_backbone=False,
            bench_labeler=True,
        )
        if self.backbone_weights == "imagenet_lite0":
            from afss_utils.backbones import lukemelas_to_timm_backbone

            backbone = bench.model.backbone
            backbone.load_state_dict(lukemelas_to_timm_backbone(backbone.state_dict()))
        return bench

    def _load_split(
        self, instances: dict, image_dir: Path
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        return load_letterboxed(instances, image_dir, self.imgsz, desc="efficientdet load")

    def train(
        self,
        train_instances: dict,
        image_dir: str | os.PathLike,
        out_dir: str | os.PathLike,
        val: tuple[dict, str | os.PathLike] | None = None,
        epochs: int | None = None,
    ) -> EfficientDetStudent:
        """Train on ``train_instances`` for ``epochs`` (default ``self.epochs``; ``val`` is
        accepted for the interface and unused: the schedule is fixed, no model selection).
        Saves ``out_dir/weights.pt``."""
        import torch

        epochs = epochs or self.epochs

        seed_everything(self.seed)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if not train_instances["images"]:
            raise ValueError("efficientdet: empty training set")
        # letterboxed once and kept in memory: decoding images every epoch dominates on CPU
        canvases, boxes, extents = self._load_split(train_instances, Path(image_dir))
        device = torch.device(self.device)
        bench = self._create().to(device)
        opt = torch.optim.AdamW(bench.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        # floor, so every batch holds >= `batch` images: BatchNorm cannot train on a batch of one
        # (EfficientDet's coarsest level is 1x1 at small sizes), which a ragged last batch can be
        steps_per_epoch = max(1, len(canvases) // self.batch)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            warmup_cosine(epochs * steps_per_epoch, int(self.warmup_epochs * steps_per_epoch)),
        )
        rng = np.random.default_rng(self.seed)
        t0 = time.perf_counter()
        self.history = []
        # importing ultralytics sets OMP_NUM_THREADS=1, which would leave effdet on one thread
        with torch_threads(cpu_cores()):
            self._fit(
                bench, opt, sched, canvases, boxes, extents, rng, device, epochs, steps_per_epoch
            )
        self.train_seconds = time.perf_counter() - t0
        self.net = bench.model.eval()
        torch.save(self.net.state_dict(), out_dir / "weights.pt")
        return self

    def _fit(
        self, bench, opt, sched, canvases, boxes, extents, rng, device, epochs, steps_per_epoch
    ) -> None:
        import torch

        bar = tqdm(range(epochs), desc="efficientdet train")
        for epoch in bar:
            bench.train()
            losses = []
            for idx in np.array_split(rng.permutation(len(canvases)), steps_per_epoch):
                if len(idx) == 1:  # a one-image training set: BatchNorm needs two samples
                    idx = np.repeat(idx, 2)
                x, target = self._batch(canvases, boxes, extents, idx, rng, device)
                loss = bench(x, target)["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(bench.parameters(), 10.0)
                opt.step()
                sched.step()
                losses.append(loss.item())
            self.history.append({"epoch": epoch + 1, "loss": float(np.mean(losses))})
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")

    def _batch(
        self,
        canvases: np.ndarray,
        boxes: list[np.ndarray],
        extents: np.ndarray,
        idx: np.ndarray,
        rng: np.random.Generator,
        device: Any,
    ) -> tuple[Any, dict]:
        """A training batch: :func:`random_flips` of the letterboxed images, effdet targets."""
        import torch

        imgs, bbs = [], []
        for i in idx:
            img, b = random_flips(canvases[i], boxes[i], extents[i], rng)
            imgs.append(img)
            bbs.append(b)
        n_max = max(1, max(len(b) for b in bbs))
        bbox = np.full((len(idx), n_max, 4), -1, dtype=np.float32)
        cls = np.full((len(idx), n_max), -1, dtype=np.float32)
        for j, b in enumerate(bbs):
            yxyx, c = to_effdet_target(b, 1.0)  # boxes are already in the letterboxed frame
            bbox[j, : len(b)], cls[j, : len(b)] = yxyx, c
        target = {
            "bbox": torch.from_numpy(bbox).to(device),
            "cls": torch.from_numpy(cls).to(device),
        }
        return _to_tensor(np.stack(imgs)).to(device), target

    def predict(self, dataset: Dataset, batch: int | None = None) -> list[dict]:
        import torch
        from effdet import DetBenchPredict

        if self.net is None:
            raise RuntimeError(f"{self.name}: train() (or load()) before predict()")
        bench = DetBenchPredict(self.net).to(torch.device(self.device)).eval()
        ids, batch = dataset.image_ids, batch or self.batch
        out: list[dict] = []
        for start in tqdm(range(0, len(ids), batch), desc=f"{self.name} predict", leave=False):
            chunk = ids[start : start + batch]
            images = [dataset.load_image(i) for i in chunk]
            boxed = [letterbox(im, self.imgsz) for im in images]
            x = _to_tensor(np.stack([c for c, _ in boxed])).to(torch.device(self.device))
            with torch.no_grad():
                dets = bench(x).cpu().numpy()
            for image_id, im, (_, scale), d in zip(chunk, images, boxed, dets, strict=True):
                b, s = from_effdet_detections(d, scale, im.shape[1], im.shape[0], self.conf)
                k = len(s) if self.top_k is None else self.top_k
                out.extend(coco.result_record(image_id, b[i], s[i]) for i in range(min(k, len(s))))
        return out

    def load(self, weights: str | os.PathLike) -> EfficientDetStudent:
        import torch

        self.net = self._create().model
        self.net.load_state_dict(torch.load(weights, map_location="cpu"))
        self.net.eval()
        return self


# ---------------------------------------------------------------------------- registry

STUDENTS: dict[str, Callable[[dict], Student]] = {
    "yolo11_det": lambda params: YoloStudent.from_params(params, "detect"),
    "yolo11_seg": lambda params: YoloStudent.from_params(params, "segment"),
    "efficientdet_d0": EfficientDetStudent.from_params,
    # imported when built: afss_utils.centernet imports this module's shared training pieces
    "center_resnet18": lambda params: _centernet().CenterNetStudent.from_params(params),
}


def _centernet():
    from afss_utils import centernet

    return centernet


def build_student(name: str, params: dict) -> Student:
    """A fresh, untrained student by name (``yolo11_det``, ``yolo11_seg``, ``efficientdet_d0``,
    ``center_resnet18``: the backbone is ``params["center"]["backbone"]``)."""
    if name not in STUDENTS:
        raise KeyError(f"unknown student '{name}'; known students: {', '.join(STUDENTS)}")
    return STUDENTS[name](params)
