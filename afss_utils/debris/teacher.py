"""A weight-free streak teacher: finds the line-source debris of a ZScaled sky frame.

Two methods, both pure OpenCV and both returning one box per streak (a frame holds several):

- ``matched`` (default): subtract a median-filtered background, estimate the noise from the
  median absolute deviation, smooth with a small Gaussian (the matched filter for the PSF),
  threshold at ``k_sigma`` noise levels, and keep the 8-connected components that are
  elongated (the principal axes of their pixels, ``length / width >= min_elongation``): stars
  and hot pixels are round or tiny, debris are lines.
- ``lsd``: OpenCV's line segment detector (the LSD baseline of the SDT-Net paper's Table 2) on
  the same background-subtracted frame; segments become boxes padded by their width.

The score is a measurement in [0, 1] (``snr_term * elongation_term``), so confidence filtering
(eq. 6 of the AFSS paper) has something to select on.
"""

from __future__ import annotations

import cv2
import numpy as np

from afss_utils.teachers.base import Prediction, register_teacher

__all__ = ["StreakTeacher", "component_streaks", "residual_image"]


def residual_image(image: np.ndarray, background_px: int = 15) -> tuple[np.ndarray, float]:
    """(H, W, 3) or (H, W) uint8 -> ((H, W) float32 background-subtracted image, noise sigma).

    The background is a median filter of ``background_px`` (odd) pixels: wider than a streak's
    width, so a streak survives the subtraction; the noise is 1.4826 * MAD of the residual.
    """
    gray = (
        image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    )
    k = max(3, background_px | 1)
    background = cv2.medianBlur(np.ascontiguousarray(gray, np.uint8), k).astype(np.float32)
    residual = gray.astype(np.float32) - background
    sigma = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    return residual, max(sigma, 1.0)


def component_streaks(
    residual: np.ndarray,
    sigma: float,
    k_sigma: float = 3.0,
    min_area: int = 6,
    min_elongation: float = 2.5,
    psf_sigma: float = 1.0,
) -> Prediction:
    """Elongated bright components of a residual (H, W) -> Prediction, boxes xyxy pixels.

    Masks are the components (H, W) bool; ``extra['elongation']`` the length/width ratio.
    """
    h, w = residual.shape
    smooth = cv2.GaussianBlur(residual, (0, 0), psf_sigma) if psf_sigma > 0 else residual
    # smoothing a white-noise field by a Gaussian of sigma s lowers its std by ~ 2 s sqrt(pi)
    noise = sigma / (2 * psf_sigma * np.sqrt(np.pi)) if psf_sigma > 0 else sigma
    fg = (smooth > k_sigma * noise).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    boxes, scores, masks, elong = [], [], [], []
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < min_area:
            continue
        ys, xs = np.nonzero(labels == i)
        pts = np.stack([xs, ys], 1).astype(np.float64)
        cov = np.cov(pts.T) + np.eye(2) / 12.0  # +1/12: a pixel's own extent
        ev = np.sort(np.linalg.eigvalsh(cov))[::-1]
        e = float(np.sqrt(ev[0] / max(ev[1], 1e-9)))
        x0, y0 = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_TOP]
        bw, bh = stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]
        # a star cut by the frame edge looks elongated: ask twice the elongation there
        at_edge = x0 == 0 or y0 == 0 or x0 + bw == w or y0 + bh == h
        if e < min_elongation * (2 if at_edge else 1):
            continue
        snr = float(smooth[ys, xs].mean() / noise)
        boxes.append([x0, y0, x0 + bw, y0 + bh])
        score = (1 - np.exp(-snr / (2 * k_sigma))) * (1 - np.exp(-(e - 1) / 3))
        scores.append(float(np.clip(score, 0, 1)))
        masks.append(labels == i)
        elong.append(e)
    if not boxes:
        return Prediction.empty(h, w)
    return Prediction(
        np.asarray(boxes, np.float32),
        np.asarray(scores, np.float32),
        np.asarray(masks, bool),
        {"elongation": np.asarray(elong, np.float32)},
    )


def lsd_streaks(residual: np.ndarray, sigma: float, min_length: float = 6.0) -> Prediction:
    """OpenCV LSD on the clipped residual -> Prediction (no masks), boxes xyxy pixels."""
    h, w = residual.shape
    img = np.clip(residual / (8 * sigma) * 255, 0, 255).astype(np.uint8)
    lines, widths, _, nfa = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD).detect(img)
    if lines is None:
        return Prediction.empty(h, w, with_masks=False)
    lines = lines.reshape(-1, 4)
    widths = np.ones(len(lines)) if widths is None else widths.reshape(-1)
    length = np.hypot(lines[:, 2] - lines[:, 0], lines[:, 3] - lines[:, 1])
    keep = length >= min_length
    lines, widths, length = lines[keep], widths[keep], length[keep]
    pad = widths[:, None] / 2 + 1
    boxes = np.concatenate(
        [
            np.minimum(lines[:, :2], lines[:, 2:]) - pad,
            np.maximum(lines[:, :2], lines[:, 2:]) + pad,
        ],
        1,
    )
    boxes = np.clip(boxes, 0, [w, h, w, h])
    scores = 1 - np.exp(-length / (4 * min_length))
    return Prediction(boxes, scores)


@register_teacher("streak")
class StreakTeacher:
    """Line-source debris in a (H, W, 3) uint8 sky frame -> Prediction (one box per streak)."""

    def __init__(
        self,
        top_k: int | None = None,
        device: str = "cpu",
        method: str = "matched",
        background_px: int = 15,
        k_sigma: float = 4.0,
        min_area: int = 12,
        min_elongation: float = 2.5,
        psf_sigma: float = 0.7,
    ):
        if method not in ("matched", "lsd"):
            raise ValueError(f"streak teacher method must be 'matched' or 'lsd', got {method!r}")
        self.name = f"streak_{method}"
        self.top_k = top_k
        self.device = device  # accepted for a uniform constructor; runs on the CPU
        self.method = method
        self.background_px = background_px
        self.k_sigma = k_sigma
        self.min_area = min_area
        self.min_elongation = min_elongation
        self.psf_sigma = psf_sigma

    def predict(self, image: np.ndarray, prompt: str = "debris") -> Prediction:
        residual, sigma = residual_image(image, self.background_px)
        if self.method == "lsd":
            pred = lsd_streaks(residual, sigma, min_length=float(self.min_area))
        else:
            pred = component_streaks(
                residual, sigma, self.k_sigma, self.min_area, self.min_elongation, self.psf_sigma
            )
        return pred.top_k(self.top_k)
