"""SDTD-style space-debris videos: sky, stars, noise and moving line-source debris.

Follows the simulation of the SDT-Net paper (Zhuang et al., §3; ``reference/sdt-net-...md``):

- each video has K debris, the k-th with parameters ``S_k^t = {x, y, l, w, theta, v}`` (eq. 4):
  centre, length, width, angle and speed; the centre moves by ``v (cos theta, sin theta) dt``
  per frame (eq. 5, dt = 1), the streak lies along theta (it is the trail of that motion);
- each debris is drawn as a rotated rectangle with random brightness noise, blurred by a
  Gaussian PSF (eq. 6), and may be randomly truncated (the track ends at a random frame);
  a debris whose rectangle leaves the frame is dropped from then on (its track ends);
- the paper draws the debris into real ZTF frames; here the sky itself is simulated: a smoothly
  varying background (gradient, moonlight glow, light pollution), stars as PSF point sources that
  drift together (the sidereal field), Poisson and read noise, fixed hot pixels and random
  outliers (cosmic-ray hits).

Frames are kept as 16-bit data (``raw/*.png``, uint16) and shown through the paper's ZScale
stretch (eqs. 1-3, :func:`zscale`) as 8-bit RGB PNGs, which is what teachers and students read.
Note: astropy's ``ZScaleInterval`` is IRAF's sample-and-fit zscale, a different algorithm from
the paper's median +- k·std; this module implements the paper's.

Ground truth per split: a COCO instances json (``debris`` category, id 1) whose images carry
``video_id`` and ``frame_id`` (1-based) and whose annotations carry ``track_id``, the box and
the two streak ``endpoints`` [x1, y1, x2, y2], its ``width`` and the oriented box ``obb``
[x1, y1, ..., x4, y4] (the rectangle padded by the PSF, :mod:`afss_utils.debris.obb`); and
MOTChallenge text files (``mot/<split>/<video>/gt/gt.txt`` + ``seqinfo.ini``) for the MOT
evaluators.

CLI: ``python -m afss_utils.debris.simulation --out data/debris --videos 4 --frames 10 --size 160``.
"""

from __future__ import annotations

import argparse
import configparser
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from afss_utils.coco import make_annotation, make_image, make_instances, save_json
from afss_utils.debris.obb import axis_pad, streak_corners
from afss_utils.progress import bar

__all__ = [
    "DEBRIS_CATEGORIES",
    "Debris",
    "DebrisConfig",
    "DebrisFrame",
    "coco_to_mot",
    "debris_state",
    "generate_dataset",
    "read_mot",
    "render_video",
    "split_info",
    "split_statistics",
    "write_mot",
    "zscale",
]

DEBRIS_CATEGORIES = [{"id": 1, "name": "debris", "supercategory": "debris"}]
MOT_COLUMNS = ("frame", "id", "x", "y", "w", "h", "conf", "cls", "vis", "z")


# ---------------------------------------------------------------------------- ZScale
def zscale(image: np.ndarray, k: float = 2.5) -> np.ndarray:
    """The paper's ZScale (eqs. 1-3): (H, W) float data -> (H, W) uint8.

    ``[z1, z2] = median -+ k * std`` is stretched linearly to [0, 255] and values outside are
    clipped. A constant image (std 0) maps to 0.
    """
    data = np.asarray(image, dtype=np.float64)
    if data.size == 0:
        return np.zeros(data.shape, np.uint8)
    med, std = float(np.median(data)), float(np.std(data))
    z1, z2 = med - k * std, med + k * std
    if z2 <= z1:
        return np.zeros(data.shape, np.uint8)
    scaled = 255.0 * (data - z1) / (z2 - z1)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True)
