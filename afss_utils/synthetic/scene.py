"""One image: pose, lights and object, then background, optics and sensor (:func:`render_sample`).
Per-image generators are seeded by (seed, domain, index) (:func:`_seed_for`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from afss_utils.synthetic.domains import DOMAINS, Domain, check_domains
from afss_utils.synthetic.mesh import Mesh
from afss_utils.synthetic.models import DETECTION_MODELS, MODELS, N_VARIANTS, model_variant
from afss_utils.synthetic.rendering import (
    _grid,
    _Light,
    _stars,
    _u,
    _unit,
    _vignette,
    random_rotation,
    render_earth,
    render_object,
)

MIN_VISIBLE_FRACTION_OF_IMAGE = 2e-4  # a sample whose visible mask is smaller is redrawn
MIN_VISIBLE_FRACTION_OF_OBJECT = 0.3  # ... and so is one that is mostly outside the frame
# SPEED+'s camera (1920 x 1200 px, focal length 2989 px): 35.6 deg across the longer side
FOV_DEG = 35.6


# ---------------------------------------------------------------------------- scene
def _seed_for(seed: int, domain: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(domain.encode()), int(index)])


def _as_rng(rng_or_seed) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def _pose(
    rng: np.random.Generator,
    mesh: Mesh,
    w: int,
    h: int,
    f: float,
    dom: Domain,
    attempt: int,
    distance: tuple[float, float],
):
    """Random attitude; distance log-uniform in ``distance`` bounding radii (the mesh's
    radius is 1), as a camera sees a target come and go: most boxes small, a few filling the
    frame; position inside the frame, or across one edge with probability ``dom.truncate_prob``.

    Returns (rot (3, 3) body -> camera, t (3,) camera-frame position of the body origin).
    """
    rot = random_rotation(rng)
    pts = np.concatenate([mesh.faces.reshape(-1, 3), mesh.lines.reshape(-1, 3)]) @ rot.T
    late = attempt >= 8  # after repeated failures, fall back to a safe mid-sized framing
    lo_d, hi_d = distance
    z = 12.0 if late else math.exp(rng.uniform(math.log(lo_d), math.log(hi_d)))
    z = max(z, 1.8)  # in front of the camera whatever the attitude

    def project(t):
        q = pts + t
        return f * q[:, :2] / q[:, 2:3] + (w / 2, h / 2)

    q = project(np.array([0.0, 0.0, z]))
    lo, hi = q.min(0), q.max(0)
    ext, mid = hi - lo, (hi + lo) / 2
    size = np.array([w, h], float)
    truncate = (not late) and rng.random() < dom.truncate_prob
    edge = int(rng.integers(0, 4))  # 0 left, 1 top, 2 right, 3 bottom
    centre = np.zeros(2)
    for k in range(2):
        if truncate and k == edge % 2:
            keep = rng.uniform(0.4, 0.85) * ext[k]  # this much stays inside along this axis
            centre[k] = (keep - ext[k] / 2) if edge < 2 else (size[k] - keep + ext[k] / 2)
        elif ext[k] < size[k] - 2:
            centre[k] = rng.uniform(ext[k] / 2 + 1, size[k] - ext[k] / 2 - 1)
        else:
            centre[k] = size[k] / 2 + rng.uniform(-0.5, 0.5) * (ext[k] - size[k])
    shift = centre - mid
    t = np.array([shift[0] * z / f, shift[1] * z / f, z])
    # off-axis perspective changes the projected box a little: pull it back inside if meant to be
    q = project(t)
    for k in range(2):
        if truncate and k == edge % 2:
            continue
        lo_k, hi_k = q[:, k].min(), q[:, k].max()
        if hi_k - lo_k < size[k] - 2:
            d = max(0.0, 1 - lo_k) - max(0.0, hi_k - (size[k] - 1))
            t[k] += d * z / f
    return rot, t


def _lights(rng: np.random.Generator, dom: Domain, earth_dir: np.ndarray | None):
    sun = _unit([rng.normal(), rng.normal(), 0.0])
    sz = _u(rng, dom.sun_z)
    sun = _unit(np.r_[sun[:2] * math.sqrt(max(1 - sz * sz, 0)), sz])
    warm = np.array([1.0, 0.97, 0.92]) if dom.name == "sunlamp" else np.array([1.0, 1.0, 0.98])
    lights = [_Light(sun, warm * _u(rng, dom.sun_intensity))]
    for _ in range(int(rng.integers(dom.fill_lights[0], dom.fill_lights[1] + 1))):
        d = _unit(rng.normal(size=3) - [0, 0, 0.8])
        lights.append(_Light(d, np.array([0.85, 0.92, 1.0]) * _u(rng, dom.fill_intensity)))
    es = _u(rng, dom.earthshine)
    if earth_dir is not None and es > 0:
        lights.append(_Light(earth_dir, np.array([0.55, 0.7, 1.0]) * es))
    return sun, lights


def _flare(rng: np.random.Generator, img: np.ndarray, src: np.ndarray, strength: float) -> None:
    """Additive lens flare: ghosts along the line from the source through the centre."""
    h, w = img.shape[:2]
    s = max(1, max(w, h) // 128)
    lh, lw = math.ceil(h / s), math.ceil(w / s)
    fl = np.zeros((lh, lw, 3), np.float32)
    centre = np.array([w / 2, h / 2])
    n_sides = int(rng.choice([0, 6, 8]))
    for _ in range(int(rng.integers(3, 8))):
        k = rng.uniform(-0.4, 2.2)
        p = (src + k * (centre - src)) / s
        r = rng.uniform(0.01, 0.09) * max(w, h) / s
        col = tuple(
            float(x) for x in strength * rng.uniform(0.02, 0.12) * _unit(rng.uniform(0.3, 1.0, 3))
        )
        if n_sides:
            a = np.linspace(0, 2 * np.pi, n_sides, endpoint=False) + rng.uniform(0, 1)
            poly = np.stack([p[0] + r * np.cos(a), p[1] + r * np.sin(a)], 1)
            cv2.fillConvexPoly(fl, np.round(poly * 16).astype(np.int32), col, cv2.LINE_AA, 4)
        else:
            cv2.circle(
                fl,
                tuple(np.round(p * 16).astype(int)),
                max(1, int(r * 16)),
                col,
                -1,
                cv2.LINE_AA,
                4,
            )
    # starburst streaks from the source
    for a in rng.uniform(0, np.pi, int(rng.integers(2, 6))):
        d = np.array([math.cos(a), math.sin(a)]) * max(w, h) / s
        p0, p1 = (src / s - d), (src / s + d)
        cv2.line(
            fl,
            tuple(np.round(p0 * 16).astype(int)),
            tuple(np.round(p1 * 16).astype(int)),
            (0.25 * strength,) * 3,
            1,
            cv2.LINE_AA,
            4,
        )
    fl = cv2.GaussianBlur(fl, (0, 0), 1.2)
    img += cv2.resize(fl, (lw * s, lh * s), interpolation=cv2.INTER_LINEAR)[:h, :w]


def _glare(rng: np.random.Generator, img: np.ndarray, peaks: np.ndarray, exposure: float) -> None:
    """Additive star-shaped glare (diffraction spikes, tapering outwards) centred on the
    brightest over-exposed point; ``peaks`` (sh, sw, 3) is the over-exposure on a coarser grid."""
    h, w = img.shape[:2]
    sh, sw = peaks.shape[:2]
    lum = peaks.max(axis=2)
    y, x = np.unravel_index(int(lum.argmax()), lum.shape)
    strength = min(float(lum[y, x]), 2.0)
    src = np.array([(x + 0.5) * w / sw, (y + 0.5) * h / sh])
    n = int(rng.integers(2, 5))
    a0 = rng.uniform(0, np.pi / n)
    length = rng.uniform(0.04, 0.2) * max(w, h) * (0.5 + 0.25 * strength)
    spikes = np.zeros((h, w), np.float32)
    for i in range(n):
        d = np.array([math.cos(a0 + i * np.pi / n), math.sin(a0 + i * np.pi / n)])
        for k in (1.0, 0.5, 0.25):  # nested segments: brightest near the source
            p0 = tuple(np.round((src - k * length * d) * 16).astype(int))
            p1 = tuple(np.round((src + k * length * d) * 16).astype(int))
            cv2.line(spikes, p0, p1, 1.0, 1, cv2.LINE_AA, 4)
    spikes = cv2.GaussianBlur(spikes, (0, 0), 0.8) * np.float32((0.1 + 0.2 * strength) / exposure)
    img += cv2.merge((spikes, spikes, spikes))


@dataclass
class _Placement:
    """The spacecraft posed, lit and drawn on its own canvas (see :func:`_place_object`).

    ``layer`` (ch, cw, 3) float32 linear radiance and ``omask`` (ch, cw) bool sit at ``(x0, y0)``
    in the image; ``(ix0, iy0, ix1, iy1)`` is their overlap with the frame; ``total`` and ``vis``
    count the object's pixels, all and inside the frame.
    """

    has_earth: bool
    sun: np.ndarray
    layer: np.ndarray
    omask: np.ndarray
    x0: int
    y0: int
    ix0: int
    iy0: int
    ix1: int
    iy1: int
    total: int
    vis: int


def _place_object(
    rng: np.random.Generator,
    mesh: Mesh,
    dom: Domain,
    w: int,
    h: int,
    f: float,
    cpt: tuple[float, float],
    distance: tuple[float, float],
) -> _Placement:
    """Pose and light the spacecraft and draw it, redrawing pose and lights until enough of it
    is visible (0.02 % of the image and 30 % of the object); whether an Earth is behind it is
    drawn here too, because the Earth's direction adds an Earth-shine light."""
    for attempt in range(100):
        rot, t = _pose(rng, mesh, w, h, f, dom, attempt, distance)
        has_earth = rng.random() < dom.earth_prob
        earth_dir = (
            _unit([rng.normal(scale=0.4), rng.normal(scale=0.4), 1.0]) if has_earth else None
        )
        sun, lights = _lights(rng, dom, earth_dir)
        ambient = _u(rng, dom.ambient) * np.array([0.9, 0.95, 1.0])
        layer, omask, (x0, y0) = render_object(mesh, rot, t, f, cpt, lights, ambient)
        ch, cw = omask.shape
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + cw, w), min(y0 + ch, h)
        total = int(omask.sum())
        vis = (
            int(omask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0].sum())
            if ix1 > ix0 and iy1 > iy0
            else 0
        )
        if (
            total
            and vis >= MIN_VISIBLE_FRACTION_OF_IMAGE * w * h
            and vis >= MIN_VISIBLE_FRACTION_OF_OBJECT * total
        ):
            break
    else:  # pragma: no cover - the late attempts use a framing that always passes
        raise RuntimeError("could not place the spacecraft in the frame")
    return _Placement(has_earth, sun, layer, omask, x0, y0, ix0, iy0, ix1, iy1, total, vis)


