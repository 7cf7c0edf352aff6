"""Procedural synthetic spacecraft imagery: the study's embedded default dataset.

The paper's datasets (SPEED+, SPARK-2024, TANGO) cannot be downloaded here, so this module
renders images that are hard in the same ways (the paper's Fig. 1): cluttered Earth
backgrounds, low visibility, strong illumination changes and spacecraft that blend with the
planet. Every image holds one spacecraft with an exact ground-truth silhouette.

Rendering model (one image, all in linear radiance until the sensor stage):

* **Geometry.** Spacecraft are meshes of planar convex polygons in 3-D built from parts
  (boxes, prisms, paraboloid dishes, hinged solar panels) plus thin cylinders (whip antennas,
  struts) drawn as lines. Three models: ``tango`` (box bus, top solar panel, optional solar
  wings and whip antennas, like SPEED+'s Tango), ``relay`` (hexagonal/octagonal bus with a
  parabolic dish on a feed tripod and optional wings) and ``cubesat`` (1U-6U body with
  deployable panels and whip antennas); the detection sets draw from these three
  (:data:`DETECTION_MODELS`). Three more types serve the type-classification experiment:
  ``debris`` (a crumpled fragment with a torn panel shard), ``boxwing`` (a GEO box-wing bus
  with long wings and large dishes) and ``upper_stage`` (a spent cylindrical rocket stage).
  Dimensions, materials and options vary per instance; 256 instances per model are built once
  per process (:func:`model_variant`).
* **Camera.** Pinhole with a random 25-55 degree field of view; uniformly random attitude; the
  distance is solved so the projected convex hull covers a log-uniform 5-80 % of the frame
  (the mask then covers ~2-60 %, median ~9 %); 12 % of objects are placed across a frame
  edge, and large ones overflow it, so ~25 % are truncated.
* **Visibility.** Closed convex parts are back-face culled, thin panels are two-sided, and the
  parts are drawn far-to-near (painter's algorithm) with ``cv2.fillConvexPoly`` at the final
  resolution. Within a part, coplanar decals (solar cells) follow their base face.
* **Shading.** Flat Lambert + Blinn-Phong specular per face from a sun direction, optional
  fill lights (the lightbox) and an Earth-shine light; faces turned away from every light
  keep only a small ambient term, so self-shadowed faces are dark. Multi-layer insulation is
  crinkled by jittering the shading normals of face patches, which breaks faces into
  glints as on real MLI. Cast shadows between parts are not modelled.
* **Background.** Stars (power-law brightness) and/or a procedural Earth: an orthographic
  sphere whose surface is fractal value noise (continents, oceans, clouds) looked up in
  arc-length coordinates, so features compress towards the limb; a day/night terminator
  from the same sun, Rayleigh haze towards the limb and an atmosphere glow outside it. It is
  evaluated at <= 256 px and upsampled (the optics blur it at that scale anyway).
* **Optics and sensor.** Over-exposure with bloom (clipped energy spread by a wide blur), lens
  flare ghosts and streaks when the lamp is near the field of view, a stray-light gradient
  (sunlamp), veiling haze, defocus or motion blur, vignetting, gamma 1/2.2, shot + read noise,
  8-bit quantisation and optional JPEG re-compression at a random quality.

The ground-truth mask is the union of every drawn face and line, rasterised with the same
primitives (no antialiasing), i.e. the geometric silhouette before optical blur; the box is
its tight box. Domains mirror the paper's datasets: ``lightbox`` (diffuse albedo-like light,
Earth imagery behind, moderate contrast), ``sunlamp`` (one hard lamp, over-exposure, flare,
deep shadows, black background) and ``earth`` (bright Earth, limb and clouds behind the
spacecraft, low contrast).

Every image is drawn from its own ``numpy`` generator seeded by (seed, domain, index), so the
output is byte-identical for a seed and independent of the order (and the number of worker
processes) images are made in.

CLI::

    python -m afss_utils.synthetic --domain lightbox,sunlamp,earth --num-images 100 \\
        --seed 0 --out data/synthetic/train [--size 512 512]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from afss_utils import coco

_SHIFT = 4  # sub-pixel bits for cv2 drawing: vertices are kept to 1/16 px
_SCALE = 1 << _SHIFT
_EARTH_RES = 256  # the Earth is evaluated at most this many px across, then upsampled
MIN_VISIBLE_FRACTION_OF_IMAGE = 0.005  # a sample whose visible mask is smaller is redrawn
MIN_VISIBLE_FRACTION_OF_OBJECT = 0.3  # ... and so is one that is mostly outside the frame


# ---------------------------------------------------------------------------- materials
@dataclass(frozen=True)
class Material:
    """Flat-shaded surface: linear RGB diffuse albedo, specular strength and exponent."""

    albedo: tuple[float, float, float]
    ks: float
    shininess: float


MATERIALS: dict[str, Material] = {
    "mli_gold": Material((0.55, 0.36, 0.10), 0.55, 18.0),
    "mli_silver": Material((0.55, 0.55, 0.58), 0.65, 25.0),
    "mli_black": Material((0.04, 0.04, 0.045), 0.35, 30.0),
    "white_paint": Material((0.70, 0.70, 0.67), 0.08, 8.0),
    "aluminium": Material((0.45, 0.45, 0.47), 0.45, 40.0),
    "anodized": Material((0.06, 0.06, 0.065), 0.2, 20.0),
    "solar_cell": Material((0.012, 0.018, 0.06), 0.8, 60.0),
    "panel_back": Material((0.42, 0.42, 0.40), 0.1, 10.0),
    "panel_frame": Material((0.30, 0.29, 0.27), 0.2, 15.0),
    "dish": Material((0.72, 0.72, 0.70), 0.05, 6.0),
    "dish_back": Material((0.35, 0.35, 0.36), 0.1, 10.0),
    "antenna": Material((0.60, 0.58, 0.55), 0.4, 30.0),
}
_MAT_NAMES = list(MATERIALS)
_MAT_INDEX = {n: i for i, n in enumerate(_MAT_NAMES)}
_ALBEDO = np.array([MATERIALS[n].albedo for n in _MAT_NAMES], dtype=np.float64)
_KS = np.array([MATERIALS[n].ks for n in _MAT_NAMES], dtype=np.float64)
_SHINE = np.array([MATERIALS[n].shininess for n in _MAT_NAMES], dtype=np.float64)


# ---------------------------------------------------------------------------- meshes
@dataclass
class Mesh:
    """Spacecraft geometry in the body frame, normalised to bounding radius 1.

    faces: (F, 4, 3) convex planar polygons (triangles repeat their last vertex);
    normals: (F, 3) geometric normals (outward for closed parts); shade_normals: (F, 3);
    mat / back_mat: (F,) material indices (back_mat used when a two-sided face is seen from
    behind); two_sided: (F,) bool; part: (F,) int, faces of a part are drawn together;
    layer: (F,) int, decals (layer 1) follow their base (layer 0) within a part;
    tone: (F,) albedo multiplier (patch-to-patch variation of crinkled foil).
    lines: (L, 2, 3) endpoints of thin cylinders; line_radius: (L,); line_mat, line_part: (L,).
    """

    faces: np.ndarray
    normals: np.ndarray
    shade_normals: np.ndarray
    mat: np.ndarray
    back_mat: np.ndarray
    two_sided: np.ndarray
    part: np.ndarray
    layer: np.ndarray
    tone: np.ndarray
    lines: np.ndarray
    line_radius: np.ndarray
    line_mat: np.ndarray
    line_part: np.ndarray


@dataclass
class MeshBuilder:
    """Accumulates parts; ``build`` centres and scales them to a unit bounding sphere."""

    rng: np.random.Generator
    _blocks: list = field(default_factory=list)
    _lines: list = field(default_factory=list)
    _n_parts: int = 0

    def new_part(self) -> int:
        self._n_parts += 1
        return self._n_parts - 1

    def _add(self, part, pts, normals, mat, back, two_sided, layer, jitter) -> None:
        """Append k faces: pts (k, 4, 3), normals (k, 3)."""
        k = len(pts)
        sn, tone = normals, np.ones(k)
        if jitter > 0:  # crinkled foil: each patch tilts its normal and reflects a bit differently
            sn = normals + jitter * self.rng.normal(size=(k, 3))
            sn /= np.linalg.norm(sn, axis=1, keepdims=True)
            tone = np.clip(1.0 + 0.8 * jitter * self.rng.normal(size=k), 0.75, 1.25)
        self._blocks.append(
            (
                pts,
                normals,
                sn,
                np.full(k, _MAT_INDEX[mat]),
                np.full(k, _MAT_INDEX[back or mat]),
                np.full(k, two_sided),
                np.full(k, part),
                np.full(k, layer),
                tone,
            )
        )

    def face(
        self,
        part: int,
        pts: Sequence,
        mat: str,
        *,
        two_sided: bool = False,
        back: str | None = None,
        layer: int = 0,
        outward_from: np.ndarray | None = None,
        jitter: float = 0.0,
        normal: np.ndarray | None = None,
    ) -> None:
        """Add one convex planar polygon of 3 or 4 points (more: fan-triangulated)."""
        p = np.asarray(pts, dtype=np.float64)
        if len(p) > 4:
            for i in range(1, len(p) - 1):
                self.face(
                    part,
                    [p[0], p[i], p[i + 1]],
                    mat,
                    two_sided=two_sided,
                    back=back,
                    layer=layer,
                    outward_from=outward_from,
                    jitter=jitter,
                    normal=normal,
                )
            return
        if len(p) == 3:
            p = np.vstack([p, p[2:3]])
        if normal is None:
            n = np.cross(p[1] - p[0], p[2] - p[0])
            if np.linalg.norm(n) < 1e-12:
                n = np.cross(p[2] - p[1], p[3] - p[1])
            n = n / max(np.linalg.norm(n), 1e-12)
            if outward_from is not None and np.dot(n, p.mean(0) - outward_from) < 0:
                n = -n
        else:
            n = np.asarray(normal, dtype=np.float64)
        self._add(part, p[None], n[None], mat, back, two_sided, layer, jitter)

    def patch_grid(
        self,
        part,
        p0,
        ex,
        ey,
        nx,
        ny,
        mat,
        *,
        normal,
        jitter=0.0,
        inset=0.0,
        two_sided=False,
        back=None,
        layer=0,
    ) -> None:
        """A parallelogram p0 + [0,1]ex + [0,1]ey split into nx*ny patches (gap ``inset``)."""
        ex, ey = np.asarray(ex, float), np.asarray(ey, float)
        i, j = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        a0, a1 = (i.ravel() + inset) / nx, (i.ravel() + 1 - inset) / nx
        b0, b1 = (j.ravel() + inset) / ny, (j.ravel() + 1 - inset) / ny
        corners = [(a0, b0), (a1, b0), (a1, b1), (a0, b1)]
        q = np.stack([p0 + a[:, None] * ex + b[:, None] * ey for a, b in corners], axis=1)
        n = np.broadcast_to(np.asarray(normal, float), (len(q), 3)).copy()
        self._add(part, q, n, mat, back, two_sided, layer, jitter)

    def box(
        self, center, half, mat, *, rot=None, subdiv=1, jitter=0.0, decal: Callable | None = None
    ) -> int:
        """Closed box (axes ``rot`` columns); MLI-like crinkle via ``subdiv`` x ``jitter``.

        ``decal(builder, part, p0, ex, ey, normal)`` may add layer-1 faces on each side.
        """
        part = self.new_part()
        c = np.asarray(center, float)
        rot = np.eye(3) if rot is None else np.asarray(rot, float)
        h = np.asarray(half, float)
        for k in range(3):
            for s in (-1.0, 1.0):
                i, j = [a for a in range(3) if a != k]
                n = s * rot[:, k]
                ex, ey = 2 * h[i] * rot[:, i], 2 * h[j] * rot[:, j]
                p0 = c + s * h[k] * rot[:, k] - ex / 2 - ey / 2
                nx = max(1, round(subdiv * h[i] / h.max()))
                ny = max(1, round(subdiv * h[j] / h.max()))
                self.patch_grid(part, p0, ex, ey, nx, ny, mat, normal=n, jitter=jitter)
                if decal is not None:
                    decal(self, part, p0, ex, ey, n)
        return part

    def prism(self, n_sides, radius, z0, z1, mat, *, cap_mat=None, jitter=0.0, subdiv=1) -> int:
        """Closed regular prism about the body z axis from z0 to z1."""
        part = self.new_part()
        ang = np.linspace(0, 2 * np.pi, n_sides, endpoint=False) + np.pi / n_sides
        ring = np.stack([radius * np.cos(ang), radius * np.sin(ang)], 1)
        center = np.array([0.0, 0.0, (z0 + z1) / 2])
        for a in range(n_sides):
            b = (a + 1) % n_sides
            pa, pb = np.r_[ring[a], z0], np.r_[ring[b], z0]
            n = np.r_[(ring[a] + ring[b]) / 2, 0.0]
            n /= np.linalg.norm(n)
            self.patch_grid(
                part,
                pa,
                pb - pa,
                np.array([0, 0, z1 - z0]),
                1,
                subdiv,
                mat,
                normal=n,
                jitter=jitter,
            )
        for z, s in ((z0, -1.0), (z1, 1.0)):
            self.face(
                part,
                [np.r_[q, z] for q in ring],
                cap_mat or mat,
                normal=np.array([0, 0, s]),
                outward_from=center,
            )
        return part

    def panel(self, corners, *, cells=(3, 2), cell_sides="front") -> int:
        """Thin two-sided solar panel (quad) with a grid of cell decals on one or both sides."""
        part = self.new_part()
        p = np.asarray(corners, float)
        self.face(part, p, "panel_frame", two_sided=True, back="panel_back")
        n = np.cross(p[1] - p[0], p[3] - p[0])
        n /= np.linalg.norm(n)
        two = cell_sides == "both"
        self.patch_grid(
            part,
            p[0],
            p[1] - p[0],
            p[3] - p[0],
            cells[0],
            cells[1],
            "solar_cell",
            normal=n,
            inset=0.06,
            two_sided=two,
            layer=1,
            jitter=0.03,
        )
        return part

    def dish(self, radius, focal, center, axis, *, rings=3, segments=14) -> int:
        """Paraboloid dish (two-sided facets) with vertex at ``center`` opening along ``axis``."""
        part = self.new_part()
        axis = np.asarray(axis, float) / np.linalg.norm(axis)
        u = np.cross(axis, [0.0, 0.0, 1.0] if abs(axis[2]) < 0.9 else [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(axis, u)
        rs = radius * np.linspace(0, 1, rings + 1)
        ang = np.linspace(0, 2 * np.pi, segments, endpoint=False)

        def point(r, a):
            return center + r * (np.cos(a) * u + np.sin(a) * v) + (r * r / (4 * focal)) * axis

        for i in range(rings):
            for j in range(segments):
                a0, a1 = ang[j], ang[(j + 1) % segments]
                q = [point(rs[i], a0), point(rs[i + 1], a0), point(rs[i + 1], a1), point(rs[i], a1)]
                if i == 0:
                    q = q[:3]
                # inner (concave) side is the front: its normal points towards the axis/focus
                mid = np.mean(q, 0)
                focus = center + focal * axis
                n = np.cross(q[1] - q[0], q[2] - q[0])
                n /= np.linalg.norm(n)
                if np.dot(n, focus - mid) < 0:
                    n = -n
                self.face(part, q, "dish", two_sided=True, back="dish_back", normal=n)
        return part

    def line(self, p0, p1, radius, mat="antenna") -> None:
        part = self.new_part()
        self._lines.append(
            (np.asarray(p0, float), np.asarray(p1, float), radius, _MAT_INDEX[mat], part)
        )

    def build(self) -> Mesh:
        cols = [np.concatenate(c) for c in zip(*self._blocks, strict=True)]
        f = cols[0]
        pts = f.reshape(-1, 3)
        if self._lines:
            lines = np.array([np.stack([x[0], x[1]]) for x in self._lines])
            pts = np.vstack([pts, lines.reshape(-1, 3)])
        else:
            lines = np.zeros((0, 2, 3))
        c = (pts.min(0) + pts.max(0)) / 2
        s = 1.0 / np.linalg.norm(pts - c, axis=1).max()
        return Mesh(
            faces=(f - c) * s,
            normals=cols[1],
            shade_normals=cols[2],
            mat=cols[3],
            back_mat=cols[4],
            two_sided=cols[5].astype(bool),
            part=cols[6],
            layer=cols[7],
            tone=cols[8],
            lines=(lines - c) * s,
            line_radius=np.array([x[2] for x in self._lines], dtype=np.float64) * s,
            line_mat=np.array([x[3] for x in self._lines], dtype=np.int64),
            line_part=np.array([x[4] for x in self._lines], dtype=np.int64),
        )


def _rot_axis(axis, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix about a unit axis."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _wing(b: MeshBuilder, root, direction, normal, n_panels, panel_len, panel_w, gap, cells):
    """A solar wing: a boom then ``n_panels`` panels along ``direction`` in the plane ⟂ normal."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    w = np.cross(n, d)
    boom_end = root + d * gap
    b.line(root, boom_end, 0.012, "aluminium")
    for k in range(n_panels):
        s = boom_end + d * k * panel_len * 1.02
        q = [
            s - w * panel_w / 2,
            s + d * panel_len - w * panel_w / 2,
            s + d * panel_len + w * panel_w / 2,
            s + w * panel_w / 2,
        ]
        b.panel(q, cells=cells, cell_sides="both")