class DebrisConfig:
    """What a video looks like. Lengths in pixels, speeds in pixels per frame, counts per video."""

    size: int = 160  # frames are size x size
    frames: int = 10  # T
    debris: tuple[int, int] = (1, 3)  # K drawn uniformly in [lo, hi]; dense sets use > 3
    length: tuple[float, float] = (12.0, 30.0)
    width: tuple[float, float] = (1.5, 2.5)
    speed: tuple[float, float] = (3.0, 7.0)
    brightness: tuple[float, float] = (400.0, 1200.0)  # counts per pixel above the sky
    brightness_noise: float = 0.25  # relative std of the rectangle's pixel brightness
    psf_sigma: float = 0.8  # delta_psf of eq. 6, pixels
    truncate_prob: float = 0.2  # chance that a debris' track ends at a random frame
    crossing: bool = False  # dense sets: debris are placed in pairs whose tracks cross
    fragments: bool = False  # dense sets: and in break-up groups flying side by side
    stars: int = 40
    star_flux: tuple[float, float] = (200.0, 8000.0)
    sidereal_drift: tuple[float, float] = (0.0, 0.8)  # star field speed range, pixels per frame
    sky: float = 1000.0  # mean sky level, counts
    sky_gradient: float = 0.3  # relative change of the sky across the frame
    moon_prob: float = 0.5  # chance of a moonlight glow
    read_noise: float = 8.0  # counts rms
    hot_pixels: int = 4
    outliers: int = 2  # cosmic-ray hits per frame
    margin: float = 0.1  # start centres this fraction of the size away from the border
    dense_share: float = 0.0  # share of a split's videos rendered dense (the last ones)

    def dense(self) -> DebrisConfig:
        """The dense subset, dense in the SDT-Net paper's sense (more than three debris in a
        frame, overlapping in space and time): 5-8 debris per video, placed as pairs whose
        tracks cross and as break-up groups of 2-3 fragments flying side by side, a few streak
        widths apart on nearly the same heading, so streaks overlap along their length for
        many frames and not only at one crossing point."""
        k = max(self.debris[1], 3) + 2
        return replace(
            self,
            debris=(k, k + 3),
            crossing=True,
            fragments=True,
            truncate_prob=min(self.truncate_prob, 0.1),
            dense_share=0.0,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Debris:
    """One line-source debris at frame 1 (eq. 4): centre (x, y), l, w, theta (rad), v.

    ``last_frame`` is the frame after which a truncated debris vanishes (None: never).
    """

    track_id: int
    x: float
    y: float
    length: float
    width: float
    theta: float
    speed: float
    brightness: float
    last_frame: int | None = None


def debris_state(d: Debris, frame: int) -> tuple[float, float, np.ndarray]:
    """Centre (x, y) and the two endpoints (2, 2) of ``d`` at 1-based ``frame`` (eq. 5, dt=1)."""
    dt = frame - 1
    c, s = math.cos(d.theta), math.sin(d.theta)
    x, y = d.x + d.speed * c * dt, d.y + d.speed * s * dt
    half = d.length / 2
    ends = np.array([[x - half * c, y - half * s], [x + half * c, y + half * s]])
    return x, y, ends


def _corners(d: Debris, frame: int) -> np.ndarray:
    """(4, 2) corners of the rectangle of ``d`` at ``frame``."""
    _, _, ends = debris_state(d, frame)
    n = np.array([-math.sin(d.theta), math.cos(d.theta)]) * d.width / 2
    return np.array([ends[0] + n, ends[1] + n, ends[1] - n, ends[0] - n])


def _inside(points: np.ndarray, size: int) -> bool:
    return bool(np.all(points >= 0) and np.all(points <= size - 1))


# ---------------------------------------------------------------------------- sampling
def _sample_debris(rng: np.random.Generator, cfg: DebrisConfig) -> list[Debris]:
    k = int(rng.integers(cfg.debris[0], cfg.debris[1] + 1))
    lo, hi = cfg.margin * cfg.size, (1 - cfg.margin) * cfg.size

    def one(tid: int, x: float, y: float, theta: float, speed: float) -> Debris:
        last = None
        if rng.random() < cfg.truncate_prob and cfg.frames > 2:
            last = int(rng.integers(2, cfg.frames))
        return Debris(
            tid,
            float(x),
            float(y),
            float(rng.uniform(*cfg.length)),
            float(rng.uniform(*cfg.width)),
            float(theta),
            float(speed),
            float(rng.uniform(*cfg.brightness)),
            last,
        )

    out: list[Debris] = []
    while len(out) < k:
        tid = len(out) + 1
        if cfg.fragments and k - len(out) >= 2 and rng.random() < 0.5:
            # A break-up: 2-3 fragments from one point, headings within a few degrees, speeds
            # within 15 %, a few widths apart across the track and staggered along it; they
            # pass the frame's middle region at frame tm, so they stay in view together.
            n = int(min(k - len(out), rng.integers(2, 4)))
            p = rng.uniform(0.35 * cfg.size, 0.65 * cfg.size, size=2)
            tm = int(rng.integers(2, max(cfg.frames, 3)))
            theta, v = rng.uniform(0, 2 * math.pi), rng.uniform(*cfg.speed)
            gap = rng.uniform(2.0, 4.0) * cfg.width[1]
            for j in range(n):
                th = theta + rng.normal(0, math.radians(4))
                vj = v * rng.uniform(0.85, 1.15)
                across = (j - (n - 1) / 2) * gap
                along = rng.uniform(-0.5, 0.5) * cfg.length[1]
                c, sn = math.cos(th), math.sin(th)
                x = p[0] - vj * (tm - 1) * c - across * sn + along * c
                y = p[1] - vj * (tm - 1) * sn + across * c + along * sn
                out.append(one(tid + j, x, y, th, vj))
            continue
        if cfg.crossing and k - len(out) >= 2:
            # Two tracks meet at point p at frame tm: each starts v*(tm-1) back along its heading.
            p = rng.uniform(0.35 * cfg.size, 0.65 * cfg.size, size=2)
            tm = int(rng.integers(2, max(cfg.frames, 3)))
            for j in range(2):
                theta = rng.uniform(0, 2 * math.pi)
                v = rng.uniform(*cfg.speed)
                back = v * (tm - 1)
                x0, y0 = p[0] - back * math.cos(theta), p[1] - back * math.sin(theta)
                out.append(one(tid + j, x0, y0, theta, v))
            continue
        x, y = rng.uniform(lo, hi, size=2)
        out.append(one(tid, x, y, rng.uniform(0, 2 * math.pi), rng.uniform(*cfg.speed)))
    return out


# ---------------------------------------------------------------------------- rendering
@dataclass
class DebrisFrame:
    """One rendered frame: (H, W) float32 counts and the visible debris' ground truth.

    boxes: (N, 4) xyxy pixels (the rectangle's corners, padded by the PSF); endpoints: (N, 2, 2)
    xy pixels; centres: (N, 2); track_ids: (N,) int; widths: (N,) streak widths in pixels;
    obbs: (N, 4, 2) xy pixels, the oriented box: the rectangle padded so that its hull is the
    (unclipped) box.
    """

    frame_id: int
    image: np.ndarray
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    endpoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 2)))
    centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    widths: np.ndarray = field(default_factory=lambda: np.zeros(0))
    obbs: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 2)))