def _background(
    rng: np.random.Generator,
    dom: Domain,
    w: int,
    h: int,
    f: float,
    cpt: tuple[float, float],
    has_earth: bool,
    sun: np.ndarray,
) -> tuple[np.ndarray, tuple[float, list[int] | None], np.ndarray | None]:
    """The scene behind the object in linear radiance: Earth and/or stars, the lamp disc and
    stray light (sunlamp). Returns (image (h, w, 3) float32, (Earth fraction of the frame, its
    box [x, y, w, h] px or None), the lamp's image position (2,) pixels or None when it is
    behind the camera)."""
    earth = (0.0, None)
    cover, cover_scale = None, 1
    if has_earth:
        img, cover, cover_scale = render_earth(rng, dom, w, h, sun)
        earth = (float(cover.mean()), _cover_box(cover, cover_scale, w, h))
    else:
        img = np.zeros((h, w, 3), np.float32)
    if rng.random() < dom.star_prob:
        _stars(rng, img, _u(rng, dom.stars_per_mpx), cover, cover_scale)
    src = None
    if sun[2] > 0.05:  # lamp in front of the camera: where it would appear in the image
        src = np.array([f * sun[0] / sun[2] + cpt[0], f * sun[1] / sun[2] + cpt[1]])
        if dom.name == "sunlamp" and -0.1 * w < src[0] < 1.1 * w and -0.1 * h < src[1] < 1.1 * h:
            cv2.circle(
                img,
                tuple(np.round(src * 16).astype(int)),
                int(0.02 * max(w, h) * 16) + 16,
                (12.0, 11.5, 11.0),
                -1,
                cv2.LINE_AA,
                4,
            )
    if dom.name == "sunlamp" and rng.random() < 0.6:  # stray light from the lamp side of the lab
        sw, sh = max(2, w // 8), max(2, h // 8)  # a smooth ramp: build it small, upsample
        xx, yy = _grid(sw, sh)
        ang = math.atan2(float(sun[1]), float(sun[0]))
        ramp = np.clip(xx * math.cos(ang) + yy * math.sin(ang) + 0.5, 0, 1) ** 2
        ramp = cv2.resize(
            ramp * np.float32(rng.uniform(0.005, 0.05)), (w, h), interpolation=cv2.INTER_LINEAR
        )
        img += cv2.merge((ramp, ramp * np.float32(0.95), ramp * np.float32(0.85)))
    return img, earth, src


def _cover_box(cover: np.ndarray, s: int, w: int, h: int) -> list[int] | None:
    """COCO [x, y, w, h] px of the covered cells of a coverage map (lh, lw) s times coarser than
    the (h, w) frame, clipped to it; None where nothing is covered."""
    ys, xs = np.nonzero(cover > 0)
    if not len(xs):
        return None
    x0, y0 = int(xs.min()) * s, int(ys.min()) * s
    x1, y1 = min((int(xs.max()) + 1) * s, w), min((int(ys.max()) + 1) * s, h)
    return [x0, y0, x1 - x0, y1 - y0]


def _composite(img: np.ndarray, p: _Placement, w: int, h: int) -> np.ndarray:
    """Paste the object into ``img`` in place (hard edge: the optics blur softens it like a real
    PSF); returns its silhouette in the frame, (h, w) bool."""
    sub = p.omask[p.iy0 - p.y0 : p.iy1 - p.y0, p.ix0 - p.x0 : p.ix1 - p.x0]
    np.copyto(
        img[p.iy0 : p.iy1, p.ix0 : p.ix1],
        p.layer[p.iy0 - p.y0 : p.iy1 - p.y0, p.ix0 - p.x0 : p.ix1 - p.x0],
        where=sub[..., None],
    )
    mask = np.zeros((h, w), bool)
    mask[p.iy0 : p.iy1, p.ix0 : p.ix1] = sub
    return mask


def _optics(
    rng: np.random.Generator,
    dom: Domain,
    img: np.ndarray,
    src: np.ndarray | None,
    cpt: tuple[float, float],
    w: int,
    h: int,
) -> np.ndarray:
    """Bloom of the energy that over-exposes, glare spikes on the brightest highlight, lens
    flare, defocus and motion blur, veiling haze, vignetting and exposure; (h, w, 3) float32
    linear radiance in and out."""
    exposure = _u(rng, dom.exposure)
    bloom = _u(rng, dom.bloom)
    sw, sh = max(1, w // 4), max(1, h // 4)
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    _, peaks = cv2.threshold(small * exposure - 0.9, 0, 0, cv2.THRESH_TOZERO)
    if bloom > 0 and peaks.max() > 0:
        spread = cv2.GaussianBlur(peaks, (0, 0), max(sw, sh) * 0.02) + cv2.GaussianBlur(
            peaks, (0, 0), max(sw, sh) * 0.08
        )
        img += cv2.resize(spread, (w, h), interpolation=cv2.INTER_LINEAR) * (bloom / exposure)
    if peaks.max() > 0 and rng.random() < dom.glare_prob:
        _glare(rng, img, peaks, exposure)
    if src is not None and rng.random() < dom.flare_prob:
        near = math.exp(-max(0.0, float(np.abs(src - cpt).max() / max(w, h)) - 0.5))
        _flare(rng, img, src, near * _u(rng, dom.sun_intensity) / exposure)
    img = cv2.GaussianBlur(img, (0, 0), _u(rng, dom.blur_sigma))
    if rng.random() < dom.motion_prob:
        length = int(rng.integers(3, max(4, max(w, h) // 60)))
        k = np.zeros((length, length), np.float32)
        a = rng.uniform(0, np.pi)
        c0 = (length - 1) / 2
        cv2.line(
            k,
            (round(c0 - c0 * math.cos(a)), round(c0 - c0 * math.sin(a))),
            (round(c0 + c0 * math.cos(a)), round(c0 + c0 * math.sin(a))),
            1.0,
            1,
        )
        img = cv2.filter2D(img, -1, k / k.sum())
    haze = _u(rng, dom.haze) * np.array([0.75, 0.85, 1.0, 0.0])
    return cv2.add(cv2.multiply(img, _vignette(w, h), scale=exposure), tuple(haze))


def _sensor(rng: np.random.Generator, dom: Domain, img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Gamma (x^(1/2.2)), shot + read noise (one luminance field), 8-bit quantisation and an
    optional JPEG round trip: (h, w, 3) float32 radiance -> (h, w, 3) uint8 RGB."""
    img = cv2.pow(cv2.max(img, 0.0), 1 / 2.2)
    read, shot = _u(rng, dom.read_noise), _u(rng, dom.shot_noise)
    noise = rng.standard_normal((h, w), dtype=np.float32)
    sd = cv2.sqrt(cv2.addWeighted(img, shot, img, 0.0, read * read))
    img = cv2.add(img, cv2.multiply(sd, cv2.merge((noise, noise, noise))))
    out = cv2.convertScaleAbs(cv2.max(img, 0.0), alpha=255.0)
    if rng.random() < dom.jpeg_prob:
        q = int(rng.integers(dom.jpeg_quality[0], dom.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out


def _check_distance(distance) -> tuple[float, float]:
    lo, hi = (float(x) for x in distance)
    if not 1.8 <= lo <= hi:
        raise ValueError(
            f"distance must be (near, far) bounding radii with 1.8 <= near <= far, got {distance}"
        )
    return lo, hi


def render_sample(
    rng_or_seed,
    domain: str,
    size: tuple[int, int] = (512, 512),
    model: str | None = None,
    models: Sequence[str] | None = None,
    distance: tuple[float, float] | None = None,
):
    """Render one image of ``domain`` at ``size`` = (W, H).

    Returns (image (H, W, 3) uint8 RGB, mask (H, W) bool silhouette, meta dict with ``model``,
    ``visible_fraction``, ``truncated``, ``area_fraction``, ``earth_fraction``, ``earth_box``
    (the Earth's part of the frame as COCO [x, y, w, h] px, None without it),
    ``sun_phase_deg``). A seed or a ``numpy.random.Generator``; ``model`` forces one model,
    else one of ``models`` is drawn (default :data:`DETECTION_MODELS`); ``distance``: the
    target's distance range in bounding radii (default the domain's, ``Domain.distance``).
    Samples whose visible mask is below 0.02 % of the image or 30 % of the object are redrawn
    from the same generator, so the result stays deterministic.

    Steps, in the order they draw from the generator: model and camera, pose + lights + object
    (:func:`_place_object`), :func:`_background`, :func:`_composite` (no draws),
    :func:`_optics`, :func:`_sensor`.
    """
    (dname,) = check_domains([domain])
    if model is not None and model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known models: {', '.join(MODELS)}")
    w, h = int(size[0]), int(size[1])
    if w < 8 or h < 8:
        raise ValueError(f"image size must be at least 8x8, got {w}x{h}")
    dom = DOMAINS[dname]
    rng = _as_rng(rng_or_seed)
    choices = list(models or DETECTION_MODELS)
    unknown = [m for m in choices if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown models {unknown}; known models: {', '.join(MODELS)}")
    name = model or str(rng.choice(choices))
    variant = int(rng.integers(N_VARIANTS))
    mesh = model_variant(name, variant)
    f = max(w, h) / 2 / math.tan(math.radians(FOV_DEG) / 2)
    cpt = (w / 2, h / 2)

    distance = dom.distance if distance is None else _check_distance(distance)
    placed = _place_object(rng, mesh, dom, w, h, f, cpt, distance)
    img, earth, src = _background(rng, dom, w, h, f, cpt, placed.has_earth, placed.sun)
    mask = _composite(img, placed, w, h)
    img = _optics(rng, dom, img, src, cpt, w, h)
    out = _sensor(rng, dom, img, w, h)

    vis, total, sun = placed.vis, placed.total, placed.sun
    phase = math.degrees(math.acos(float(np.clip(-sun[2], -1, 1))))
    meta = {
        "model": name,
        "variant": variant,
        "visible_fraction": round(vis / total, 4),
        "truncated": bool(vis < total),
        "area_fraction": round(vis / (w * h), 4),
        "earth_fraction": round(earth[0], 4),
        "earth_box": earth[1],
        "sun_phase_deg": round(phase, 1),
    }
    return out, mask, meta