def _mli(rng: np.random.Generator) -> str:
    return str(rng.choice(["mli_gold", "mli_gold", "mli_silver", "mli_black", "white_paint"]))


# ---------------------------------------------------------------------------- models
def build_tango(rng: np.random.Generator) -> Mesh:
    """Box bus with a top solar panel, optional two solar wings and 2-4 whip antennas."""
    b = MeshBuilder(rng)
    hx, hy, hz = (
        0.40 * rng.uniform(0.85, 1.2),
        0.37 * rng.uniform(0.85, 1.2),
        0.15 * rng.uniform(0.8, 1.5),
    )
    mli = _mli(rng)
    b.box(
        [0, 0, 0], [hx, hy, hz], mli, subdiv=int(rng.integers(3, 7)), jitter=rng.uniform(0.05, 0.25)
    )

    def top_cells(bb, part, p0, ex, ey, n):
        if n[2] > 0.5:
            bb.patch_grid(
                part, p0, ex, ey, 6, 5, "solar_cell", normal=n, inset=0.05, layer=1, jitter=0.02
            )

    ov = rng.uniform(1.0, 1.12)
    b.box([0, 0, hz + 0.012], [hx * ov, hy * ov, 0.012], "panel_frame", decal=top_cells)
    # optics / thruster stubs on the front face
    for _ in range(rng.integers(1, 4)):
        y0 = rng.uniform(-0.6, 0.6) * hy
        z0 = rng.uniform(-0.5, 0.5) * hz
        r = rng.uniform(0.03, 0.06)
        b.box([hx + r, y0, z0], [r, r, r], str(rng.choice(["anodized", "aluminium"])))
    if rng.random() < 0.65:
        n_p = int(rng.integers(1, 4))
        tilt = rng.uniform(-np.pi / 2, np.pi / 2)
        normal = _rot_axis([0, 1, 0], tilt) @ np.array([0, 0, 1.0])
        for s in (-1.0, 1.0):
            _wing(
                b,
                np.array([0, s * hy, 0]),
                [0, s, 0],
                normal,
                n_p,
                0.7 * rng.uniform(0.8, 1.2),
                0.55 * rng.uniform(0.8, 1.2),
                0.12,
                (4, 3),
            )
    for _ in range(int(rng.integers(2, 5))):
        p0 = np.array([rng.choice([-1, 1]) * hx * 0.9, rng.choice([-1, 1]) * hy * 0.9, -hz])
        d = np.array(
            [
                np.sign(p0[0]) * rng.uniform(0.2, 1),
                np.sign(p0[1]) * rng.uniform(0, 0.6),
                -rng.uniform(0.3, 1),
            ]
        )
        b.line(p0, p0 + d / np.linalg.norm(d) * rng.uniform(0.3, 0.75), 0.006)
    return b.build()


