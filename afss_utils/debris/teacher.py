"""A weight-free streak teacher: finds the line-source debris of a ZScaled sky frame.

Two methods, both pure OpenCV and both returning one box per streak (a frame holds several):

- ``matched`` (default): subtract a median-filtered background, estimate the noise from the
  median absolute deviation, smooth with a small Gaussian (the matched filter for the PSF),
  threshold at ``k_sigma`` noise levels, and keep the 8-connected components that are
  elongated (the principal axes of their pixels, ``length / width >= min_elongation``): stars
  and hot pixels are round or tiny, debris are lines. Streaks that touch (crossing, or
  fragments flying side by side) threshold into one component; a Hough line search splits it
  into its lines (:func:`line_segments`), one label each.
- ``lsd``: OpenCV's line segment detector (the LSD baseline of the SDT-Net paper's Table 2) on
  the same background-subtracted frame; segments become boxes padded by their width.

The score is a measurement in [0, 1] (``snr_term * elongation_term``), so confidence filtering
(eq. 6 of the AFSS paper) has something to select on.
"""

from __future__ import annotations

import cv2
import numpy as np

from afss_utils.teachers.base import Prediction, register_teacher

__all__ = ["StreakTeacher", "component_streaks", "line_segments", "residual_image"]


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


def line_segments(
    xs: np.ndarray,
    ys: np.ndarray,
    weights: np.ndarray,
    band: float = 2.0,
    gap: float = 2.0,
    min_length: float = 8.0,
    min_pixels: int = 12,
    max_lines: int = 4,
) -> list[np.ndarray]:
    """Straight segments that together make up one connected component -> per segment the (N,)
    bool selection of the component's pixels on it (none: []).

    Two streaks that cross, or two fragments flying side by side, threshold into one component;
    a line detector finds each of them in it. Greedy Hough voting: every pixel ``(xs, ys)`` not
    yet explained votes with its ``weights`` (the signal) for the lines through it (2-degree
    steps, 1-px distance bins summed over 3 neighbouring bins); the best line is refitted to the
    pixels within ``band`` of it (weighted principal axis), cut along its length where the
    pixels leave a gap wider than ``gap`` (the heaviest run is kept), and accepted while that run
    is at least ``min_length`` long with ``min_pixels`` pixels. Its pixels, and those within one
    more pixel of it, are then explained; the crossing point stays available to the next line.
    Deterministic (no sampling): a frame always gives the same lines (a flipped frame nearly
    the same: the 2-degree grid and the bins are not flip-symmetric, so TTA views can differ).
    """
    pts = np.stack([xs, ys], 1).astype(np.float64)
    w = np.clip(np.asarray(weights, np.float64), 1e-6, None)
    if len(pts) < min_pixels:
        return []
    angles = np.deg2rad(np.arange(0.0, 180.0, 2.0))
    normals = np.stack([np.cos(angles), np.sin(angles)], 1)  # (A, 2)
    rho = pts @ normals.T  # (N, A)
    bins = np.round(rho - rho.min()).astype(int)
    n_bins = int(bins.max()) + 1
    explained = np.zeros(len(pts), bool)
    out: list[np.ndarray] = []
    while len(out) < max_lines and (~explained).sum() >= min_pixels:
        acc = np.zeros((len(angles), n_bins + 2))
        free = ~explained
        cols = np.broadcast_to(np.arange(len(angles)), bins.shape)[free]
        np.add.at(acc, (cols.ravel(), bins[free].ravel() + 1), np.repeat(w[free], len(angles)))
        acc = acc[:, :-2] + acc[:, 1:-1] + acc[:, 2:]
        a, b = np.unravel_index(int(np.argmax(acc)), acc.shape)
        near = np.abs(bins[:, a] - b) <= 1
        if near.sum() < 2:
            break
        # refit: the weighted principal axis of the pixels near the voted line
        c = np.average(pts[near], axis=0, weights=w[near])
        d = pts[near] - c
        cov = (d * w[near, None]).T @ d / w[near].sum()
        u = np.linalg.eigh(cov)[1][:, -1]
        perp = np.abs((pts - c) @ np.array([-u[1], u[0]]))
        t = (pts - c) @ u
        on = perp <= band
        order = np.argsort(t[on])
        ts, ws = t[on][order], w[on][order]
        cuts = np.flatnonzero(np.diff(ts) > gap)
        starts, ends = np.r_[0, cuts + 1], np.r_[cuts, len(ts) - 1]
        best = int(np.argmax([ws[i : j + 1].sum() for i, j in zip(starts, ends, strict=True)]))
        t0, t1 = ts[starts[best]], ts[ends[best]]
        segment = on & (t >= t0) & (t <= t1)
        if t1 - t0 < min_length or segment.sum() < min_pixels or not (segment & free).any():
            break
        out.append(segment)
        explained |= (perp <= band + 1) & (t >= t0 - 1) & (t <= t1 + 1)
    return out


def component_streaks(
    residual: np.ndarray,
    sigma: float,
    k_sigma: float = 3.0,
    min_area: int = 6,
    min_elongation: float = 2.5,
    psf_sigma: float = 1.0,
) -> Prediction:
    """Elongated bright components of a residual (H, W) -> Prediction, boxes xyxy pixels.

    A component that :func:`line_segments` finds two or more lines in (streaks crossing, or
    fragments side by side) gives one streak per line, its mask the line's pixels. Masks are
    the components (or lines) (H, W) bool; ``extra['elongation']`` the length/width ratio.
    """
    h, w = residual.shape
    smooth = cv2.GaussianBlur(residual, (0, 0), psf_sigma) if psf_sigma > 0 else residual
    # smoothing a white-noise field by a Gaussian of sigma s lowers its std by ~ 2 s sqrt(pi)
    noise = sigma / (2 * psf_sigma * np.sqrt(np.pi)) if psf_sigma > 0 else sigma
    fg = (smooth > k_sigma * noise).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    boxes, scores, masks, elong = [], [], [], []
    parts = []  # pixels (ys, xs) of a component, or of one line of it
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < min_area:
            continue
        ys, xs = np.nonzero(labels == i)
        lines = line_segments(xs, ys, smooth[ys, xs], min_pixels=min_area)
        if len(lines) >= 2:
            parts.extend((ys[s], xs[s]) for s in lines)
        else:
            parts.append((ys, xs))
    for ys, xs in parts:
        pts = np.stack([xs, ys], 1).astype(np.float64)
        cov = np.cov(pts.T) + np.eye(2) / 12.0  # +1/12: a pixel's own extent
        ev = np.sort(np.linalg.eigvalsh(cov))[::-1]
        e = float(np.sqrt(ev[0] / max(ev[1], 1e-9)))
        x0, y0 = int(xs.min()), int(ys.min())
        bw, bh = int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0
        # a star cut by the frame edge looks elongated: ask twice the elongation there
        at_edge = x0 == 0 or y0 == 0 or x0 + bw == w or y0 + bh == h
        if e < min_elongation * (2 if at_edge else 1):
            continue
        snr = float(smooth[ys, xs].mean() / noise)
        boxes.append([x0, y0, x0 + bw, y0 + bh])
        score = (1 - np.exp(-snr / (2 * k_sigma))) * (1 - np.exp(-(e - 1) / 3))
        scores.append(float(np.clip(score, 0, 1)))
        m = np.zeros((h, w), bool)
        m[ys, xs] = True
        masks.append(m)
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