def _sky(rng: np.random.Generator, cfg: DebrisConfig) -> np.ndarray:
    """Smooth background: sky level, a linear gradient, light pollution at one edge, moonlight."""
    n = cfg.size
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) / max(n - 1, 1)
    a = rng.uniform(0, 2 * math.pi)
    grad = 1 + cfg.sky_gradient * (np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5))
    sky = cfg.sky * grad
    # Light pollution: a glow rising towards one side of the frame.
    side = rng.uniform(0, 2 * math.pi)
    t = 0.5 + 0.5 * (np.cos(side) * (xx - 0.5) + np.sin(side) * (yy - 0.5)) * 2
    sky += cfg.sky * rng.uniform(0.0, 0.3) * np.clip(t, 0, None) ** 2
    if rng.random() < cfg.moon_prob:
        mx, my = rng.uniform(-0.3, 1.3, size=2)
        r2 = (xx - mx) ** 2 + (yy - my) ** 2
        sky += cfg.sky * rng.uniform(0.3, 1.0) * np.exp(-r2 / (2 * rng.uniform(0.2, 0.5) ** 2))
    return sky


def _stamp_gaussians(
    image: np.ndarray, xy: np.ndarray, flux: np.ndarray, sigma: float, radius: int
) -> None:
    """Add point sources (eq. 6 with S = flux) at sub-pixel positions ``xy`` (N, 2), in place."""
    n = image.shape[0]
    offs = np.arange(-radius, radius + 1)
    for (x, y), s in zip(xy, flux, strict=True):
        cx, cy = int(round(x)), int(round(y))
        xs, ys = offs + cx, offs + cy
        gx = np.exp(-((xs - x) ** 2) / (2 * sigma**2))
        gy = np.exp(-((ys - y) ** 2) / (2 * sigma**2))
        patch = s / (2 * math.pi * sigma**2) * np.outer(gy, gx)
        okx, oky = (xs >= 0) & (xs < n), (ys >= 0) & (ys < n)
        if okx.any() and oky.any():
            image[np.ix_(ys[oky], xs[okx])] += patch[np.ix_(oky, okx)]