def build_relay(rng: np.random.Generator) -> Mesh:
    """Hexagonal/octagonal bus with a parabolic dish on a tripod feed, optional solar wings."""
    b = MeshBuilder(rng)
    n_sides = int(rng.choice([6, 6, 8]))
    r = 0.45 * rng.uniform(0.8, 1.2)
    length = rng.uniform(0.7, 1.4)
    mli = _mli(rng)
    b.prism(
        n_sides,
        r,
        -length / 2,
        length / 2,
        mli,
        cap_mat="white_paint",
        jitter=rng.uniform(0.05, 0.2),
        subdiv=int(rng.integers(2, 5)),
    )
    dish_r = r * rng.uniform(0.9, 1.6)
    focal = dish_r * rng.uniform(0.5, 0.9)
    tilt = rng.uniform(0, 0.6)
    axis = _rot_axis([1, 0, 0], tilt) @ np.array([0, 0, 1.0])
    mast = length / 2 + rng.uniform(0.08, 0.25)
    b.line([0, 0, length / 2], [0, 0, mast], 0.03, "aluminium")
    vertex = np.array([0, 0, mast])
    b.dish(dish_r, focal, vertex, axis)
    focus = vertex + axis * focal
    u = np.cross(axis, [1.0, 0, 0])
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    for a in (0.0, 2 * np.pi / 3, 4 * np.pi / 3):
        rim = (
            vertex
            + 0.95 * dish_r * (np.cos(a) * u + np.sin(a) * v)
            + (0.9 * dish_r**2 / (4 * focal)) * axis
        )
        b.line(rim, focus, 0.008)
    fs = 0.05 * dish_r / 0.5
    b.box(focus, [fs, fs, fs], "aluminium")
    if rng.random() < 0.6:
        n_p = int(rng.integers(2, 5))
        normal = _rot_axis([1, 0, 0], rng.uniform(-1.2, 1.2)) @ np.array([0, 0, 1.0])
        for s in (-1.0, 1.0):
            _wing(b, np.array([s * r, 0, 0]), [s, 0, 0], normal, n_p, 0.55, 0.45, 0.2, (3, 3))
    b.line([0, 0, -length / 2], [0, 0, -length / 2 - rng.uniform(0.2, 0.6)], 0.008)
    return b.build()


