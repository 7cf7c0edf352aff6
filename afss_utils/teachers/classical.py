"""Weight-free teachers: classical image processing, no download, fast on any CPU.

They exist so the whole study runs anywhere: imperfect pseudo-labellers (good on a dark
background, weaker over a bright cluttered Earth) whose labels distillation can improve.

- ``classical_threshold``: luminance threshold (Otsu) on a background-subtracted image,
  morphology, largest connected component.
- ``classical_grabcut``: saliency seed (image-border contrast + spectral residual) refined by
  OpenCV GrabCut at reduced resolution.

Both score their mask with :func:`mask_confidence`, a number in [0, 1] that measures how well the
mask stands out from its surroundings and how compact it is (see there). Confidence filtering
(the paper's eq. 6) relies on it, so it is a measurement, never a constant.
"""

from __future__ import annotations

import cv2
import numpy as np

from afss_utils.teachers.base import Prediction, register_teacher

__all__ = [
    "ClassicalGrabCutTeacher",
    "ClassicalThresholdTeacher",
    "fill_holes",
    "largest_component",
    "mask_confidence",
]


# ---------------------------------------------------------------------------- helpers
def luminance(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 luma (Rec. 601, what cv2 uses)."""
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def largest_component(mask: np.ndarray, min_area: int = 1) -> np.ndarray:
    """The largest 8-connected component of a (H, W) bool mask (all False if none >= min_area)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, dtype=bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = int(np.argmax(areas))
    if areas[best] < min_area:
        return np.zeros(mask.shape, dtype=bool)
    return labels == best + 1


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a (H, W) bool mask: pixels not reachable from the border through background."""
    m = mask.astype(np.uint8)
    h, w = m.shape
    # Flood the background from a 1-px frame around the image so border-touching masks work too.
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = m
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return mask | holes


def mask_confidence(gray: np.ndarray, mask: np.ndarray) -> float:
    """Confidence in [0, 1] that ``mask`` outlines one object standing out of its surroundings.

    gray: (H, W) luminance; mask: (H, W) bool. ``contrast * (0.5 + 0.5 * solidity) * extent``:

    - *contrast* in [0, 1): separability of the luminance inside the mask and in a ring around it
      (width ~ 15% of the object's size), ``d = |mu_in - mu_ring| / sqrt((var_in + var_ring) / 2)``
      mapped by ``1 - exp(-d / 2)``; d = 2 (clearly separated) gives 0.63, d = 5 gives 0.92.
      A mask that merely cuts a uniform region in two has d ~ 0.
    - *solidity* in [0, 1]: mask area / convex-hull area; a thresholded patch of Earth clutter
      is ragged. Half weight only: real spacecraft with thin antennas and booms are not convex.
    - *extent* in [0, 1]: 1 for masks covering 0.1%-40% of the image, falling linearly to 0 at
      0 px and at 100% (a mask that fills the frame is background, not an object).
    0 for an empty mask.
    """
    h, w = mask.shape
    m8 = mask.astype(np.uint8)
    area = int(cv2.countNonZero(m8))
    if area == 0:
        return 0.0
    x1, y1, bw, bh = cv2.boundingRect(m8)
    x2, y2 = x1 + bw, y1 + bh
    r = max(2, int(round(0.15 * max(bw, bh))))
    # Ring statistics on the box grown by r only, which keeps this O(object) not O(image).
    bx1, by1, bx2, by2 = max(0, x1 - r), max(0, y1 - r), min(w, x2 + r), min(h, y2 + r)
    sub_m = m8[by1:by2, bx1:bx2]
    sub_g = gray[by1:by2, bx1:bx2].astype(np.float32)
    # Distance to the mask (linear time) instead of dilating by a large disc.
    dist = cv2.distanceTransform(1 - sub_m, cv2.DIST_L2, 3)
    inside = sub_m > 0
    ring = ~inside & (dist <= r)
    if ring.sum() < 8:
        contrast = 0.0
    else:
        mu_i, mu_r = sub_g[inside].mean(), sub_g[ring].mean()
        var = 0.5 * (sub_g[inside].var() + sub_g[ring].var())
        d = abs(mu_i - mu_r) / np.sqrt(var + 1.0)  # +1: 8-bit quantisation floor
        contrast = 1.0 - np.exp(-d / 2.0)

    contours, _ = cv2.findContours(sub_m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull_area = cv2.contourArea(cv2.convexHull(np.concatenate(contours)))
    solidity = min(1.0, area / hull_area) if hull_area > 0 else 0.0

    frac = area / (h * w)
    lo, hi = 0.001, 0.40
    extent = frac / lo if frac < lo else (1.0 - (frac - hi) / (1.0 - hi) if frac > hi else 1.0)
    # Truncation by the frame is not penalised: objects cut by the image edge are common.
    return float(np.clip(contrast * (0.5 + 0.5 * solidity) * extent, 0.0, 1.0))


def _prediction_from_mask(gray: np.ndarray, mask: np.ndarray) -> Prediction:
    """One-detection Prediction (box = tight box of mask) or Prediction.empty."""
    h, w = mask.shape
    x, y, bw, bh = cv2.boundingRect(mask.astype(np.uint8))  # = coco.mask_to_xyxy, faster
    if bw == 0:
        return Prediction.empty(h, w)
    score = mask_confidence(gray, mask)
    return Prediction(np.array([[x, y, x + bw, y + bh]]), np.array([score]), mask[None])


def _resize_to(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so that the longer side is <= max_side; returns (image, scale factor <= 1)."""
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s == 1.0:
        return image, 1.0
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), s


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return image


class _ClassicalBase:
    """Shared constructor/batch logic. Single-instance: at most one detection per image."""

    name = "classical"

    def __init__(self, top_k: int | None = 1, device: str = "cpu", min_area_frac: float = 2e-4):
        self.top_k = top_k
        self.device = device  # accepted for a uniform constructor; these run on the CPU
        self.min_area_frac = float(min_area_frac)

    def predict(self, image: np.ndarray, prompt: str = "spacecraft") -> Prediction:
        """image (H, W, 3) uint8 RGB -> Prediction with 0 or 1 detection (the prompt is unused)."""
        image = _check_image(image)
        gray = luminance(image)
        mask = self._mask(image, gray)
        return _prediction_from_mask(gray, mask).top_k(self.top_k)

    def predict_batch(
        self, images: list[np.ndarray], prompt: str = "spacecraft"
    ) -> list[Prediction]:
        return [self.predict(im, prompt) for im in images]

    def _mask(self, image: np.ndarray, gray: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


# ---------------------------------------------------------------------------- threshold
@register_teacher("classical_threshold")
class ClassicalThresholdTeacher(_ClassicalBase):
    """Threshold of |luminance - smooth background|, morphology, largest component.

    The background is a heavily smoothed (median of a 1/8-scale image) copy of the frame, so a
    bright Earth limb or a lamp gradient is subtracted before thresholding. The threshold on
    the (blurred) difference is the lower of Otsu's and a noise level, ``median + noise_sigmas
    * 1.4826 * MAD`` (so dark panels that Otsu would split from a bright bus are kept), floored
    at ``min_contrast`` grey levels so a blank frame yields nothing. Closing joins panels to the
    bus, opening removes speckle, holes are filled. Confidence: :func:`mask_confidence`.
    """

    name = "classical_threshold"

    def __init__(
        self,
        top_k: int | None = 1,
        device: str = "cpu",
        min_area_frac: float = 2e-4,
        min_contrast: float = 8.0,
        noise_sigmas: float = 5.0,
        background_scale: int = 8,
        close_frac: float = 0.04,
    ):
        super().__init__(top_k, device, min_area_frac)
        self.min_contrast = float(min_contrast)
        self.noise_sigmas = float(noise_sigmas)
        self.background_scale = int(background_scale)
        self.close_frac = float(close_frac)

    def _mask(self, image: np.ndarray, gray: np.ndarray) -> np.ndarray:
        h, w = gray.shape
        small_w, small_h = max(8, w // self.background_scale), max(8, h // self.background_scale)
        small = cv2.resize(gray, (small_w, small_h), interpolation=cv2.INTER_AREA)
        # A median wider than the object removes it from the background estimate.
        k = max(3, (min(small_w, small_h) // 2) | 1)
        bg = cv2.medianBlur(small, min(k, 255))
        bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)
        diff = cv2.absdiff(gray, bg)
        diff = cv2.GaussianBlur(diff, (5, 5), 0)
        otsu, _ = cv2.threshold(diff, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        sample = diff[::4, ::4].astype(np.float32)  # robust statistics need no full resolution
        med = float(np.median(sample))
        noise = med + self.noise_sigmas * max(1.4826 * float(np.median(np.abs(sample - med))), 1.0)
        fg = (diff > max(min(otsu, noise), self.min_contrast)).astype(np.uint8)
        kc = max(3, int(self.close_frac * max(h, w)) | 1)
        fg = cv2.morphologyEx(
            fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kc, kc))
        )
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        mask = largest_component(fg > 0, min_area=int(self.min_area_frac * h * w))
        return fill_holes(mask) if mask.any() else mask


# ---------------------------------------------------------------------------- grabcut
def spectral_residual(gray: np.ndarray, size: int = 64) -> np.ndarray:
    """Spectral-residual saliency (Hou & Zhang, CVPR 2007) of (H, W) gray at ``size`` px,
    returned as (size, size) float32 in [0, 1]."""
    g = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    f = np.fft.fft2(g)
    log_amp = np.log(np.abs(f) + 1e-6).astype(np.float32)
    phase = np.angle(f)
    residual = log_amp - cv2.blur(log_amp, (3, 3))
    sal = np.abs(np.fft.ifft2(np.exp(residual + 1j * phase))) ** 2
    sal = cv2.GaussianBlur(sal.astype(np.float32), (9, 9), 2.5)
    return cv2.normalize(sal, None, 0.0, 1.0, cv2.NORM_MINMAX)


def border_contrast(image: np.ndarray) -> np.ndarray:
    """(H, W) float32: CIELAB distance (0-255 scaled units) of each pixel from the median colour
    of the image border (the boundary prior: the background is what touches the frame)."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    b = max(1, min(lab.shape[:2]) // 20)
    border = np.concatenate(
        [
            lab[:b].reshape(-1, 3),
            lab[-b:].reshape(-1, 3),
            lab[:, :b].reshape(-1, 3),
            lab[:, -b:].reshape(-1, 3),
        ]
    )
    # Median of the border, robust to an object that grazes the frame.
    return np.linalg.norm(lab - np.median(border, axis=0), axis=2)


@register_teacher("classical_grabcut")
class ClassicalGrabCutTeacher(_ClassicalBase):
    """Saliency seed refined by ``cv2.grabCut`` at ``work_size`` px, mask upsampled.

    Saliency = 0.7 * border contrast + 0.3 * spectral residual, smoothed. Seeds: the largest
    component above Otsu's saliency threshold is probable foreground (its core definite), the
    image frame and the low-saliency half are definite background; GrabCut's colour models then grow or
    shrink the object to its edges. The largest component, holes filled, is upsampled to the
    input size. A frame whose colours all lie within ``min_contrast`` of the border's yields
    nothing. Confidence: :func:`mask_confidence`.
    """

    name = "classical_grabcut"

    def __init__(
        self,
        top_k: int | None = 1,
        device: str = "cpu",
        min_area_frac: float = 2e-4,
        work_size: int = 160,
        iterations: int = 3,
        min_contrast: float = 12.0,
    ):
        super().__init__(top_k, device, min_area_frac)
        self.min_contrast = float(min_contrast)
        self.work_size = int(work_size)
        self.iterations = int(iterations)

    def _mask(self, image: np.ndarray, gray: np.ndarray) -> np.ndarray:
        h, w = gray.shape
        small, _ = _resize_to(image, self.work_size)
        sh, sw = small.shape[:2]
        sal_b = border_contrast(small)
        if float(sal_b.max()) < self.min_contrast:  # nothing differs from the background
            return np.zeros((h, w), bool)
        sal_b /= sal_b.max()
        sal_s = cv2.resize(
            spectral_residual(luminance(small)), (sw, sh), interpolation=cv2.INTER_LINEAR
        )
        sal = cv2.GaussianBlur(0.7 * sal_b + 0.3 * sal_s, (5, 5), 0)
        sal8 = (255 * sal / max(float(sal.max()), 1e-6)).astype(np.uint8)
        otsu, _ = cv2.threshold(sal8, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        seed = largest_component(sal8 > otsu)
        if not seed.any():
            return np.zeros((h, w), bool)

        gc = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
        gc[sal8 <= np.median(sal8)] = cv2.GC_BGD
        gc[seed] = cv2.GC_PR_FGD
        # The seed's core (eroded by ~1/4 of its thickness) is certain; its rim is for GrabCut.
        core = cv2.distanceTransform(seed.astype(np.uint8), cv2.DIST_L2, 3)
        gc[core > 0.5 * core.max()] = cv2.GC_FGD
        frame = np.zeros((sh, sw), bool)
        frame[:2], frame[-2:], frame[:, :2], frame[:, -2:] = True, True, True, True
        gc[frame & ~seed] = cv2.GC_BGD
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(small, gc, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
            fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        except cv2.error:
            # GrabCut refuses degenerate seeds (e.g. one colour class empty): keep the seed.
            fg = seed
        fg = largest_component(fg, min_area=max(1, int(self.min_area_frac * sh * sw)))
        if not fg.any():
            return np.zeros((h, w), bool)
        fg = fill_holes(fg)
        up = cv2.resize(fg.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
        return largest_component(up)
