"""Materials and meshes: planar convex polygons and thin cylinders in 3-D, and a builder of
parts (boxes, prisms, paraboloid dishes, hinged panels) the spacecraft models are made of.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


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
