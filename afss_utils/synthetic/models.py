"""The spacecraft models (``tango``, ``relay``, ``cubesat``; ``debris``, ``boxwing``,
``upper_stage`` for type classification) and their cached instances (:func:`model_variant`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from functools import cache

import numpy as np

from afss_utils.synthetic.mesh import Mesh, MeshBuilder, _mli, _rot_axis, _wing


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
