"""EfficientDet-D0 student (effdet), trained from scratch, on an offline backbone, or from a
local pretrained checkpoint (``efficientdet.weights``; effdet's own download is never used)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from afss_utils import coco
from afss_utils.config import (
    cpu_cores,
    resolve_device,
    seed_everything,
)
from afss_utils.datasets import Dataset
from afss_utils.progress import bar as progress_bar
from afss_utils.students.protocol import PREDICT_CONF
from afss_utils.students.training import (
    _to_tensor,
    fit,
    letterbox,
    load_letterboxed,
    random_flips,
)

# ---------------------------------------------------------------------------- batches


def loader_workers(device: Any) -> int:
    """DataLoader worker processes: none on the CPU, where the network already has every core
    and a worker would only take them from it; a few on CUDA, so that decoding, letterboxing
    and normalising the next batches overlap the GPU's step."""
    return min(4, cpu_cores()) if str(device).startswith("cuda") else 0


def batch_loader(dataset: Any, device: Any, seed: int, sampler: Any = None):
    """A ``torch.utils.data.DataLoader`` over a dataset whose items are whole batches
    (``batch_size=None``; ``sampler`` yields the item keys, default ``range(len(dataset))``),
    passed on as they are (no collation). Memory is pinned on CUDA only, where it makes the
    host-to-device copy asynchronous; on the CPU pinning is a needless copy.

    The loader draws its workers' base seed from a generator of its own: without one each
    ``iter(loader)`` takes a number from torch's global RNG, which moves every random draw
    after it (EfficientDet's drop-path masks, a later training run in the same process)."""
    import torch

    cuda = str(device).startswith("cuda")
    workers = loader_workers(device)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=cuda,
        collate_fn=_as_is,
        generator=torch.Generator().manual_seed(seed),
        prefetch_factor=2 if workers else None,
    )


def _as_is(batch: Any) -> Any:
    # the default collation turns numpy arrays (per-image cells, labels, scales) into tensors
    return batch


class FlipPlans:
    """The training batches' keys, ``(idx, draws)`` per step: (B,) int image indices and
    (2B,) float uniform draws, two per image for :func:`random_flips`.

    Drawn lazily from ``rng`` in exactly the order the loop drew them before it had a
    DataLoader (per epoch a permutation, then per batch and image the two flip draws), so a
    seed gives the same batches whether they are built here or in worker processes, which never
    touch ``rng``. ``epochs * steps_per_epoch`` keys; a one-image set repeats its image
    (BatchNorm needs two samples)."""

    def __init__(self, n_images: int, steps_per_epoch: int, epochs: int, rng: np.random.Generator):
        self.n_images, self.steps_per_epoch, self.epochs, self.rng = (
            n_images,
            steps_per_epoch,
            epochs,
            rng,
        )

    def __len__(self) -> int:
        return self.epochs * self.steps_per_epoch

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for _ in range(self.epochs):
            for idx in np.array_split(self.rng.permutation(self.n_images), self.steps_per_epoch):
                if len(idx) == 1:
                    idx = np.repeat(idx, 2)
                yield idx, self.rng.random(2 * len(idx))


class Replayed:
    """Stands in for the numpy Generator that :func:`random_flips` takes: ``random()`` hands
    back ``draws`` in order (what the Generator would have returned, drawn earlier)."""

    def __init__(self, draws: np.ndarray):
        self._draws = iter(np.asarray(draws, dtype=np.float64).tolist())

    def random(self) -> float:
        return next(self._draws)


class FlipBatches:
    """Map-style dataset keyed by :class:`FlipPlans`: ``self[(idx, draws)]`` is
    ``make(idx, Replayed(draws))``, one training batch as CPU tensors."""

    def __init__(self, make: Callable[[np.ndarray, Any], Any]):
        self.make = make

    def __getitem__(self, key: tuple[np.ndarray, np.ndarray]) -> Any:
        idx, draws = key
        return self.make(idx, Replayed(draws))