def build_cubesat(rng: np.random.Generator) -> Mesh:
    """1U-6U CubeSat body with cells, 2 or 4 hinged deployable panels and whip antennas."""
    b = MeshBuilder(rng)
    units = int(rng.choice([1, 2, 3, 3, 6]))
    hx, hy, hz = (0.1, 0.05, 0.15) if units == 6 else (0.05, 0.05, 0.05 * units)

    def side_cells(bb, part, p0, ex, ey, n):
        if abs(n[2]) < 0.5:
            nx = max(1, round(np.linalg.norm(ex) / 0.05))
            ny = max(1, round(np.linalg.norm(ey) / 0.05))
            bb.patch_grid(
                part,
                p0 + 0.08 * ex + 0.08 * ey,
                0.84 * ex,
                0.84 * ey,
                nx,
                ny,
                "solar_cell",
                normal=n,
                inset=0.04,
                layer=1,
                jitter=0.02,
            )

    b.box([0, 0, 0], [hx, hy, hz], str(rng.choice(["anodized", "aluminium"])), decal=side_cells)
    n_dep = int(rng.choice([0, 2, 4, 4]))
    angle = rng.uniform(np.pi / 3, np.pi)  # 0 = stowed against the side, pi = straight up
    sides = [
        (np.array([1.0, 0, 0]), hx, hy),
        (np.array([-1.0, 0, 0]), hx, hy),
        (np.array([0, 1.0, 0]), hy, hx),
        (np.array([0, -1.0, 0]), hy, hx),
    ]
    if n_dep == 2:
        sides = sides[:2] if rng.random() < 0.5 else sides[2:]
    for n_s, off, half_w in sides[:n_dep]:
        w = np.cross([0, 0, 1.0], n_s)
        hinge = n_s * off + np.array([0, 0, hz])
        d = math.cos(angle) * np.array([0, 0, -1.0]) + math.sin(angle) * n_s
        ln = 2 * hz * rng.uniform(0.9, 1.0)
        q = [
            hinge - w * half_w,
            hinge + w * half_w,
            hinge + w * half_w + d * ln,
            hinge - w * half_w + d * ln,
        ]
        b.panel(
            q, cells=(max(1, round(half_w / 0.025)), max(1, round(ln / 0.05))), cell_sides="both"
        )
    for _ in range(int(rng.integers(1, 5))):
        corner = np.array(
            [rng.choice([-1, 1]) * hx, rng.choice([-1, 1]) * hy, rng.choice([-1, 1]) * hz]
        )
        d = np.array([corner[0], corner[1], 0]) + rng.normal(scale=0.03, size=3)
        d /= np.linalg.norm(d)
        b.line(corner, corner + d * rng.uniform(0.15, 0.45), 0.0015)
    return b.build()


