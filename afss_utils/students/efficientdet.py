"""EfficientDet-D0 student (effdet), trained from scratch, on an offline backbone, or from a
local pretrained checkpoint (``efficientdet.weights``; effdet's own download is never used)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from afss_utils import coco
from afss_utils.config import (
    cpu_cores,
    resolve_device,
    seed_everything,
    torch_threads,
)
from afss_utils.datasets import Dataset
from afss_utils.students.protocol import PREDICT_CONF
from afss_utils.students.training import (
    _to_tensor,
    letterbox,
    load_letterboxed,
    random_flips,
    warmup_cosine,
)

# ---------------------------------------------------------------------------- EfficientDet


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


def load_pretrained_effdet(net: Any, path: str | os.PathLike) -> list[str]:
    """Initialise an EfficientDet ``net`` from a local checkpoint (effdet's released COCO
    weights, a bare state dict, or one under ``state_dict`` / ``model`` / ``state_dict_ema``;
    a ``model.`` prefix of a bench is dropped). Tensors whose shape differs (the 90-class
    head of a COCO checkpoint against our one class) keep their fresh init.

    Returns the names of the tensors left at their init. ValueError naming the file when the
    checkpoint shares no tensor with ``net`` (a different model)."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict_ema", "state_dict", "model"):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    ckpt = {k.removeprefix("model."): v for k, v in ckpt.items()}
    own = net.state_dict()
    keep = {k: v for k, v in ckpt.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not keep:
        raise ValueError(
            f"efficientdet.weights: {path} shares no tensor with {type(net).__name__} "
            "(a checkpoint of another model?)"
        )
    net.load_state_dict(keep, strict=False)
    return sorted(set(own) - set(keep))


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
        weights: str | os.PathLike | None = None,
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
        if weights is not None and not Path(weights).is_file():
            raise FileNotFoundError(
                f"efficientdet.weights: checkpoint not found: {weights} (put effdet's "
                f"{model} COCO checkpoint there, or set efficientdet.weights to null to train "
                "from scratch)"
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
        self.weights = None if weights is None else Path(weights)
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

    def _create(self, pretrained: bool = True):
        """The training bench (``bench.model``: the EfficientDet); initialised from
        ``self.weights`` when set and ``pretrained`` (load() passes False: it overwrites them)."""
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
        if self.weights is not None and pretrained:
            load_pretrained_effdet(bench.model, self.weights)
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

        self.net = self._create(pretrained=False).model
        self.net.load_state_dict(torch.load(weights, map_location="cpu"))
        self.net.eval()
        return self