class LetterboxedChunks:
    """Map-style dataset of prediction batches: item k holds the k-th run of ``batch`` images
    of ``dataset`` in ``image_ids`` order, as ``(ids, x, scales, sizes)``: the B image ids,
    (B, 3, S, S) float32 normalised letterboxed inputs, (B,) letterbox scales and (B, 2) int
    original (w, h)."""

    def __init__(self, dataset: Dataset, batch: int, size: int):
        self.dataset, self.batch, self.size = dataset, batch, size
        self.ids = list(dataset.image_ids)

    def __len__(self) -> int:
        return -(-len(self.ids) // self.batch)

    def __getitem__(self, k: int) -> tuple[list[int], Any, np.ndarray, np.ndarray]:
        chunk = self.ids[k * self.batch : (k + 1) * self.batch]
        if not chunk:
            raise IndexError(k)
        images = [self.dataset.load_image(i) for i in chunk]
        boxed = [letterbox(im, self.size) for im in images]
        return (
            chunk,
            _to_tensor(np.stack([c for c, _ in boxed])),
            np.array([s for _, s in boxed]),
            np.array([(im.shape[1], im.shape[0]) for im in images]),
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
        # floor, so every batch holds >= `batch` images: BatchNorm cannot train on a batch of one
        # (EfficientDet's coarsest level is 1x1 at small sizes), which a ragged last batch can be
        steps_per_epoch = max(1, len(canvases) // self.batch)
        rng = np.random.default_rng(self.seed)
        batches = iter(
            batch_loader(
                FlipBatches(partial(self._batch, canvases, boxes, extents)),
                device,
                self.seed,
                sampler=FlipPlans(len(canvases), steps_per_epoch, epochs, rng),
            )
        )

        def step_losses(batch):
            x, target = batch
            x = x.to(device, non_blocking=True)
            target = {k: v.to(device, non_blocking=True) for k, v in target.items()}
            return {"loss": bench(x, target)["loss"]}

        t0 = time.perf_counter()
        self.history = fit(
            bench,
            step_losses,
            batches,
            epochs,
            steps_per_epoch,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_epochs,
            desc="efficientdet train",
        )
        self.train_seconds = time.perf_counter() - t0
        self.net = bench.model.eval()
        torch.save(self.net.state_dict(), out_dir / "weights.pt")
        return self

    def _batch(
        self,
        canvases: np.ndarray,
        boxes: list[np.ndarray],
        extents: np.ndarray,
        idx: np.ndarray,
        rng: np.random.Generator | Replayed,
        device: Any = "cpu",
    ) -> tuple[Any, dict]:
        """A training batch: :func:`random_flips` of the letterboxed images idx (B,) as a
        (B, 3, S, S) normalised tensor, and effdet targets ``bbox`` (B, K, 4) yxyx, ``cls``
        (B, K) (-1 pads images with fewer than K boxes)."""
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
        device = torch.device(self.device)
        bench = DetBenchPredict(self.net).to(device).eval()
        chunks = LetterboxedChunks(dataset, batch or self.batch, self.imgsz)
        out: list[dict] = []
        for chunk, x, scales, sizes in progress_bar(
            batch_loader(chunks, device, self.seed),
            total=len(chunks),
            desc=f"{self.name} predict",
            leave=False,
        ):
            with torch.no_grad():
                dets = bench(x.to(device, non_blocking=True)).cpu().numpy()
            for image_id, scale, (w, h), d in zip(chunk, scales, sizes, dets, strict=True):
                b, s = from_effdet_detections(d, scale, w, h, self.conf)
                k = len(s) if self.top_k is None else self.top_k
                out.extend(coco.result_record(image_id, b[i], s[i]) for i in range(min(k, len(s))))
        return out

    def load(self, weights: str | os.PathLike) -> EfficientDetStudent:
        import torch

        self.net = self._create(pretrained=False).model
        self.net.load_state_dict(torch.load(weights, map_location="cpu"))
        self.net.eval()
        return self