def build_debris(rng: np.random.Generator) -> Mesh:
    """A debris fragment: a crumpled, irregular chunk (a few-sided jagged prism) with a torn
    solar-panel shard and bent struts sticking out; no wings, no dish."""
    b = MeshBuilder(rng)
    r = 0.25 * rng.uniform(0.7, 1.4)
    b.prism(
        int(rng.integers(3, 6)),
        r,
        -r * rng.uniform(0.5, 1.5),
        r * rng.uniform(0.5, 1.5),
        str(rng.choice(["mli_black", "aluminium", "mli_silver", "mli_gold"])),
        cap_mat="panel_back",
        jitter=rng.uniform(0.3, 0.6),  # crumpled
        subdiv=int(rng.integers(2, 4)),
    )
    if rng.random() < 0.7:
        a = rng.normal(size=3)
        a /= np.linalg.norm(a)
        u = np.cross(a, [0, 0, 1.0]) + 1e-3
        u /= np.linalg.norm(u)
        v = np.cross(a, u)
        ln, wd = rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.35)
        p0 = a * r * 0.8
        q = [p0, p0 + u * ln, p0 + u * ln * 0.8 + v * wd, p0 + v * wd * rng.uniform(0.4, 1)]
        b.panel(q, cells=(3, 2), cell_sides="both")
    for _ in range(int(rng.integers(1, 4))):
        p0 = rng.uniform(-r, r, 3) * 0.7
        d = rng.normal(size=3)
        b.line(p0, p0 + d / np.linalg.norm(d) * rng.uniform(0.2, 0.5), 0.01, "aluminium")
    return b.build()


def build_boxwing(rng: np.random.Generator) -> Mesh:
    """A box-wing GEO communications satellite: a large cubic bus, two long solar wings of 3-5
    panels on +-y, and two or three large dishes on the +-x faces."""
    b = MeshBuilder(rng)
    h = 0.45 * rng.uniform(0.9, 1.15)
    hx, hy, hz = h, h * rng.uniform(0.8, 1.0), h * rng.uniform(1.0, 1.3)
    b.box(
        [0, 0, 0],
        [hx, hy, hz],
        str(rng.choice(["mli_gold", "mli_gold", "white_paint"])),
        subdiv=int(rng.integers(3, 6)),
        jitter=rng.uniform(0.05, 0.2),
    )
    n_p = int(rng.integers(3, 6))
    normal = _rot_axis([0, 1, 0], rng.uniform(-0.8, 0.8)) @ np.array([1.0, 0, 0])
    for s in (-1.0, 1.0):
        _wing(b, np.array([0, s * hy, 0]), [0, s, 0], normal, n_p, 0.6, 0.5, 0.3, (4, 3))
    for s in rng.permutation([-1.0, 1.0])[: int(rng.integers(1, 3))]:
        axis = _rot_axis([0, 1, 0], rng.uniform(-0.4, 0.4)) @ np.array([s, 0, 0])
        dish_r = h * rng.uniform(0.7, 1.0)
        b.dish(
            dish_r, dish_r * 0.6, np.array([s * (hx + 0.05), 0, rng.uniform(-0.3, 0.3) * hz]), axis
        )
    if rng.random() < 0.7:
        b.dish(h * 0.35, h * 0.3, np.array([0, 0, hz + 0.04]), np.array([0, 0, 1.0]))
    return b.build()


def build_upper_stage(rng: np.random.Generator) -> Mesh:
    """A spent cylindrical rocket upper stage: a long round tank, an inter-stage ring, a bell
    nozzle of stacked shrinking rings, and a dark adapter cone on top."""
    b = MeshBuilder(rng)
    r = 0.3 * rng.uniform(0.85, 1.15)
    length = r * rng.uniform(4.0, 6.0)
    b.prism(
        16,
        r,
        -length / 2,
        length / 2,
        str(rng.choice(["white_paint", "white_paint", "aluminium"])),
        cap_mat="aluminium",
        jitter=rng.uniform(0.02, 0.08),
        subdiv=int(rng.integers(3, 6)),
    )
    band = length * rng.uniform(-0.2, 0.2)
    b.prism(16, r * 1.03, band - 0.05, band + 0.05, "mli_black", cap_mat="mli_black")
    z = -length / 2
    for k in range(4):  # the nozzle bell, widening downwards
        rk = r * (0.25 + 0.12 * k)
        b.prism(12, rk, z - 0.12 * (k + 1), z - 0.12 * k, "anodized", cap_mat="anodized")
    b.prism(12, r * 0.7, length / 2, length / 2 + r * 0.5, "mli_black", cap_mat="panel_frame")
    return b.build()


MODELS: dict[str, Callable[[np.random.Generator], Mesh]] = {
    "tango": build_tango,
    "relay": build_relay,
    "cubesat": build_cubesat,
    "debris": build_debris,
    "boxwing": build_boxwing,
    "upper_stage": build_upper_stage,
}
# The detection domains draw from the first three only: adding types must not change a single
# random draw (or pixel) of the committed lightbox/sunlamp/earth sets behind Tables I-III.
DETECTION_MODELS: tuple[str, ...] = ("tango", "relay", "cubesat")
N_VARIANTS = 256  # instances per model; the real datasets each show one spacecraft


@cache
def model_variant(name: str, k: int) -> Mesh:
    """Instance ``k`` of model ``name``, built once per process (a fixed seed per (name, k))."""
    mesh = MODELS[name](np.random.default_rng([zlib.crc32(name.encode()), int(k)]))
    for value in vars(mesh).values():
        value.setflags(write=False)  # shared between samples
    return mesh


# ---------------------------------------------------------------------------- domains
# Written into every generated annotations.json; bump it whenever a change alters the images a
# seed renders, so that a study folder made by an older renderer is re-rendered, not reused.
RENDERER_VERSION = 2


@dataclass(frozen=True)
class Domain:
    """Per-domain ranges (lo, hi) the scene parameters are drawn from uniformly."""

    name: str
    description: str
    earth_prob: float
    earth_radius: tuple[float, float]  # Earth disc radius / max(W, H)
    earth_depth: tuple[float, float]  # how far the limb is beyond the image centre / max(W, H)
    earth_gain: tuple[float, float]
    cloud_cover: tuple[float, float]
    sun_z: tuple[float, float]  # z of the direction to the sun (camera looks along +z)
    sun_intensity: tuple[float, float]
    fill_lights: tuple[int, int]
    fill_intensity: tuple[float, float]
    ambient: tuple[float, float]
    earthshine: tuple[float, float]
    exposure: tuple[float, float]
    haze: tuple[float, float]  # veiling light added over the whole frame (linear)
    bloom: tuple[float, float]
    flare_prob: float
    star_prob: float
    stars_per_mpx: tuple[float, float]
    read_noise: tuple[float, float]
    shot_noise: tuple[float, float]
    blur_sigma: tuple[float, float]
    motion_prob: float
    jpeg_prob: float
    jpeg_quality: tuple[int, int]
    truncate_prob: float = 0.12


