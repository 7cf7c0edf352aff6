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

import contextlib
from collections.abc import Iterator

import cv2
import numpy as np

from afss_utils.datasets import check_rgb_image
from afss_utils.teachers.base import Prediction, register_teacher

__all__ = [
    "ClassicalGrabCutTeacher",
    "ClassicalThresholdTeacher",
    "fill_holes",
    "largest_component",
    "mask_confidence",
]


# ---------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def single_threaded_cv2() -> Iterator[None]:
    """Run OpenCV on one thread inside the block, restoring the previous count after.

    ``cv2.Canny`` splits the image into one stripe per thread and its hysteresis does not give
    the same edges across stripe borders (measured: 2543 vs 2544 edge pixels on a 320x256 render
    with 1 vs 8 threads), so every score built on the edges changed with the thread count.
    """
    n = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(n)


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
    # float64: the means and variances are sums over up to all pixels of the image.
    sub_g = gray[by1:by2, bx1:bx2].astype(np.float64)
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


def _prediction_from_mask(mask: np.ndarray, score: float) -> Prediction:
    """One-detection Prediction (box = tight box of mask) or Prediction.empty."""
    h, w = mask.shape
    x, y, bw, bh = cv2.boundingRect(mask.astype(np.uint8))  # = coco.mask_to_xyxy, faster
    if bw == 0:
        return Prediction.empty(h, w)
    return Prediction(np.array([[x, y, x + bw, y + bh]]), np.array([score]), mask[None])


