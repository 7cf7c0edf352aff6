"""The imaging domains (``lightbox``, ``sunlamp``, ``earth``): every random range a domain
draws its lighting, background, optics and sensor from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# ---------------------------------------------------------------------------- domains
# Written into every generated annotations.json; bump it whenever a change alters the images a
# seed renders, so that a study folder made by an older renderer is re-rendered, not reused.
RENDERER_VERSION = 3


@dataclass(frozen=True)
class Domain:
    """Per-domain ranges (lo, hi) the scene parameters are drawn from uniformly."""

    name: str
    description: str
    earth_prob: float
    # Two Earth framings: a whole (or partly cut) disc with its limb against black space, with
    # probability disc_prob, its radius disc_radius x max(W, H) and its centre anywhere in the
    # frame; otherwise a limb crossing the frame with the Earth behind the image centre:
    earth_radius: tuple[float, float]  # that Earth's radius / max(W, H)
    earth_depth: tuple[float, float]  # how far its limb is beyond the image centre / max(W, H)
    disc_prob: float
    disc_radius: tuple[float, float]
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
    glare_prob: float  # star-shaped glare around the brightest over-exposed highlight
    # The target's distance in bounding radii, log-uniform: with SPEED+'s 35.6 deg field of view
    # its box covers ~0.2 % of the frame at the far end (5th percentile), a quarter at the near
    # end (95th), ~3 % at the median
    distance: tuple[float, float] = (3.5, 40.0)
    truncate_prob: float = 0.12


DOMAINS: dict[str, Domain] = {
    "lightbox": Domain(
        "lightbox",
        "diffuse albedo-like light from several sides, Earth imagery behind, moderate contrast",
        earth_prob=0.85,
        earth_radius=(0.6, 3.0),
        earth_depth=(-0.2, 1.4),
        disc_prob=0.35,
        disc_radius=(0.12, 0.7),
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
        glare_prob=0.3,
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
        disc_prob=0.0,
        disc_radius=(0, 0),
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
        glare_prob=0.6,
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
        disc_prob=0.45,
        disc_radius=(0.15, 0.8),
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
        glare_prob=0.3,
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
