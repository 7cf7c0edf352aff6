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

Modules, in the order an image is made: ``mesh`` (materials, meshes, the part builder),
``models`` (the spacecraft types), ``domains`` (per-domain random ranges), ``rendering``
(Earth, stars, the shaded object), ``scene`` (:func:`render_sample`: pose, background, optics,
sensor) and ``dataset`` (:func:`generate` and the CLI).
"""

from afss_utils.synthetic.dataset import (
    DESCRIPTION,
    default_workers,
    generate,
    main,
    type_split,
    with_type_categories,
)
from afss_utils.synthetic.domains import (
    DOMAINS,
    RENDERER_VERSION,
    Domain,
    check_domains,
)
from afss_utils.synthetic.mesh import (
    MATERIALS,
    Material,
    Mesh,
    MeshBuilder,
)
from afss_utils.synthetic.models import (
    DETECTION_MODELS,
    MODELS,
    N_VARIANTS,
    build_boxwing,
    build_cubesat,
    build_debris,
    build_relay,
    build_tango,
    build_upper_stage,
    model_variant,
)
from afss_utils.synthetic.rendering import (
    random_rotation,
    render_earth,
    render_object,
)
from afss_utils.synthetic.scene import (
    MIN_VISIBLE_FRACTION_OF_IMAGE,
    MIN_VISIBLE_FRACTION_OF_OBJECT,
    render_sample,
)

__all__ = [
    "DESCRIPTION",
    "DETECTION_MODELS",
    "DOMAINS",
    "Domain",
    "MATERIALS",
    "MIN_VISIBLE_FRACTION_OF_IMAGE",
    "MIN_VISIBLE_FRACTION_OF_OBJECT",
    "MODELS",
    "Material",
    "Mesh",
    "MeshBuilder",
    "N_VARIANTS",
    "RENDERER_VERSION",
    "build_boxwing",
    "build_cubesat",
    "build_debris",
    "build_relay",
    "build_tango",
    "build_upper_stage",
    "check_domains",
    "default_workers",
    "generate",
    "main",
    "model_variant",
    "random_rotation",
    "render_earth",
    "render_object",
    "render_sample",
    "type_split",
    "with_type_categories",
]
