"""Rendering primitives: random helpers, fractal noise, the procedural Earth, stars and the
shaded, painter's-algorithm spacecraft layer with its exact silhouette.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from afss_utils.synthetic.domains import Domain
from afss_utils.synthetic.mesh import _ALBEDO, _KS, _SHINE, Mesh

_SHIFT = 4  # sub-pixel bits for cv2 drawing: vertices are kept to 1/16 px
_SCALE = 1 << _SHIFT
_EARTH_RES = 256  # the Earth is evaluated at most this many px across, then upsampled


# ---------------------------------------------------------------------------- helpers
def _u(rng: np.random.Generator, lohi) -> float:
    return float(rng.uniform(lohi[0], lohi[1])) if lohi[1] > lohi[0] else float(lohi[0])


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random 3x3 rotation (normalised Gaussian quaternion)."""
    w, x, y, z = _unit(rng.normal(size=4))
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _fbm(
    rng: np.random.Generator,
    u: np.ndarray,
    v: np.ndarray,
    cell: float,
    octaves: int,
    gain: float = 0.5,
) -> np.ndarray:
    """Fractal value noise at float32 coordinates (u, v) (grid pixels); ``cell`` = coarsest period.

    Each octave samples a fresh 64x64 random grid and wraps, so the cost is one ``cv2.remap``
    per octave whatever the coordinate range. Coarse octaves (cell > 16 px) are smooth: they
    are interpolated bicubically on a 4x coarser grid and upsampled; fine ones bilinearly at
    full resolution. Output ~ [0, 1].
    """
    g, k = 64, 4
    h, w = u.shape
    out = np.zeros((h, w), np.float32)
    coarse = None
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        grid = rng.random((g, g), dtype=np.float32)
        use_coarse = cell > 16 and min(h, w) >= 4 * k
        if use_coarse and coarse is None:
            cw, ch = max(1, w // k), max(1, h // k)
            cu = cv2.resize(u, (cw, ch), interpolation=cv2.INTER_AREA)
            cv_ = cv2.resize(v, (cw, ch), interpolation=cv2.INTER_AREA)
            coarse = np.zeros((ch, cw), np.float32)
        uu, vv = (cu, cv_) if use_coarse else (u, v)
        mx, my = uu * np.float32(1 / cell), vv * np.float32(1 / cell)
        mx -= np.floor(mx * np.float32(1 / g)) * g  # wrap into the grid: remap's own wrap is
        my -= np.floor(my * np.float32(1 / g)) * g  # exact only for small coordinates
        if use_coarse:
            coarse += amp * cv2.remap(grid, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)
        else:
            out += amp * cv2.remap(grid, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        total += amp
        amp *= gain
        cell /= 2.0
    if coarse is not None:
        out += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    return out / np.float32(total)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


@lru_cache(maxsize=8)
def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 pixel-centre coordinates relative to the centre, in units of max(W, H)."""
    big = max(w, h)
    x = (np.arange(w, dtype=np.float32) + 0.5 - w / 2) / big
    y = (np.arange(h, dtype=np.float32) + 0.5 - h / 2) / big
    xx, yy = np.meshgrid(x, y)
    return xx, yy


@lru_cache(maxsize=8)
def _vignette(w: int, h: int) -> np.ndarray:
    """(H, W, 3) cos^4-like fall-off, 1 at the centre and 0.7 in the corners."""
    xx, yy = _grid(w, h)
    big = max(w, h)
    r2 = (xx * xx + yy * yy) * (4 * big * big / (w * w + h * h))
    v = (1.0 - 0.3 * r2).astype(np.float32)
    return cv2.merge((v, v, v))


# ---------------------------------------------------------------------------- Earth
def _earth_disc(rng: np.random.Generator, dom: Domain, w: int, h: int):
    """Where the sphere lies in the frame, sampled on a (lh, lw) grid s times coarser than it:
    with probability ``dom.disc_prob`` a disc of radius ``dom.disc_radius`` centred anywhere in
    the frame (part of it may lie outside), else a limb crossing the frame with the image centre
    on the Earth.

    Returns (s, radius px, dx, dy, d2, nz): the grid's offsets from the disc centre in radii
    (lh, lw), their squared norm and the visible hemisphere's depth (0 off the disc).
    """
    big = max(w, h)
    s = max(1, math.ceil(big / _EARTH_RES))
    lw, lh = math.ceil(w / s), math.ceil(h / s)
    if rng.random() < dom.disc_prob:
        radius = _u(rng, dom.disc_radius) * big
        cx = rng.uniform(-0.5 * radius, w + 0.5 * radius)
        cy = rng.uniform(-0.5 * radius, h + 0.5 * radius)
    else:
        radius = _u(rng, dom.earth_radius) * big
        theta = rng.uniform(0, 2 * np.pi)
        depth = min(_u(rng, dom.earth_depth) * big, 1.6 * radius)  # frame centre on the disc
        cx = w / 2 - (radius - depth) * math.cos(theta)
        cy = h / 2 - (radius - depth) * math.sin(theta)
    xs = ((np.arange(lw, dtype=np.float32) + 0.5) * s - cx) / radius
    ys = ((np.arange(lh, dtype=np.float32) + 0.5) * s - cy) / radius
    dx, dy = np.meshgrid(xs, ys)
    d2 = dx * dx + dy * dy
    nz = np.sqrt(np.clip(1.0 - d2, 0.0, 1.0))
    return s, radius, dx, dy, d2, nz


def _earth_surface(rng: np.random.Generator, big: int, s: int, radius: float, dx, dy, nz):
    """Fractal land, cloud and detail fields in arc-length coordinates, a coarse tint, and the
    texture frame's "latitude" coordinate ty; all (lh, lw) float32."""
    lh, lw = dx.shape
    # texture frame rotated about the view axis so the "poles" lie in a random direction
    phi = rng.uniform(0, 2 * np.pi)
    tx = math.cos(phi) * dx - math.sin(phi) * dy
    ty = math.sin(phi) * dx + math.cos(phi) * dy
    lon = np.arctan2(tx, np.maximum(nz, 1e-4))
    lat = np.arcsin(np.clip(ty, -1, 1))
    # arc length on the sphere in low-res pixels (features keep their size at the disc centre)
    u = (lon * (radius / s) + rng.uniform(0, 1e3)).astype(np.float32)
    v = (lat * (radius / s) + rng.uniform(0, 1e3)).astype(np.float32)
    lbig = min(big, 2 * radius) / s  # continents smaller than a small disc, not one colour
    land = _fbm(rng, u, v, rng.uniform(0.4, 1.2) * lbig, 5, 0.5)
    cloud = _fbm(rng, u * rng.uniform(0.7, 1.4), v, rng.uniform(0.2, 0.6) * lbig, 6, 0.6)
    detail = _fbm(rng, u, v, rng.uniform(0.03, 0.08) * lbig, 2, 0.6)  # terrain, glint on waves
    tint = cv2.resize(rng.random((4, 4), dtype=np.float32), (lw, lh), interpolation=cv2.INTER_CUBIC)
    return land, cloud, detail, tint, ty


def _earth_layers(rng, dom: Domain, sun: np.ndarray, radius: float, disc, surface):
    """(weights, coverage): the 2-D weights (lh, lw) of the seven base colours (ocean,
    vegetation, desert, snow, clouds, haze, glow) for a sun direction ``sun``, and the disc."""
    dx, dy, d2, nz = disc
    land, cloud, detail, tint, ty = surface
    # the colour is a weighted sum of a few base colours (weights are 2-D fields)
    sea = rng.uniform(0.48, 0.58)
    is_land = _smoothstep(sea, sea + 0.02, land)
    desert = _smoothstep(0.35, 0.65, tint)
    snow = _smoothstep(0.8, 0.95, np.abs(ty))
    thr = 1.0 - _u(rng, dom.cloud_cover)
    cld = _smoothstep(thr - 0.08, thr + 0.12, cloud) * np.float32(0.92)
    # n = (dx, dy, -nz): the visible hemisphere faces the camera (camera looks along +z)
    sx, sy, sz = (float(x) for x in sun)  # python floats keep the fields float32
    mu = dx * sx + dy * sy - nz * sz
    inside = (d2 < 1.0).astype(np.float32)
    sunlit = np.clip(mu, 0, 1) * inside
    ground = (0.7 + 0.6 * detail) * (1 - cld) * sunlit
    land_g = ground * is_land
    land_ns = land_g * (1 - snow)
    limb = (1.0 - nz) ** 3
    # glow beyond the limb: a few tens of km of lit atmosphere above a 6371 km Earth
    r = np.sqrt(d2)
    mu_limb = (dx * sx + dy * sy) / np.maximum(r, 1e-6)
    glow_h = max(0.012 * radius, 1.5)
    glow = np.exp(-np.clip(r - 1.0, 0, None) * (radius / glow_h)) * (1 - inside)
    glow *= _smoothstep(-0.3, 0.4, mu_limb)
    weights = [
        ground * (1 - is_land) * (0.7 + 0.6 * land),  # ocean, deeper where "land" noise is low
        land_ns * (1 - desert),  # vegetation
        land_ns * desert,  # desert
        land_g * snow,  # snow and ice
        cld * sunlit,  # clouds
        (0.2 + 1.2 * limb) * _smoothstep(-0.08, 0.25, mu) * inside,  # Rayleigh haze
        glow,
    ]
    return weights, inside


def render_earth(rng: np.random.Generator, dom: Domain, w: int, h: int, sun: np.ndarray):
    """Procedural Earth seen from orbit.

    Returns (radiance (H, W, 3) float32 linear, disc coverage (ceil(H/s), ceil(W/s)) float32 in
    [0, 1] at the working resolution, s the working resolution's down-scaling factor).

    Orthographic sphere, a disc in the frame or a limb across it (:func:`_earth_disc`); surface
    colour from fractal noise in arc-length coordinates (features compress towards the limb),
    lit by ``sun`` (unit vector to the sun, camera frame) with Rayleigh haze and a thin glow.
    """
    s, radius, dx, dy, d2, nz = _earth_disc(rng, dom, w, h)
    surface = _earth_surface(rng, max(w, h), s, radius, dx, dy, nz)
    weights, inside = _earth_layers(rng, dom, sun, radius, (dx, dy, d2, nz), surface)
    lh, lw = dx.shape
    colours = np.array(
        [
            [0.008, 0.03, 0.08],
            [0.04, 0.07, 0.025],
            [0.30, 0.21, 0.11],
            [0.70, 0.70, 0.70],
            [0.80, 0.81, 0.84],
            [0.05, 0.11, 0.28],
            [0.10, 0.20, 0.45],
        ],
        np.float32,
    ) * np.float32(_u(rng, dom.earth_gain))
    earth = cv2.merge(
        [sum(wt * c for wt, c in zip(weights, col, strict=True)) for col in colours.T.tolist()]
    )
    if s > 1:
        earth = cv2.resize(earth, (lw * s, lh * s), interpolation=cv2.INTER_LINEAR)[:h, :w]
    return np.ascontiguousarray(earth, dtype=np.float32), inside, s


def _stars(
    rng: np.random.Generator, img: np.ndarray, per_mpx: float, cover: np.ndarray | None, s: int = 1
) -> None:
    """Add point stars (power-law brightness) where the Earth does not cover the sky."""
    h, w = img.shape[:2]
    n = rng.poisson(per_mpx * w * h / 1e6)
    ys = rng.integers(0, h, n)
    xs = rng.integers(0, w, n)
    b = (rng.pareto(1.6, n) + 1.0) * 0.04
    col = (b[:, None] * (1.0 + rng.normal(scale=0.1, size=(n, 3)))).astype(np.float32)
    if cover is not None:
        col *= 1.0 - cover[ys // s, xs // s, None]
    np.add.at(img, (ys, xs), col)


# ---------------------------------------------------------------------------- object
@dataclass
class _Light:
    direction: np.ndarray  # unit, towards the light, camera frame
    color: np.ndarray  # (3,) linear intensity


def _shade(n: np.ndarray, view: np.ndarray, albedo, ks, shine, lights, ambient) -> np.ndarray:
    """Flat Lambert + Blinn-Phong per face: n, view (F, 3) unit -> (F, 3) linear radiance."""
    out = albedo * ambient
    for lt in lights:
        ndl = n @ lt.direction
        lam = np.clip(ndl, 0, None)
        hv = lt.direction[None, :] + view
        hv /= np.maximum(np.linalg.norm(hv, axis=1, keepdims=True), 1e-9)
        spec = np.clip(np.sum(n * hv, axis=1), 0, None) ** shine * ks * (ndl > 0)
        out = out + (albedo * lam[:, None] + spec[:, None]) * lt.color[None, :]
    return out


def _face_colors(mesh: Mesh, rot, t, lights: list[_Light], ambient: np.ndarray):
    """Posed faces (F, 4, 3), their centres (F, 3), which are drawn (F,) and their colour (F, 3).

    A two-sided face seen from behind is shaded with its flipped normal and back material.
    """
    faces = mesh.faces @ rot.T + t  # (F, 4, 3)
    normals = mesh.normals @ rot.T
    shade_n = mesh.shade_normals @ rot.T
    cent = faces.mean(axis=1)
    view = -cent / np.linalg.norm(cent, axis=1, keepdims=True)
    facing = np.sum(normals * view, axis=1)
    front = facing > 1e-9
    keep = front | mesh.two_sided
    flip = ~front & mesh.two_sided
    shade_n = np.where(flip[:, None], -shade_n, shade_n)
    mat = np.where(flip, mesh.back_mat, mesh.mat)
    color = _shade(
        shade_n, view, _ALBEDO[mat] * mesh.tone[:, None], _KS[mat], _SHINE[mat], lights, ambient
    )
    return faces, cent, keep, color


def _line_colors(mesh: Mesh, lines: np.ndarray, lights: list[_Light], ambient: np.ndarray):
    """Colour (L, 3) of posed line segments (L, 2, 3) drawn as thin cylinders."""
    lcol = np.zeros((len(lines), 3))
    if len(lines):
        # a thin cylinder's brightest diffuse term is sqrt(1 - (L.axis)^2)
        axis = lines[:, 1] - lines[:, 0]
        axis /= np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-9)
        lcol = _ALBEDO[mesh.line_mat] * ambient
        for lt in lights:
            lcol = (
                lcol
                + _ALBEDO[mesh.line_mat]
                * (0.8 * np.sqrt(np.clip(1 - (axis @ lt.direction) ** 2, 0, 1)))[:, None]
                * lt.color
            )
    return lcol


def _draw_order(mesh: Mesh, cent: np.ndarray, keep: np.ndarray, lines: np.ndarray) -> list:
    """(kind, index) items, kind 0 = face, 1 = line, in painter's order: parts far first, decals
    after base faces, then far faces first within a part."""
    n_parts = int(max(mesh.part.max(initial=-1), mesh.line_part.max(initial=-1))) + 1
    depth_sum = np.bincount(mesh.part, weights=cent[:, 2], minlength=n_parts)
    count = np.bincount(mesh.part, minlength=n_parts).astype(float)
    if len(lines):
        depth_sum += np.bincount(mesh.line_part, weights=lines[..., 2].mean(1), minlength=n_parts)
        count += np.bincount(mesh.line_part, minlength=n_parts)
    part_depth = depth_sum / np.maximum(count, 1)
    items = [
        (part_depth[mesh.part[i]], mesh.layer[i], -cent[i, 2], 0, i) for i in np.flatnonzero(keep)
    ]
    items += [
        (part_depth[mesh.line_part[j]], 0, -lines[j, :, 2].mean(), 1, j) for j in range(len(lines))
    ]
    items.sort(key=lambda it: (-it[0], it[1], it[2], it[3], it[4]))
    return [(kind, i) for *_, kind, i in items]


def render_object(
    mesh: Mesh,
    rot: np.ndarray,
    t: np.ndarray,
    f: float,
    c: tuple[float, float],
    lights: list[_Light],
    ambient: np.ndarray,
):
    """Rasterise the mesh posed by (rot, t) (body -> camera) with pinhole focal ``f`` px.

    Returns (layer (h, w, 3) float32 linear radiance, mask (h, w) bool, (x0, y0)) on a canvas
    that just holds the projected object; (x0, y0) is its top-left in image pixels.
    """
    faces, cent, keep, color = _face_colors(mesh, rot, t, lights, ambient)
    proj = f * faces[..., :2] / faces[..., 2:3] + np.asarray(c)
    lines = mesh.lines @ rot.T + t
    lproj = f * lines[..., :2] / lines[..., 2:3] + np.asarray(c)
    lthick = np.maximum(1, np.round(2 * mesh.line_radius * f / lines[..., 2].mean(1))).astype(int)
    lcol = _line_colors(mesh, lines, lights, ambient)

    pts = np.concatenate([proj.reshape(-1, 2), lproj.reshape(-1, 2)])
    margin = int(lthick.max()) + 2 if len(lthick) else 2
    x0 = int(np.floor(pts[:, 0].min())) - margin
    y0 = int(np.floor(pts[:, 1].min())) - margin
    cw = int(np.ceil(pts[:, 0].max())) + margin - x0
    ch = int(np.ceil(pts[:, 1].max())) + margin - y0
    layer = np.zeros((ch, cw, 3), np.float32)
    mask = np.zeros((ch, cw), np.uint8)

    off = np.array([x0, y0])
    fpts = np.round((proj - off) * _SCALE).astype(np.int32)
    lpts = np.round((lproj - off) * _SCALE).astype(np.int32)
    for kind, i in _draw_order(mesh, cent, keep, lines):
        if kind == 0:
            col = tuple(float(x) for x in color[i])
            cv2.fillConvexPoly(layer, fpts[i], col, cv2.LINE_8, _SHIFT)
            cv2.fillConvexPoly(mask, fpts[i], 1, cv2.LINE_8, _SHIFT)
        else:
            a, b = tuple(map(int, lpts[i, 0])), tuple(map(int, lpts[i, 1]))
            th = int(lthick[i])
            cv2.line(layer, a, b, tuple(float(x) for x in lcol[i]), th, cv2.LINE_8, _SHIFT)
            cv2.line(mask, a, b, 1, th, cv2.LINE_8, _SHIFT)
    return layer, mask.astype(bool), (x0, y0)