DOMAINS: dict[str, Domain] = {
    "lightbox": Domain(
        "lightbox",
        "diffuse albedo-like light from several sides, Earth imagery behind, moderate contrast",
        earth_prob=0.85,
        earth_radius=(0.6, 3.0),
        earth_depth=(-0.2, 1.4),
        earth_gain=(0.35, 0.9),
        cloud_cover=(0.3, 0.7),
        sun_z=(-0.9, 0.2),
        sun_intensity=(0.5, 1.0),
        fill_lights=(1, 3),
        fill_intensity=(0.2, 0.5),
        ambient=(0.06, 0.2),
        earthshine=(0.1, 0.35),
        exposure=(0.8, 1.3),
        haze=(0.0, 0.04),
        bloom=(0.1, 0.3),
        flare_prob=0.1,
        star_prob=0.3,
        stars_per_mpx=(50, 600),
        read_noise=(0.006, 0.025),
        shot_noise=(0.0005, 0.004),
        blur_sigma=(0.4, 1.3),
        motion_prob=0.1,
        jpeg_prob=0.5,
        jpeg_quality=(40, 92),
    ),
    "sunlamp": Domain(
        "sunlamp",
        "one hard lamp, over-exposure, bloom and lens flare, deep shadows, black background",
        earth_prob=0.0,
        earth_radius=(1, 1),
        earth_depth=(0, 0),
        earth_gain=(0, 0),
        cloud_cover=(0, 0),
        # phase angle <= ~105 deg: the lamp lights the side the camera sees. With it up to 145 deg
        # behind the target, about half the scenes were backlit and one in five a dark silhouette
        # barely above the black background (a ground-truth-trained student: AP50 47), whereas
        # SPEED+ Sunlamp is the paper's *easiest* domain for the VLM (AP50 97.9, Table I).
        sun_z=(-0.85, 0.25),
        sun_intensity=(1.6, 4.0),
        fill_lights=(0, 0),
        fill_intensity=(0, 0),
        ambient=(0.008, 0.03),
        earthshine=(0.0, 0.0),
        exposure=(1.0, 2.0),
        haze=(0.0, 0.02),
        bloom=(0.3, 0.9),
        flare_prob=0.6,
        star_prob=0.25,
        stars_per_mpx=(20, 300),
        read_noise=(0.008, 0.03),
        shot_noise=(0.001, 0.006),
        blur_sigma=(0.4, 1.6),
        motion_prob=0.1,
        jpeg_prob=0.5,
        jpeg_quality=(35, 92),
    ),
    "earth": Domain(
        "earth",
        "bright Earth, limb and clouds behind the spacecraft, low contrast, blending",
        earth_prob=1.0,
        earth_radius=(1.0, 4.0),
        earth_depth=(0.15, 2.5),
        earth_gain=(0.7, 1.4),
        cloud_cover=(0.35, 0.85),
        sun_z=(-1.0, -0.15),
        sun_intensity=(0.7, 1.5),
        fill_lights=(0, 0),
        fill_intensity=(0, 0),
        ambient=(0.02, 0.08),
        earthshine=(0.15, 0.5),
        exposure=(0.7, 1.2),
        haze=(0.01, 0.08),
        bloom=(0.05, 0.25),
        flare_prob=0.1,
        star_prob=0.15,
        stars_per_mpx=(10, 100),
        read_noise=(0.006, 0.03),
        shot_noise=(0.0005, 0.004),
        blur_sigma=(0.5, 1.8),
        motion_prob=0.15,
        jpeg_prob=0.55,
        jpeg_quality=(30, 90),
    ),
}


def check_domains(domains: str | Sequence[str]) -> list[str]:
    """Normalise ``"a,b"`` or ``["a", "b"]`` to a list; unknown names raise ValueError."""
    if isinstance(domains, str):
        domains = [d.strip() for d in domains.split(",") if d.strip()]
    domains = list(domains)
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown:
        raise ValueError(
            f"unknown domain(s) {', '.join(map(repr, unknown))}; known domains: {', '.join(DOMAINS)}"
        )
    if not domains:
        raise ValueError(f"no domain given; known domains: {', '.join(DOMAINS)}")
    return domains


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
def render_earth(rng: np.random.Generator, dom: Domain, w: int, h: int, sun: np.ndarray):
    """Procedural Earth seen from orbit.

    Returns (radiance (H, W, 3) float32 linear, disc coverage (ceil(H/s), ceil(W/s)) float32 in
    [0, 1] at the working resolution, s the working resolution's down-scaling factor).

    Orthographic sphere whose limb crosses the frame at a random angle; surface colour from
    fractal noise in arc-length coordinates (features compress towards the limb), lit by
    ``sun`` (unit vector to the sun, camera frame) with Rayleigh haze and a thin glow.
    """
    big = max(w, h)
    s = max(1, math.ceil(big / _EARTH_RES))
    lw, lh = math.ceil(w / s), math.ceil(h / s)
    radius = _u(rng, dom.earth_radius) * big
    theta = rng.uniform(0, 2 * np.pi)
    depth = min(_u(rng, dom.earth_depth) * big, 1.6 * radius)  # keep the frame centre on the disc
    cx = w / 2 - (radius - depth) * math.cos(theta)
    cy = h / 2 - (radius - depth) * math.sin(theta)
    xs = ((np.arange(lw, dtype=np.float32) + 0.5) * s - cx) / radius
    ys = ((np.arange(lh, dtype=np.float32) + 0.5) * s - cy) / radius
    dx, dy = np.meshgrid(xs, ys)
    d2 = dx * dx + dy * dy
    nz = np.sqrt(np.clip(1.0 - d2, 0.0, 1.0))
    # texture frame rotated about the view axis so the "poles" lie in a random direction
    phi = rng.uniform(0, 2 * np.pi)
    tx = math.cos(phi) * dx - math.sin(phi) * dy
    ty = math.sin(phi) * dx + math.cos(phi) * dy
    lon = np.arctan2(tx, np.maximum(nz, 1e-4))
    lat = np.arcsin(np.clip(ty, -1, 1))
    # arc length on the sphere in low-res pixels (features keep their size at the disc centre)
    u = (lon * (radius / s) + rng.uniform(0, 1e3)).astype(np.float32)
    v = (lat * (radius / s) + rng.uniform(0, 1e3)).astype(np.float32)
    lbig = big / s
    land = _fbm(rng, u, v, rng.uniform(0.4, 1.2) * lbig, 5, 0.5)
    cloud = _fbm(rng, u * rng.uniform(0.7, 1.4), v, rng.uniform(0.2, 0.6) * lbig, 6, 0.6)
    detail = _fbm(rng, u, v, rng.uniform(0.03, 0.08) * lbig, 2, 0.6)  # terrain, glint on waves
    tint = cv2.resize(rng.random((4, 4), dtype=np.float32), (lw, lh), interpolation=cv2.INTER_CUBIC)

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

    proj = f * faces[..., :2] / faces[..., 2:3] + np.asarray(c)
    lines = mesh.lines @ rot.T + t
    lproj = f * lines[..., :2] / lines[..., 2:3] + np.asarray(c)
    lthick = np.maximum(1, np.round(2 * mesh.line_radius * f / lines[..., 2].mean(1))).astype(int)

    pts = np.concatenate([proj.reshape(-1, 2), lproj.reshape(-1, 2)])
    margin = int(lthick.max()) + 2 if len(lthick) else 2
    x0 = int(np.floor(pts[:, 0].min())) - margin
    y0 = int(np.floor(pts[:, 1].min())) - margin
    cw = int(np.ceil(pts[:, 0].max())) + margin - x0
    ch = int(np.ceil(pts[:, 1].max())) + margin - y0
    layer = np.zeros((ch, cw, 3), np.float32)
    mask = np.zeros((ch, cw), np.uint8)

    # line colour: a thin cylinder's brightest diffuse term is sqrt(1 - (L.axis)^2)
    lcol = np.zeros((len(lines), 3))
    if len(lines):
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

    # painter's algorithm over parts (far first), then decals after base faces, then far faces
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

    off = np.array([x0, y0])
    fpts = np.round((proj - off) * _SCALE).astype(np.int32)
    lpts = np.round((lproj - off) * _SCALE).astype(np.int32)
    for *_, kind, i in items:
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