def _draw_debris(rng: np.random.Generator, cfg: DebrisConfig, d: Debris, frame: int) -> np.ndarray:
    """(H, W) float layer: the rotated rectangle with brightness noise, PSF-blurred."""
    n = cfg.size
    shift = 4  # cv2 sub-pixel polygon vertices: 1/16 px
    pts = np.round(_corners(d, frame) * (1 << shift)).astype(np.int32)
    mask = np.zeros((n, n), np.uint8)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_AA, shift=shift)
    rect = mask.astype(np.float64)
    if not rect.any():  # thinner than a pixel row: fall back to the centre line
        _, _, ends = debris_state(d, frame)
        p = np.round(ends * (1 << shift)).astype(np.int32)
        cv2.line(mask, tuple(p[0]), tuple(p[1]), 1, 1, cv2.LINE_AA, shift)
        rect = mask.astype(np.float64)
    noise = 1 + cfg.brightness_noise * rng.standard_normal((n, n))
    layer = rect * d.brightness * np.clip(noise, 0.1, None)
    if cfg.psf_sigma > 0:
        layer = cv2.GaussianBlur(layer, (0, 0), cfg.psf_sigma)
    return layer


def render_video(seed: int | Sequence[int], cfg: DebrisConfig) -> list[DebrisFrame]:
    """Simulate one video of ``cfg.frames`` frames; deterministic per ``seed``."""
    rng = np.random.default_rng(seed)
    n = cfg.size
    sky = _sky(rng, cfg)
    star_xy = rng.uniform(-0.2 * n, 1.2 * n, size=(cfg.stars, 2))
    star_flux = np.exp(rng.uniform(*np.log(cfg.star_flux), size=cfg.stars))
    drift_dir = rng.uniform(0, 2 * math.pi)
    drift = rng.uniform(*cfg.sidereal_drift) * np.array([math.cos(drift_dir), math.sin(drift_dir)])
    seeing = rng.uniform(0.8, 1.4)
    hot = rng.integers(0, n, size=(cfg.hot_pixels, 2))
    debris = _sample_debris(rng, cfg)
    seen: set[int] = set()
    gone: set[int] = set()  # a debris that was in the frame and left it stays dropped
    out = []
    for t in range(1, cfg.frames + 1):
        signal = sky.copy()
        _stamp_gaussians(signal, star_xy + drift * (t - 1), star_flux, seeing, 4)
        ids, boxes, ends_all, centres, widths = [], [], [], [], []
        for d in debris:
            if d.track_id in gone or (d.last_frame is not None and t > d.last_frame):
                continue
            corners = _corners(d, t)
            if not _inside(corners, n):
                if d.track_id in seen:
                    gone.add(d.track_id)
                continue
            seen.add(d.track_id)
            signal += _draw_debris(rng, cfg, d, t)
            x, y, ends = debris_state(d, t)
            pad = 1.0 + cfg.psf_sigma
            lo = np.clip(corners.min(0) - pad, 0, n)
            hi = np.clip(corners.max(0) + pad, 0, n)
            ids.append(d.track_id)
            boxes.append([lo[0], lo[1], hi[0], hi[1]])
            ends_all.append(ends)
            centres.append([x, y])
            widths.append(d.width)
        pad = 1.0 + cfg.psf_sigma
        ends_arr = np.asarray(ends_all, float).reshape(-1, 2, 2)
        image = rng.poisson(np.clip(signal, 0, None)).astype(np.float64)
        image += cfg.read_noise * rng.standard_normal((n, n))
        image[hot[:, 1], hot[:, 0]] = 60000.0
        hits = rng.integers(0, n, size=(cfg.outliers, 2))
        image[hits[:, 1], hits[:, 0]] += rng.uniform(2000, 20000, size=cfg.outliers)
        out.append(
            DebrisFrame(
                t,
                np.clip(image, 0, 65535).astype(np.float32),
                np.asarray(ids, int),
                np.asarray(boxes, float).reshape(-1, 4),
                ends_arr,
                np.asarray(centres, float).reshape(-1, 2),
                np.asarray(widths, float),
                streak_corners(ends_arr, np.asarray(widths, float), axis_pad(ends_arr, pad)),
            )
        )
    return out


