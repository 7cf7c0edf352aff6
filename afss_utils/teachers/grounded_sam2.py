"""Grounded SAM 2: Grounding DINO boxes prompting SAM 2 (the paper's GSAM-2 teacher).

Both models come from transformers (``AutoModelForZeroShotObjectDetection`` for Grounding DINO,
the official ``Sam2Model`` port for SAM 2), loaded from a hub id in the local HF cache or a
local directory (see :mod:`afss_utils.teachers._hf`). Per image: the detector proposes boxes for
the text prompt; the ``top_k`` best (by detector score) prompt SAM 2, whose image embedding is
computed once per image and reused for every box (and for :meth:`segment_boxes`, which TTA
fusion calls to re-prompt SAM with a fused box, as the paper's authors do).

Scores: ``Prediction.scores`` is the *detector* box score (what the authors rank, fuse and
confidence-filter on); SAM's predicted mask IoU is kept in ``Prediction.extra['mask_scores']``.
"""

from __future__ import annotations

from afss_utils.teachers._hf import (
    check_sources,
    load_model,
    load_pretrained,
    resolve_device,
    to_rgb_pil,
)
from afss_utils.teachers.base import register_teacher
from afss_utils.teachers.detector_sam2 import DetectorSam2Teacher

__all__ = ["GroundedSam2Teacher", "grounding_dino_caption"]


def grounding_dino_caption(prompt: str) -> str:
    """Grounding DINO expects lower-case phrases each ending with '.': 'Spacecraft' -> 'spacecraft.'."""
    text = prompt.strip().lower()
    return text if text.endswith(".") else text + "."


@register_teacher("grounded_sam2")
class GroundedSam2Teacher(DetectorSam2Teacher):
    """Grounding DINO (default ``IDEA-Research/grounding-dino-tiny``) + SAM 2 (default
    ``facebook/sam2.1-hiera-tiny``); thresholds as the authors' code (box 0.35, text 0.25).

    detector / segmenter: hub id or local directory. Raises WeightsNotFoundError when absent.
    """

    name = "grounded_sam2"

    def __init__(
        self,
        detector: str = "IDEA-Research/grounding-dino-tiny",
        segmenter: str = "facebook/sam2.1-hiera-tiny",
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        top_k: int | None = 1,
        device: str = "cpu",
        score: str = "box",
    ):
        self.options = {
            "detector": detector,
            "segmenter": segmenter,
            "box_threshold": box_threshold,
            "text_threshold": text_threshold,
            "top_k": top_k,
            "device": device,
            "score": score,
        }
        check_sources(self.name, detector=detector, segmenter=segmenter)
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        self.box_threshold = float(box_threshold)
        self.text_threshold = float(text_threshold)
        dev = resolve_device(device)
        # Detector first: its error is the likelier one and names the detector id.
        self.processor = load_pretrained(AutoProcessor, detector, self.name, "detector")
        self.detector = (
            load_model(AutoModelForZeroShotObjectDetection, detector, self.name, "detector")
            .to(dev)
            .eval()
        )
        self._sources = {"detector": str(detector)}
        super().__init__(segmenter, top_k, dev, score)

    def _detect(self, images, prompt):
        import torch

        caption = grounding_dino_caption(prompt)
        inputs = self.processor(
            images=[to_rgb_pil(im) for im in images],
            text=[caption] * len(images),
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            outputs = self.detector(**inputs)
        results = self.processor.post_process_grounded_object_detection(
            outputs,
            inputs["input_ids"],
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=[im.shape[:2] for im in images],
        )
        return [
            (r["boxes"].float().cpu().numpy(), r["scores"].float().cpu().numpy()) for r in results
        ]