# ---------------------------------------------------------------------------- scene
def _seed_for(seed: int, domain: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(domain.encode()), int(index)])


def _as_rng(rng_or_seed) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def _pose(
    rng: np.random.Generator, mesh: Mesh, w: int, h: int, f: float, dom: Domain, attempt: int
):
    """Random attitude; distance so the projected hull covers a log-uniform 5-80 % of the frame;
    position inside the frame, or across one edge with probability ``dom.truncate_prob``.

    Returns (rot (3, 3) body -> camera, t (3,) camera-frame position of the body origin).
    """
    rot = random_rotation(rng)
    pts = np.concatenate([mesh.faces.reshape(-1, 3), mesh.lines.reshape(-1, 3)]) @ rot.T
    z0 = 10.0
    p = f * pts[:, :2] / (pts[:, 2:3] + z0)
    a0 = max(float(cv2.contourArea(cv2.convexHull(p.astype(np.float32)))), 1e-6)
    late = attempt >= 8  # after repeated failures, fall back to a safe mid-sized framing
    share = 0.12 if late else math.exp(rng.uniform(math.log(0.05), math.log(0.8)))
    z = max(z0 * math.sqrt(a0 / (share * w * h)), 1.8)

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


def render_sample(
    rng_or_seed,
    domain: str,
    size: tuple[int, int] = (512, 512),
    model: str | None = None,
    models: Sequence[str] | None = None,
):
    """Render one image of ``domain`` at ``size`` = (W, H).

    Returns (image (H, W, 3) uint8 RGB, mask (H, W) bool silhouette, meta dict with ``model``,
    ``visible_fraction``, ``truncated``, ``area_fraction``, ``earth_fraction``,
    ``sun_phase_deg``). A seed or a ``numpy.random.Generator``; ``model`` forces one model,
    else one of ``models`` is drawn (default :data:`DETECTION_MODELS`).
    Samples whose visible mask is below 0.5 % of the image or 30 % of the object are redrawn
    from the same generator, so the result stays deterministic.
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
    fov = math.radians(rng.uniform(25, 55))
    f = max(w, h) / 2 / math.tan(fov / 2)
    cpt = (w / 2, h / 2)
    for attempt in range(100):
        rot, t = _pose(rng, mesh, w, h, f, dom, attempt)
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

    # background (linear radiance)
    earth_frac = 0.0
    cover, cover_scale = None, 1
    if has_earth:
        img, cover, cover_scale = render_earth(rng, dom, w, h, sun)
        earth_frac = float(cover.mean())
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

    # composite the object (hard edge: the optics blur below softens it like a real PSF)
    sub = omask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    np.copyto(
        img[iy0:iy1, ix0:ix1], layer[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0], where=sub[..., None]
    )
    mask = np.zeros((h, w), bool)
    mask[iy0:iy1, ix0:ix1] = sub

    # optics: bloom of the energy that over-exposes, flare, blur, veiling haze, vignetting
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
    img = cv2.add(cv2.multiply(img, _vignette(w, h), scale=exposure), tuple(haze))

    # sensor: gamma (x^(1/2.2)), shot + read noise (one luminance field), 8-bit, optional JPEG
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

    vis_frac = vis / total
    phase = math.degrees(math.acos(float(np.clip(-sun[2], -1, 1))))
    meta = {
        "model": name,
        "variant": variant,
        "visible_fraction": round(vis_frac, 4),
        "truncated": bool(vis < total),
        "area_fraction": round(vis / (w * h), 4),
        "earth_fraction": round(earth_frac, 4),
        "sun_phase_deg": round(phase, 1),
    }
    return out, mask, meta


# ---------------------------------------------------------------------------- dataset
_PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
]


def _make_one(job: tuple) -> tuple[dict, dict]:
    """Render one dataset image, write its PNG, return its COCO image and annotation entries."""
    image_id, dname, index, seed, w, h, img_dir, models = job
    rng = np.random.default_rng(_seed_for(seed, dname, index))
    image, mask, meta = render_sample(rng, dname, (w, h), models=models)
    file_name = f"{dname}_{index:05d}.png"
    ok, buf = cv2.imencode(".png", image[..., ::-1], _PNG_PARAMS)
    if not ok:  # pragma: no cover
        raise OSError(f"cannot encode {Path(img_dir) / file_name}")
    (Path(img_dir) / file_name).write_bytes(buf.tobytes())
    entry = coco.make_image(image_id, file_name, w, h, domain=dname, **meta)
    return entry, coco.make_annotation(
        image_id, image_id, mask=mask, box_xyxy=coco.mask_to_xyxy(mask)
    )


def _worker_init() -> None:
    cv2.setNumThreads(1)  # the processes are the parallelism; OpenCV threads would oversubscribe


def _spawn_safe() -> bool:
    """Whether worker processes can start: "spawn" re-imports ``__main__`` in each worker, which
    is harmless for ``python -m``, notebooks and ``-c``, but would re-run an unguarded script."""
    main = sys.modules.get("__main__")
    return getattr(main, "__file__", None) is None or getattr(main, "__spec__", None) is not None


def default_workers(num_jobs: int) -> int:
    """Processes for ``num_jobs`` images: 1 for small sets (start-up costs more) or when the
    caller is a plain script (see :func:`_spawn_safe`), else the usable CPUs (at most 8)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return 1 if num_jobs < 32 or not _spawn_safe() else max(1, min(cpus, 8))


