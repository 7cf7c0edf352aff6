"""OWLv2 boxes prompting SAM 2: a second open-vocabulary detector behind the same segmenter.

OWLv2 (``google/owlv2-base-patch16-ensemble``; transformers ``Owlv2ForObjectDetection``) scores
every patch-box against the text query. Its processor pads the image to a square (bottom/right)
before resizing, so boxes come back in the padded square frame: post-processing uses
``target_sizes = (max(h, w), max(h, w))`` and the boxes are then clipped to the image.
Scores, masks and ``extra['mask_scores']`` follow :mod:`afss_utils.teachers.detector_sam2`.
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

__all__ = ["Owlv2Sam2Teacher"]


@register_teacher("owlv2_sam2")
class Owlv2Sam2Teacher(DetectorSam2Teacher):
    """OWLv2 + SAM 2 (default ``facebook/sam2.1-hiera-tiny``); ``box_threshold`` on OWLv2's
    sigmoid score (default 0.1, OWLv2's own default). The text query is the prompt as given.

    detector / segmenter: hub id or local directory. Raises WeightsNotFoundError when absent.
    """

    name = "owlv2_sam2"

    def __init__(
        self,
        detector: str = "google/owlv2-base-patch16-ensemble",
        segmenter: str = "facebook/sam2.1-hiera-tiny",
        box_threshold: float = 0.1,
        top_k: int | None = 1,
        device: str = "cpu",
        score: str = "box",
    ):
        self.options = {
            "detector": detector,
            "segmenter": segmenter,
            "box_threshold": box_threshold,
            "top_k": top_k,
            "device": device,
            "score": score,
        }
        check_sources(self.name, detector=detector, segmenter=segmenter)
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        self.box_threshold = float(box_threshold)
        dev = resolve_device(device)
        self.processor = load_pretrained(Owlv2Processor, detector, self.name, "detector")
        self.detector = load_model(Owlv2ForObjectDetection, detector, self.name, "detector")
        self.detector = self.detector.to(dev).eval()
        self._sources = {"detector": str(detector)}
        super().__init__(segmenter, top_k, dev, score)

    def _detect(self, images, prompt):
        import torch

        inputs = self.processor(
            text=[[prompt.strip()]] * len(images),
            images=[to_rgb_pil(im) for im in images],
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            outputs = self.detector(**inputs)
        # Padded to a square: the normalised boxes refer to the max(h, w) square.
        sides = [max(im.shape[:2]) for im in images]
        results = self.processor.post_process_grounded_object_detection(
            outputs, threshold=self.box_threshold, target_sizes=[(s, s) for s in sides]
        )
        return [
            (r["boxes"].float().cpu().numpy(), r["scores"].float().cpu().numpy()) for r in results
        ]
