"""The flow every open-vocabulary detector + SAM 2 teacher shares: detector boxes per image ->
top_k -> SAM 2 masks, the SAM image embedding computed once per image.

A teacher subclasses :class:`DetectorSam2Teacher` and implements only ``_detect`` (Grounding DINO
in :mod:`~afss_utils.teachers.grounded_sam2`, OWLv2 in :mod:`~afss_utils.teachers.owlv2`).
``Prediction.scores`` is the detector box score by default (``score='box'``); SAM's predicted
mask IoU is kept in ``Prediction.extra['mask_scores']``. With ``score='mask'`` (the authors'
released labels) ``scores`` is SAM's mask score and the box score is ``extra['box_score']``;
the top-k boxes are still chosen by the detector, and TTA fusion still fuses on box scores
(:func:`afss_utils.pseudolabel.fuse_views`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from afss_utils.teachers._hf import (
    checkpoint_identity,
    enable_tf32,
    load_model,
    load_pretrained,
    resolve_device,
    to_rgb_pil,
)
from afss_utils.teachers.base import Prediction

__all__ = [
    "SCORES",
    "DetectorSam2Teacher",
    "Sam2BoxSegmenter",
    "as_box_scored",
    "as_mask_scored",
    "clip_boxes",
]

# What Prediction.scores (a label's `score`: ranking, fusion output, confidence filter) is:
# box = the detector's box score (our default); mask = SAM's predicted mask IoU, the detector's
# score kept as extra['box_score'] (the authors' released label files)
SCORES = ("box", "mask")


def as_mask_scored(pred: Prediction) -> Prediction:
    """Box-scored -> mask-scored: ``scores`` <- ``extra['mask_scores']``, the old scores kept
    as ``extra['box_score']``; best (by mask score) first. No detection: unchanged."""
    if len(pred) == 0 and "mask_scores" not in pred.extra:
        return pred
    extra = {**pred.extra, "box_score": np.asarray(pred.scores, dtype=np.float32)}
    mask_scores = np.asarray(pred.extra["mask_scores"], dtype=np.float32)
    return Prediction(pred.boxes, mask_scores, pred.masks, extra).top_k(None)


def as_box_scored(pred: Prediction) -> Prediction:
    """The inverse of :func:`as_mask_scored` (``extra['box_score']`` back to ``scores``)."""
    if len(pred) == 0 and "box_score" not in pred.extra:
        return pred
    extra = {k: v for k, v in pred.extra.items() if k != "box_score"}
    return Prediction(pred.boxes, pred.extra["box_score"], pred.masks, extra)


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, 4) xyxy pixels clipped to the image, x2 >= x1 and y2 >= y1; NaN -> 0."""
    b = np.nan_to_num(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    b[:, 2] = np.maximum(b[:, 2], b[:, 0])
    b[:, 3] = np.maximum(b[:, 3], b[:, 1])
    return b


class Sam2BoxSegmenter:
    """SAM 2 (transformers port) prompted by boxes; the image embedding is computed once per image.

    source: hub id or local directory of a Sam2Model + Sam2Processor checkpoint.
    The last image's embedding is cached, so ``segment_boxes`` right after ``predict`` on the
    same image does not re-run the image encoder.
    """

    def __init__(self, source: str, teacher: str, device: str = "cpu", key: str = "segmenter"):
        from transformers import Sam2Model, Sam2Processor

        self.device = resolve_device(device)
        self.processor = load_pretrained(Sam2Processor, source, teacher, key)
        self.model = load_model(Sam2Model, source, teacher, key).to(self.device).eval()
        self._cache: tuple[bytes, list, list] | None = None

    @staticmethod
    def _key(image: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest() + bytes(
            str(image.shape), "ascii"
        )

    def embed(self, images: Sequence[np.ndarray]) -> list[tuple[list, list]]:
        """One (image_embeddings, original_size) per image; batched through the encoder."""
        import torch

        if len(images) == 1 and self._cache is not None and self._cache[0] == self._key(images[0]):
            return [(self._cache[1], self._cache[2])]
        inputs = self.processor(images=[to_rgb_pil(im) for im in images], return_tensors="pt")
        with torch.inference_mode():
            emb = self.model.get_image_embeddings(inputs["pixel_values"].to(self.device))
        sizes = inputs["original_sizes"].tolist()
        out = [([e[i : i + 1] for e in emb], [sizes[i]]) for i in range(len(images))]
        self._cache = (self._key(images[-1]), *out[-1])
        return out

    def decode(
        self, embedding: tuple[list, list], boxes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Masks for (N, 4) xyxy pixel boxes of one embedded image -> ((N, H, W) bool, (N,) IoU)."""
        import torch

        image_embeddings, original_size = embedding
        h, w = (int(v) for v in original_size[0])
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, h, w), bool), np.zeros(0, np.float32)
        # The processor takes boxes in original pixels and rescales them to SAM's input frame.
        prompt = self.processor(
            input_boxes=[boxes.tolist()], original_sizes=original_size, return_tensors="pt"
        )
        with torch.inference_mode():
            out = self.model(
                input_boxes=prompt["input_boxes"].to(self.device),
                image_embeddings=image_embeddings,
                multimask_output=False,  # one mask per box, as Grounded-SAM-2 does
            )
        masks = self.processor.post_process_masks(out.pred_masks.cpu(), original_size)[0]
        masks = masks[:, 0].numpy().astype(bool)
        scores = out.iou_scores[0, :, 0].float().cpu().numpy().clip(0, 1)
        return masks, scores

    def segment_boxes(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """image (H, W, 3) uint8 RGB, boxes (N, 4) xyxy px -> (masks (N, H, W) bool, mask_scores (N,))."""
        return self.decode(self.embed([image])[0], boxes)


def _rebuild(cls: type, options: dict) -> DetectorSam2Teacher:
    return cls(**options)


class DetectorSam2Teacher:
    """Shared flow: detector boxes per image -> top_k -> SAM 2 masks. Subclasses implement
    ``_detect(images, prompt) -> list[(boxes (N, 4) xyxy px, scores (N,))]`` and set
    ``self.options`` (their constructor's keyword arguments: how a pickled copy is rebuilt)."""

    name = "detector_sam2"

    def __init__(self, segmenter: str, top_k: int | None, device: str, score: str = "box"):
        if score not in SCORES:
            raise ValueError(f"{self.name}: score must be one of {SCORES}, got {score!r}")
        self.top_k = top_k
        self.score = score
        self.device = resolve_device(device)
        enable_tf32(self.device)
        self.sam = Sam2BoxSegmenter(segmenter, self.name, self.device)
        # {key: weight source}; subclasses add their detector before calling this __init__
        self._sources = {**getattr(self, "_sources", {}), "segmenter": str(segmenter)}

    def __reduce__(self):
        # A Ray labelling actor gets the teacher pickled: it is rebuilt there from its options and
        # loads the weights itself. The models cannot be pickled (transformers' output-capturing
        # hooks are local functions holding ContextVars), shipping gigabytes of weights through
        # the object store would cost more than loading them where they run, and __init__ sets
        # the per-process state (TF32 flags) of the actor.
        return _rebuild, (type(self), self.options)

    def checkpoints(self) -> dict[str, str]:
        """{key: :func:`~afss_utils.teachers._hf.checkpoint_identity`} of the checkpoints this
        teacher loaded (``detector``, ``segmenter``): part of the pseudo-label run header, so a
        resume with other weights is an error, not a silent mix."""
        return {key: checkpoint_identity(src) for key, src in sorted(self._sources.items())}

    def predict(self, image: np.ndarray, prompt: str = "spacecraft") -> Prediction:
        """image (H, W, 3) uint8 RGB -> Prediction (boxes xyxy px, detector scores, SAM masks)."""
        return self.predict_batch([image], prompt)[0]

    def predict_batch(
        self, images: Sequence[np.ndarray], prompt: str = "spacecraft"
    ) -> list[Prediction]:
        """Detector and SAM image encoder batched over ``images``; box decoding per image."""
        images = [np.asarray(im) for im in images]
        if not images:
            return []
        for im in images:
            to_rgb_pil(im)  # validates shape/dtype with a clear error
        detections = self._detect_by_size(images, prompt)
        need = [i for i, (b, _) in enumerate(detections) if len(b)]
        embeddings = (
            dict(zip(need, self.sam.embed([images[i] for i in need]), strict=True)) if need else {}
        )
        out = []
        for i, (im, (boxes, scores)) in enumerate(zip(images, detections, strict=True)):
            h, w = im.shape[:2]
            if len(boxes) == 0:
                out.append(Prediction.empty(h, w))
                continue
            det = Prediction(clip_boxes(boxes, h, w), scores).top_k(self.top_k)
            masks, mask_scores = self.sam.decode(embeddings[i], det.boxes)
            pred = Prediction(det.boxes, det.scores, masks, {"mask_scores": mask_scores})
            out.append(pred if self.score == "box" else as_mask_scored(pred))
        return out

    def _detect_by_size(self, images: list[np.ndarray], prompt: str) -> list:
        """``_detect`` over groups of equally sized images, results in input order. A processor
        pads a batch of different sizes (an image and its rot90) to one canvas; one call per size
        keeps every box in its own image's frame whatever the detector normalises to."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(im.shape[:2], []).append(i)
        out: list = [None] * len(images)
        for idx in groups.values():
            for i, det in zip(idx, self._detect([images[i] for i in idx], prompt), strict=True):
                out[i] = det
        return out

    def segment_boxes(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Re-prompt SAM 2 with (N, 4) xyxy px boxes -> (masks (N, H, W) bool, mask_scores (N,))."""
        image = np.asarray(image)
        to_rgb_pil(image)
        return self.sam.segment_boxes(image, clip_boxes(boxes, *image.shape[:2]))

    def _detect(self, images, prompt):  # pragma: no cover
        raise NotImplementedError