# ---------------------------------------------------------------------------- statistics
# SDTD, the SDT-Net paper's dataset (its §3, Table 1 and §4.6), in the rows of split_statistics
SDTD_FACTS = {
    "videos": "18,040 (1,000 test images in two test sets)",
    "frames per video": "2-3.5 (62,562 or 37,829 frames in all: the paper gives both)",
    "frame size (px)": "1524 x 1524 (crops of ZTF frames)",
    "debris per frame (mean / max)": "1 to 5; dense: more than 3",
    "frames with > 3 debris": "dense test set",
    "frames where two debris overlap": "dense: 'significant spatial overlap'",
    "streak length (px, p5-p95)": "not stated",
}


def split_statistics(instances: dict) -> dict[str, str]:
    """What a rendered split is, in the rows of :data:`SDTD_FACTS`: videos, frames, frame size,
    debris per frame, the share of frames with more than three debris and with two debris whose
    boxes intersect (overlap in space), and the streak length's 5th-95th percentile."""
    images = instances["images"]
    if not images:
        return dict.fromkeys(SDTD_FACTS, "none")
    by_image: dict[int, list[dict]] = {im["id"]: [] for im in images}
    for a in instances["annotations"]:
        by_image[a["image_id"]].append(a)
    counts = np.array([len(v) for v in by_image.values()])
    overlap = [_any_overlap(np.array([a["bbox"] for a in v])) for v in by_image.values()]
    ends = np.array([a["endpoints"] for a in instances["annotations"]], float).reshape(-1, 4)
    lengths = np.hypot(ends[:, 2] - ends[:, 0], ends[:, 3] - ends[:, 1])
    videos = len({im["video_id"] for im in images})
    sizes = {(im["width"], im["height"]) for im in images}
    return {
        "videos": str(videos),
        "frames per video": f"{len(images) / videos:.0f}",
        "frame size (px)": ", ".join(f"{w} x {h}" for w, h in sorted(sizes)),
        "debris per frame (mean / max)": f"{counts.mean():.1f} / {counts.max()}",
        "frames with > 3 debris": f"{(counts > 3).mean():.0%}",
        "frames where two debris overlap": f"{np.mean(overlap):.0%}",
        "streak length (px, p5-p95)": (
            f"{np.percentile(lengths, 5):.0f}-{np.percentile(lengths, 95):.0f}"
            if len(lengths)
            else "none"
        ),
    }