def _resize_to(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so that the longer side is <= max_side; returns (image, scale factor <= 1)."""
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s == 1.0:
        return image, 1.0
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), s


class _ClassicalBase:
    """Shared constructor/batch logic. Single-instance: at most one detection per image."""

    name = "classical"

    def __init__(self, top_k: int | None = 1, device: str = "cpu", min_area_frac: float = 2e-4):
        self.top_k = top_k
        self.device = device  # accepted for a uniform constructor; these run on the CPU
        self.min_area_frac = float(min_area_frac)

    def predict(self, image: np.ndarray, prompt: str = "spacecraft") -> Prediction:
        """image (H, W, 3) uint8 RGB -> Prediction with 0 or 1 detection (the prompt is unused)."""
        image = check_rgb_image(image)
        gray = luminance(image)
        mask, score = self._segment(image, gray)
        return _prediction_from_mask(mask, score).top_k(self.top_k)

    def predict_batch(
        self, images: list[np.ndarray], prompt: str = "spacecraft"
    ) -> list[Prediction]:
        return [self.predict(im, prompt) for im in images]

    def _segment(self, image: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, float]:
        """(H, W) bool mask and its confidence; by default :func:`mask_confidence`."""
        mask = self._mask(image, gray)
        return mask, mask_confidence(gray, mask)

    def _mask(self, image: np.ndarray, gray: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


# ---------------------------------------------------------------------------- threshold
def gradient_level(gx: np.ndarray, gy: np.ndarray) -> float:
    """Median gradient magnitude of (H, W) float32 Sobel images, on every second pixel.

    Not ``cv2.magnitude``: its SIMD and scalar paths round differently and which one runs depends
    on the buffers' memory alignment, so the same image gave two levels (14.560218811 vs
    14.560219765) on alternate calls and Canny thresholds, edges and scores followed.
    """
    gx, gy = gx[::2, ::2], gy[::2, ::2]
    return float(np.median(np.sqrt(gx * gx + gy * gy)))


def edge_map(
    gray: np.ndarray, low_k: float, high_k: float, min_step: float, sharp_k: float = 3.0
) -> np.ndarray:
    """(H, W) uint8 gray -> (H, W) uint8 0/1 sharp Canny edges, thresholds relative to the image.

    The Canny thresholds are ``low_k`` / ``high_k`` times the median Sobel magnitude of the
    lightly smoothed (sigma 1 px) image, i.e. of the background's noise and texture, so a grainy
    or textured frame needs a proportionally stronger edge; floored at ``0.5`` / ``1.25 *
    min_step`` (a step of ~min_step grey levels) so a blank frame has no edges. Edges are kept
    only where the band-pass image (sigma 1 minus sigma 3) exceeds ``sharp_k`` times its median.
    """
    g = cv2.GaussianBlur(gray, (0, 0), 1.0)
    level = gradient_level(
        cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    )
    lo, hi = max(low_k * level, 0.5 * min_step), max(high_k * level, 1.25 * min_step)
    with single_threaded_cv2():  # parallel Canny depends on the thread count (see there)
        edges = cv2.Canny(g, lo, hi, L2gradient=True) // 255
    # Sharpness gate: an edge must also stand out in a band-pass (sigma 1 - sigma 3) image,
    # where smooth structures (bloom, glare, clouds, haze) have little energy.
    band = cv2.absdiff(g, cv2.GaussianBlur(gray, (0, 0), 3.0))
    band_level = float(np.median(band[::2, ::2]))
    sharp = band > max(sharp_k * band_level, 0.25 * min_step)
    return edges & cv2.dilate(sharp.astype(np.uint8), np.ones((3, 3), np.uint8))


def group_edges(edges: np.ndarray, close_px: int, group_px: int, min_area: int) -> np.ndarray:
    """(h, w) uint8 0/1 edges -> (h, w) bool mask of the most structured object (maybe empty).

    Edges are closed with a ``close_px`` disc and their holes filled, so an outline becomes a
    solid region. The region holding the most edge pixels is the object; regions within
    ``group_px`` of it join it (booms, antennas and panels separated by a dark gap are parts
    of the same spacecraft). Regions smaller than ``min_area`` px are ignored.
    """
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_px, close_px))
    fg = fill_holes(cv2.morphologyEx(edges, cv2.MORPH_CLOSE, disc) > 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return np.zeros(edges.shape, bool)
    n_edges = np.bincount(labels.ravel(), weights=edges.ravel(), minlength=n)
    big = stats[:, cv2.CC_STAT_AREA] >= min_area
    big[0] = False
    if not big.any():
        return np.zeros(edges.shape, bool)
    best = int(np.argmax(np.where(big, n_edges, -1)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (group_px, group_px))
    near = cv2.dilate((labels == best).astype(np.uint8), disc) > 0
    keep = np.zeros(n, bool)
    keep[np.unique(labels[near])] = True
    return fill_holes((keep & big)[labels])


def boundary_support(mask: np.ndarray, edges: np.ndarray, tol: int = 2) -> float:
    """Fraction in [0, 1] of the (H, W) bool mask's outline within ``tol`` px of an edge pixel
    of (H, W) ``edges``; the outline along the image frame is not counted (no edge there)."""
    outline = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    outline[0, :] = outline[-1, :] = outline[:, 0] = outline[:, -1] = 0
    n = cv2.countNonZero(outline)
    if n == 0:
        return 0.0
    near_edge = cv2.dilate(edges, np.ones((2 * tol + 1, 2 * tol + 1), np.uint8))
    return cv2.countNonZero(outline & near_edge) / n


def frame_contact(mask: np.ndarray) -> float:
    """Mask pixels on the image frame / perimeter of the mask's tight box, in [0, 1]:
    ~0 for an object inside the frame, ~0.25 for one cut along one side of its box."""
    x, y, bw, bh = cv2.boundingRect(mask.astype(np.uint8))
    if bw == 0:
        return 0.0
    on = int(mask[0].sum() + mask[-1].sum() + mask[:, 0].sum() + mask[:, -1].sum())
    return min(1.0, on / (2 * (bw + bh)))


def threshold_confidence(gray: np.ndarray, mask: np.ndarray, edges: np.ndarray) -> float:
    """Confidence in [0, 1] of an edge-grouped mask; gray, edges (H, W), mask (H, W) bool.

    ``sqrt(mask_confidence * (0.25 + 0.75 * support) * (1 - 0.5 * min(1, 2 * frame))
    * (1 - exp(-n_edges / (H + W))))``; the square root (monotone: the ranking, which is what
    confidence filtering uses, is unchanged) puts a clean object on black at ~0.5-0.9:

    - :func:`mask_confidence`: contrast to the surrounding ring, solidity, area plausibility;
    - *support*: :func:`boundary_support`, a true object outline lies on image edges, while a
      mask that closed over a gap or bled into a smooth halo (bloom, haze, clouds) does not;
    - *frame*: :func:`frame_contact`, a region cut by the frame along a long stretch is more
      often a background structure (Earth, limb, glare) than a spacecraft; half weight only,
      as real objects are truncated too;
    - *structure*: the number of edge pixels inside the mask against the frame size; a
      spacecraft is a structured object (many edges), a partial detection (one bright face of
      a dark body) or a speckle holds few.

    Each cue is a ratio of image measurements, meant to rank masks by how likely they are
    correct. How well it does is measured, not promised: in the last default run (notebook 04,
    the fused TTA+WBF scores of the training pseudo-labels against their box IoU) the Spearman
    rank correlation was 0.37 on lightbox, 0.08 on sunlamp and 0.17 on earth: a usable ranking
    on lightbox, a weak one elsewhere and almost none on sunlamp, so the confidence filter of
    eq. (6) has little to select on there. Notebook 01 writes this formula out and checks it
    on one image.
    """
    if not mask.any():
        return 0.0
    h, w = mask.shape
    frame = frame_contact(mask)
    structure = 1.0 - np.exp(-float(cv2.countNonZero(edges & mask.astype(np.uint8))) / (h + w))
    score = (
        mask_confidence(gray, mask)
        * (0.25 + 0.75 * boundary_support(mask, edges))
        * (1.0 - 0.5 * min(1.0, 2.0 * frame))
        * structure
    )
    return float(np.sqrt(np.clip(score, 0.0, 1.0)))


@register_teacher("classical_threshold")
class ClassicalThresholdTeacher(_ClassicalBase):
    """Hysteresis threshold of the image gradient (Canny), outlines closed and grouped.

    A spacecraft is a compact, structured object with sharp edges; Earth, clouds, haze, bloom
    and flare are smooth (optically blurred or of large scale). So: :func:`edge_map` at full
    resolution with thresholds relative to the frame's own gradient level and a sharpness gate
    (``sharp_k``), then at half
    resolution (speed; the closing is coarse anyway) :func:`group_edges` closes the edges with
    a disc of ``close_frac`` of the image size, fills holes, keeps the region holding the most
    edges plus those within ``group_frac``; the mask is upsampled to the input size.
    Confidence: :func:`threshold_confidence`.
    """

    name = "classical_threshold"

    def __init__(
        self,
        top_k: int | None = 1,
        device: str = "cpu",
        min_area_frac: float = 2e-4,
        min_contrast: float = 8.0,
        edge_low: float = 2.0,
        edge_high: float = 4.5,
        close_frac: float = 0.04,
        group_frac: float = 0.06,
        sharp_k: float = 3.0,
    ):
        super().__init__(top_k, device, min_area_frac)
        self.min_contrast = float(min_contrast)
        self.sharp_k = float(sharp_k)
        self.edge_low = float(edge_low)
        self.edge_high = float(edge_high)
        self.close_frac = float(close_frac)
        self.group_frac = float(group_frac)

    def _segment(self, image: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = gray.shape
        edges = edge_map(gray, self.edge_low, self.edge_high, self.min_contrast, self.sharp_k)
        hw, hh = max(1, w // 2), max(1, h // 2)
        # Max-pool to half resolution so that no edge pixel is lost.
        pooled = cv2.dilate(edges, np.ones((2, 2), np.uint8))
        half = cv2.resize(pooled, (hw, hh), interpolation=cv2.INTER_NEAREST)
        side = max(hw, hh)
        mask = group_edges(
            half,
            max(3, int(self.close_frac * side) | 1),
            max(3, int(self.group_frac * side) | 1),
            max(1, int(self.min_area_frac * hw * hh)),
        )
        if not mask.any():
            return np.zeros((h, w), bool), 0.0
        mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR) > 0
        return mask, threshold_confidence(gray, mask, edges)


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
