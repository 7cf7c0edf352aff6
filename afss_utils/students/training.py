"""What the hand-written students (EfficientDet, CenterNet) share: letterboxed images cached in
memory, random flips, the warmup-cosine learning-rate schedule, ImageNet normalisation, and
:func:`fit`, their one training loop.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from afss_utils import coco
from afss_utils.config import cpu_cores, torch_threads
from afss_utils.datasets import read_image
from afss_utils.progress import bar


def load_letterboxed(
    instances: dict, image_dir: str | os.PathLike, size: int, desc: str = "load"
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Letterbox every image of a COCO instances dict once, to keep in memory (decoding images
    every epoch dominates training on a CPU).

    Returns (N, S, S, 3) uint8 canvases, per-image (K, 4) float xyxy boxes in the canvas frame
    (annotations in their json order) and the (N, 2) int w, h extent of each resized image
    inside its canvas (top-left, see :func:`letterbox`). Images follow ``instances["images"]``.
    Each canvas is written into one preallocated array: memory is the canvases once, not a list
    of them plus their stacked copy.
    """
    image_dir = Path(image_dir)
    by_image: dict[int, list[list[float]]] = {img["id"]: [] for img in instances["images"]}
    for a in instances["annotations"]:
        by_image[a["image_id"]].append(a["bbox"])
    images = instances["images"]
    canvases = np.zeros((len(images), size, size, 3), np.uint8)
    boxes, extents = [], np.zeros((len(images), 2), int)
    for n, img in enumerate(bar(images, desc=desc, leave=False)):
        image = read_image(image_dir / img["file_name"])
        canvas, scale = letterbox(image, size)
        canvases[n] = canvas
        boxes.append(coco.xywh_to_xyxy(np.array(by_image[img["id"]]).reshape(-1, 4)) * scale)
        extents[n] = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return canvases, boxes, extents


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


def fit(
    module: Any,
    step_losses: Callable[[Any], dict[str, Any]],
    batches: Iterator,
    epochs: int,
    steps_per_epoch: int,
    *,
    lr: float,
    weight_decay: float,
    warmup_epochs: float,
    scale_loss: bool = False,
    desc: str = "train",
) -> list[dict[str, float]]:
    """Train ``module`` (a torch Module) for ``epochs`` x ``steps_per_epoch`` optimiser steps.

    Each step takes the next of ``batches``, computes ``step_losses(batch)`` ({name: scalar
    tensor}, with the total under ``"loss"``) and takes one AdamW step, its gradient clipped
    to norm 10, under a warm-up-cosine schedule (``warmup_epochs`` of linear warm-up). With
    ``scale_loss`` (fp16 on CUDA) the loss is scaled so small gradients do not underflow.
    Torch runs on all of this process's cores: importing ultralytics sets OMP_NUM_THREADS=1,
    which would leave a student on one thread. Returns one row per epoch: ``epoch`` and the
    mean of each loss over its steps.
    """
    import torch

    params = [p for p in module.parameters() if p.requires_grad]  # frozen stages stay put
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, warmup_cosine(epochs * steps_per_epoch, int(warmup_epochs * steps_per_epoch))
    )
    device_type = params[0].device.type if params else "cpu"
    scaler = torch.amp.GradScaler(device_type, enabled=scale_loss)
    history: list[dict[str, float]] = []
    with torch_threads(cpu_cores()):
        epochs_bar = bar(range(epochs), desc=desc)
        for epoch in epochs_bar:
            module.train()
            sums: dict[str, float] = {}
            for _ in range(steps_per_epoch):
                losses = step_losses(next(batches))
                opt.zero_grad(set_to_none=True)
                scaler.scale(losses["loss"]).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, 10.0)
                scaler.step(opt)
                scaler.update()
                sched.step()
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / steps_per_epoch
            history.append({"epoch": epoch + 1, **sums})
            epochs_bar.set_postfix(loss=f"{sums.get('loss', float('nan')):.3f}")
    return history


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX), where autocast to
    bf16 roughly halves a training step (YOLO11n, ResNet18); elsewhere it is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str, key: str = "yolo.precision") -> str:
    """The training precision: ``'bf16'``, ``'fp16'`` (autocast) or ``'fp32'``.

    On the CPU: ``'auto'`` picks bf16 where the CPU has it; fp16 is an error (CUDA only). On a
    GPU: ``'auto'`` is fp32 (mixed precision there is ultralytics' own ``amp``; the hand-written
    loops are fast enough without), an explicit bf16 / fp16 is honoured. ``key`` names the
    params key in errors."""
    if precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"{key} must be auto, bf16, fp16 or fp32, got {precision!r}")
    if not str(device).startswith("cpu"):
        return "fp32" if precision == "auto" else precision
    if precision == "fp16":
        raise ValueError(f"{key} fp16 needs a CUDA device (on the CPU use bf16 or fp32)")
    if precision == "auto":
        return "bf16" if cpu_supports_bf16() else "fp32"
    return precision


def autocast_dtype(precision: str):
    """``'bf16'`` / ``'fp16'`` -> the torch dtype to autocast to; ``'fp32'`` -> None."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def as_float32(x: Any) -> Any:
    """Cast the floating tensors of a (nested) model output back to float32."""
    import torch

    if isinstance(x, torch.Tensor):
        return x.float() if x.is_floating_point() else x
    if isinstance(x, (list, tuple)):
        return type(x)(as_float32(v) for v in x)
    if isinstance(x, dict):
        return {k: as_float32(v) for k, v in x.items()}
    return x


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


def _to_tensor(canvases: np.ndarray):
    import torch

    x = (canvases.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