DESCRIPTION = "AFSS procedural synthetic spacecraft (afss_utils.synthetic)"


def generate(
    out_dir: str | Path,
    domains: str | Sequence[str],
    num_images: int,
    seed: int,
    size: tuple[int, int] = (512, 512),
    progress: bool = True,
    workers: int | None = None,
    models: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``num_images`` per domain to ``out_dir/images/*.png`` + ``out_dir/annotations.json``.

    COCO instances with one ``spacecraft`` annotation per image (RLE mask, tight xywh box,
    ``area`` = mask pixels); each image entry also carries ``domain`` and the render metadata
    (``model``, ``variant``, ``visible_fraction``, ``truncated``, ``area_fraction``,
    ``earth_fraction``, ``sun_phase_deg``). Images are named ``{domain}_{index:05d}.png`` and
    numbered 1.. in domain order. ``workers`` processes render in parallel (None: see
    :func:`default_workers`); the output is byte-identical for the same seed whatever the
    number of workers. ``models``: the spacecraft types to draw from (default
    :data:`DETECTION_MODELS`, the detection study's three; ``list(MODELS)`` for all types, as
    the type-classification experiment uses). Returns the annotations path.

    The dataset is rendered into a hidden temporary folder beside ``out_dir`` and moved in place
    at the end, so a killed run never leaves new images beside an old annotations.json. An
    existing ``out_dir`` is replaced only when it is empty or a dataset this function wrote
    (``info.description``); anything else needs ``overwrite=True`` (``--overwrite``).
    """
    domains = check_domains(domains)
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    w, h = int(size[0]), int(size[1])
    if w < 8 or h < 8:
        raise ValueError(f"image size must be at least 8x8, got {w}x{h}")
    out_dir = Path(out_dir)
    _check_replaceable(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        os.chmod(staging, 0o777 & ~coco._umask())  # mkdtemp's 0700 would outlive the move
        _render_into(staging, domains, num_images, seed, w, h, progress, workers, models)
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / "annotations.json"


def _check_replaceable(out_dir: Path, overwrite: bool) -> None:
    if overwrite or not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} exists and is not a folder")
    if not any(out_dir.iterdir()):
        return
    try:
        info = coco.read_json(out_dir / "annotations.json").get("info", {})
    except (coco.CocoFormatError, AttributeError):
        info = {}
    if info.get("description") != DESCRIPTION:
        raise FileExistsError(
            f"refusing to replace {out_dir}: it is not a dataset rendered by afss_utils.synthetic "
            "(pass --overwrite to replace it anyway)"
        )


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename ``staging`` to ``out_dir``; an old ``out_dir`` is moved aside first, then deleted."""
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
    os.rename(out_dir, old / out_dir.name)
    os.rename(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _render_into(
    out_dir: Path,
    domains: list[str],
    num_images: int,
    seed: int,
    w: int,
    h: int,
    progress: bool,
    workers: int | None,
    models: Sequence[str] | None = None,
) -> Path:
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        (k, d, i, int(seed), w, h, str(img_dir), None if models is None else tuple(models))
        for k, (d, i) in enumerate(((d, i) for d in domains for i in range(num_images)), 1)
    ]
    workers = default_workers(len(jobs)) if workers is None else max(1, int(workers))
    bar = tqdm(total=len(jobs), desc="synthetic", disable=not progress, unit="img")
    results = []
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            results.append(_make_one(job))
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe once torch/OpenCV threads exist
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
            for res in pool.map(_make_one, jobs, chunksize=4):
                results.append(res)
                bar.update()
    bar.close()
    info = {
        "description": DESCRIPTION,
        "domains": domains,
        "num_images_per_domain": int(num_images),
        "seed": int(seed),
        "size": [w, h],
        "renderer_version": RENDERER_VERSION,
    }
    if models is not None:
        info["models"] = list(models)
    instances = coco.make_instances([r[0] for r in results], [r[1] for r in results], info=info)
    return coco.save_json(instances, out_dir / "annotations.json")


def with_type_categories(instances: dict, models: Sequence[str] | None = None) -> dict:
    """A copy of generated ``instances`` with one category per spacecraft type (ids 1.. in
    ``models`` order, default all :data:`MODELS`) and each annotation's ``category_id`` set from
    its image's recorded ``model``: the type-classification view of a synthetic set (detection
    keeps the single ``spacecraft`` category)."""
    models = list(models or MODELS)
    ids = {m: k + 1 for k, m in enumerate(models)}
    images = {img["id"]: img for img in instances["images"]}
    anns = []
    for a in instances["annotations"]:
        model = images[a["image_id"]].get("model")
        if model not in ids:
            raise ValueError(
                f"image {a['image_id']}: model {model!r} is not one of the types {models}"
            )
        anns.append({**a, "category_id": ids[model]})
    cats = [{"id": ids[m], "name": m, "supercategory": "spacecraft"} for m in models]
    return {**instances, "annotations": anns, "categories": cats}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m afss_utils.synthetic",
        description="Render procedural spacecraft images with COCO masks and boxes.",
    )
    parser.add_argument(
        "--domain", required=True, help=f"one or more comma-separated domains: {', '.join(DOMAINS)}"
    )
    parser.add_argument("--num-images", type=int, required=True, help="images per domain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder (images/ + annotations.json)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=(512, 512))
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel processes (default: 1 for < 32 images, else the CPU count, <= 8)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out even if it is not a dataset rendered by this tool",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    try:
        domains = check_domains(args.domain)
    except ValueError as exc:
        parser.error(str(exc))
    if args.num_images < 0:
        parser.error("--num-images must be >= 0")
    if min(args.size) < 8:
        parser.error("--size must be at least 8 8")
    try:
        path = generate(
            args.out,
            domains,
            args.num_images,
            args.seed,
            tuple(args.size),
            progress=not args.no_progress,
            workers=args.workers,
            overwrite=args.overwrite,
        )
    except (FileExistsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