def _any_overlap(boxes: np.ndarray) -> bool:
    """Whether two of the (N, 4) xywh boxes intersect."""
    if len(boxes) < 2:
        return False
    lo, hi = boxes[:, :2], boxes[:, :2] + boxes[:, 2:]
    inter = np.minimum(hi[:, None], hi[None]) - np.maximum(lo[:, None], lo[None])
    hit = (inter > 0).all(-1)
    np.fill_diagonal(hit, False)
    return bool(hit.any())


# ---------------------------------------------------------------------------- dataset
def split_info(cfg: DebrisConfig, seed: int, videos: int) -> dict:
    """The ``info`` of a split's json: what made it (json-shaped, so it compares after reading)."""
    info = {
        "simulator": "afss_utils.debris.simulation",
        "seed": seed,
        "videos": videos,
        **cfg.to_dict(),
    }
    return json.loads(json.dumps(info))


def generate_split(
    out_dir: str | os.PathLike,
    split: str,
    videos: int,
    cfg: DebrisConfig,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Render ``videos`` videos into ``out_dir/<split>/`` and write ``out_dir/<split>.json``.

    The last ``round(videos * cfg.dense_share)`` videos are rendered with ``cfg.dense()`` (a
    training split that holds both kinds, as SDTD's does); each video's pixels depend only on
    its own settings, the seed, the split's name and its index. Image files: ``<split>/<video>/<frame>.png`` (ZScaled 8-bit RGB) and
    ``<split>/<video>/raw/<frame>.png`` (uint16 counts). Returns the instances dict.
    """
    out_dir = Path(out_dir)
    images, anns = [], []
    split_key = sum(ord(c) * 31**i for i, c in enumerate(split)) % (2**31)
    if not 0 <= cfg.dense_share <= 1:
        raise ValueError(f"dense_share must be in [0, 1], got {cfg.dense_share}")
    first_dense = videos - round(videos * cfg.dense_share)
    for v in bar(range(videos), desc=f"debris {split}", progress=progress):
        video_id = v + 1
        name = f"{split}_{video_id:04d}"
        vdir = out_dir / split / name
        (vdir / "raw").mkdir(parents=True, exist_ok=True)
        for fr in render_video([seed, split_key, v], cfg.dense() if v >= first_dense else cfg):
            image_id = len(images) + 1
            rel = f"{split}/{name}/{fr.frame_id:04d}.png"
            shown = zscale(fr.image)
            cv2.imwrite(str(out_dir / rel), cv2.cvtColor(shown, cv2.COLOR_GRAY2BGR))
            raw_rel = f"{split}/{name}/raw/{fr.frame_id:04d}.png"
            cv2.imwrite(str(out_dir / raw_rel), np.round(fr.image).astype(np.uint16))
            images.append(
                make_image(
                    image_id,
                    rel,
                    cfg.size,
                    cfg.size,
                    video_id=video_id,
                    video=name,
                    frame_id=fr.frame_id,
                    raw_file=raw_rel,
                )
            )
            for tid, box, ends, w, obb in zip(
                fr.track_ids, fr.boxes, fr.endpoints, fr.widths, fr.obbs, strict=True
            ):
                anns.append(
                    make_annotation(
                        len(anns) + 1,
                        image_id,
                        box_xyxy=box,
                        track_id=int(tid),
                        video_id=video_id,
                        endpoints=[round(float(e), 2) for e in ends.reshape(-1)],
                        width=round(float(w), 2),
                        obb=[round(float(c), 2) for c in obb.reshape(-1)],
                    )
                )
    inst = make_instances(images, anns, info=split_info(cfg, seed, videos))
    inst["categories"] = list(DEBRIS_CATEGORIES)
    inst["videos"] = [
        {"id": v + 1, "name": f"{split}_{v + 1:04d}", "frames": cfg.frames} for v in range(videos)
    ]
    save_json(inst, out_dir / f"{split}.json")
    coco_to_mot(inst, out_dir / "mot" / split)
    return inst


def generate_dataset(
    out_dir: str | os.PathLike,
    videos: dict[str, int],
    cfg: DebrisConfig,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Path]:
    """Splits by name -> number of videos; a split whose name contains ``dense`` uses
    :meth:`DebrisConfig.dense`. Returns split -> json path."""
    out = {}
    for split, n in videos.items():
        c = cfg.dense() if "dense" in split else cfg
        generate_split(out_dir, split, n, c, seed, progress)
        out[split] = Path(out_dir) / f"{split}.json"
    return out


# ---------------------------------------------------------------------------- MOTChallenge io
def write_mot(path: str | os.PathLike, rows: np.ndarray) -> Path:
    """Write (N, >=7) rows ``frame, id, x, y, w, h, conf[, cls, vis, z]`` (frame 1-based, xywh
    pixels) as a MOTChallenge text file, sorted by frame then id."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, np.shape(rows)[-1] if len(rows) else 10)
    if rows.shape[1] < 10:
        pad = np.full((len(rows), 10 - rows.shape[1]), -1.0)
        rows = np.hstack([rows, pad])
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    with open(path, "w") as fh:
        for r in rows:
            fh.write(
                f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},"
                f"{r[6]:.4g},{int(r[7])},{r[8]:.4g},{int(r[9])}\n"
            )
    return path


def read_mot(path: str | os.PathLike) -> np.ndarray:
    """(N, 10) float rows of a MOTChallenge file (empty file -> (0, 10))."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MOTChallenge file not found")
    text = path.read_text().strip()
    if not text:
        return np.zeros((0, 10))
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    if rows.shape[1] < 6:
        raise ValueError(f"{path}: MOT rows need >= 6 columns, got {rows.shape[1]}")
    if rows.shape[1] < 10:
        rows = np.hstack([rows, np.full((len(rows), 10 - rows.shape[1]), -1.0)])
    return rows[:, :10]


def coco_to_mot(instances: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Ground truth of a debris COCO split -> ``out_dir/<video>/gt/gt.txt`` + ``seqinfo.ini``
    (conf 1, class 1, visibility 1: every row is scored). Returns video name -> gt path."""
    out_dir = Path(out_dir)
    by_image = {im["id"]: im for im in instances["images"]}
    per_video: dict[str, list] = {}
    size: dict[str, tuple[int, int, int]] = {}
    for im in instances["images"]:
        per_video.setdefault(im["video"], [])
        w, h, t = size.get(im["video"], (im["width"], im["height"], 0))
        size[im["video"]] = (w, h, max(t, im["frame_id"]))
    for a in instances["annotations"]:
        im = by_image[a["image_id"]]
        per_video[im["video"]].append([im["frame_id"], a["track_id"], *a["bbox"], 1, 1, 1, -1])
    paths = {}
    for video, rows in per_video.items():
        gt = write_mot(out_dir / video / "gt" / "gt.txt", np.asarray(rows).reshape(-1, 10))
        ini = configparser.ConfigParser()
        ini.optionxform = str  # MOTChallenge keys are camelCase; configparser would lower them
        w, h, t = size[video]
        ini["Sequence"] = {
            "name": video,
            "imDir": "img1",
            "frameRate": "1",
            "seqLength": str(t),
            "imWidth": str(w),
            "imHeight": str(h),
            "imExt": ".png",
        }
        with open(out_dir / video / "seqinfo.ini", "w") as fh:
            ini.write(fh, space_around_delimiters=False)
        paths[video] = gt
    return paths


# ---------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m afss_utils.debris.simulation", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--videos", type=int, default=4, help="videos per split")
    p.add_argument("--splits", nargs="+", default=["train", "test_sparse", "test_dense"])
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    cfg = DebrisConfig(size=a.size, frames=a.frames)
    paths = generate_dataset(a.out, {s: a.videos for s in a.splits}, cfg, a.seed)
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
