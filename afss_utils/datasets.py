"""Dataset views: image ids, paths and ground truth over a COCO json and an images folder.

Adapters for the layouts the paper's authors publish (SPEED+, SPARK-2024, TANGO) build the same
:class:`Dataset`, so every later stage sees one shape of data. :func:`open_split` opens one entry
of the params ``datasets`` list; the layouts it knows, with every path relative to ``data_dir``::

    synthetic   {data_dir}/{train,test}/annotations.json  (+ images/), pooled over domains; the
                view is the images whose ``domain`` equals the spec's ``domain``
    coco        spec ``train``/``test``: instances json paths; ``images``: a folder, or
                {train: .., test: ..} (default: ``images/`` beside each json, or its own folder)
    speedplus   {root}/annotations/instances_{train_<domain>_500,val_<domain>}.json
                {root}/images/{train_<domain>_500 | train_<domain>, val_<domain>}/
                {root}/masks/<image folder>/<stem>.png            binary PNG, >0 = spacecraft
    spark       {root}/annotations/instances_{train_target_500,val_target_1600}.json
                {root}/images/{train_target_500,val_target_1600}/  (boxes only)
    tango       {root}/annotations/instances_{train,val}_tango.json, {root}/images/{train,val}/
                {root}/{train_SS_img,test_SS_img}/<stem>_mask.png  RGB, R channel = spacecraft
    spark2022   {root}/{train,val}.csv (filename, class, bbox [y1, x1, y2, x2]) +
                {root}/{train,val}/[<class>/]<filename>; test = val (see open_spark2022)

The json files are the authors' (github.com/giddyyupp/annotation-free-spacecraft-segmentation,
json files on huggingface.co/samethi/annotation-free-spacecraft-segmentation); images and masks
come from the datasets' own sites. See :func:`open_speedplus` for every place a SPEED+ mask is
looked for.
"""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from afss_utils import coco
from afss_utils.progress import bar


class ImageReadError(OSError):
    """An image file is missing or cannot be decoded; the message names the file."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; errors name the file.

    Grayscale, palette, RGBA (alpha dropped) and CMYK are converted to RGB. 16-bit and 32-bit
    integer or float grayscale is scaled linearly from its own min..max to 0..255 (Pillow's
    ``convert`` would clip it, turning a 16-bit frame almost all white).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            if im.mode in ("I", "F") or im.mode.startswith("I;16"):
                return _scale_to_uint8(np.asarray(im))
            return np.asarray(im.convert("RGB"))
    # Pillow >= 12 may raise ImportError from its optional-plugin hint (pi_heif) on an unknown
    # format; that is still "cannot read this file", not a missing dependency of ours
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        ImportError,
        Image.DecompressionBombError,
    ) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc


def check_rgb_image(image: Any, error: type[Exception] = ValueError) -> np.ndarray:
    """``image`` as an (H, W, 3) uint8 RGB array (what :func:`read_image` returns), or ``error``
    saying what it is instead. The one image check of the package (teachers, TTA)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
        raise error(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return image


def _scale_to_uint8(gray: np.ndarray) -> np.ndarray:
    """(H, W) integer or float image -> (H, W, 3) uint8, its min..max stretched to 0..255."""
    g = gray.astype(np.float64)
    lo, hi = float(g.min()), float(g.max())
    scaled = np.zeros(g.shape) if hi <= lo else (g - lo) * (255.0 / (hi - lo))
    return np.repeat(np.rint(scaled).astype(np.uint8)[..., None], 3, axis=2)


@dataclass
class Dataset:
    """A COCO instances dict plus the folder its ``file_name`` entries are relative to.

    ``annotations`` may be empty (unlabelled images); ``has_masks`` says whether GT carries
    segmentations, which decides whether mask AP can be reported.
    """

    name: str
    instances: dict
    image_dir: Path
    annotation_file: Path | None = None
    _by_id: dict[int, dict] = field(init=False, repr=False)
    _anns: dict[int, list[dict]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.image_dir = Path(self.image_dir)
        self.instances = coco.validate_instances(self.instances, self.annotation_file or self.name)
        self._by_id = {img["id"]: img for img in self.instances["images"]}
        self._anns = {i: [] for i in self._by_id}
        for ann in self.instances["annotations"]:
            self._anns[ann["image_id"]].append(ann)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[int]:
        return iter(self.image_ids)

    @property
    def image_ids(self) -> list[int]:
        return list(self._by_id)

    @property
    def has_masks(self) -> bool:
        anns = self.instances["annotations"]
        return bool(anns) and all("segmentation" in a for a in anns)

    def image_info(self, image_id: int) -> dict:
        return self._by_id[image_id]

    def image_path(self, image_id: int) -> Path:
        return self.image_dir / self._by_id[image_id]["file_name"]

    def load_image(self, image_id: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB; ImageReadError names the file when it is missing or corrupt."""
        return read_image(self.image_path(image_id))

    def annotations(self, image_id: int) -> list[dict]:
        return self._anns[image_id]

    def subset(self, image_ids: list[int], name: str | None = None) -> Dataset:
        """A view on some images (and their annotations), e.g. one domain of a pooled set."""
        keep = set(image_ids)
        inst = dict(self.instances)
        inst["images"] = [img for img in self.instances["images"] if img["id"] in keep]
        inst["annotations"] = [a for a in self.instances["annotations"] if a["image_id"] in keep]
        return Dataset(name or self.name, inst, self.image_dir, self.annotation_file)


def open_coco(
    annotation_file: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    name: str | None = None,
) -> Dataset:
    """A COCO json and its image folder (default: ``images/`` beside the json)."""
    annotation_file = Path(annotation_file)
    instances = coco.load_instances(annotation_file)
    if image_dir is None:
        # file_name may already carry the ``images/`` prefix; use the folder where it resolves.
        image_dir = _first_resolving(
            [annotation_file.parent / "images", annotation_file.parent], instances
        )
    return Dataset(name or annotation_file.parent.name, instances, Path(image_dir), annotation_file)


# ---------------------------------------------------------------------------- errors
class DatasetNotFoundError(FileNotFoundError):
    """A file a dataset layout needs is absent; the message says which file to place where."""


class DatasetSpecError(ValueError):
    """A params ``datasets`` entry has an unknown layout or lacks a key; the message names it."""


class NoValidationSplitError(DatasetNotFoundError):
    """A dataset has no labelled validation split (the authors' layouts ship train and test)."""


LAYOUTS = ("synthetic", "coco", "speedplus", "spark", "tango", "spark2022")
SPLITS = ("train", "val", "test")
SPEEDPLUS_DOMAINS = ("sunlamp", "lightbox")
AUTHORS_JSON_URL = "https://huggingface.co/samethi/annotation-free-spacecraft-segmentation"


def _first_resolving(candidates: list[Path], instances: dict) -> Path:
    """The first folder in which the first image's ``file_name`` exists, else the first that
    exists, else the first candidate (missing images are reported when read)."""
    first = instances["images"][0]["file_name"] if instances["images"] else None
    if first is not None:
        for d in candidates:
            if (d / first).is_file():
                return d
    for d in candidates:
        if d.is_dir():
            return d
    return candidates[0]


def _need_file(path: Path, what: str, hint: str = "") -> Path:
    if not path.is_file():
        raise DatasetNotFoundError(f"{what}: file not found: {path}. {hint}".strip())
    return path


def _need_dir(candidates: list[Path], instances: dict, what: str) -> Path:
    found = [d for d in candidates if d.is_dir()]
    if not found:
        raise DatasetNotFoundError(
            f"{what}: image folder not found; place the images in {candidates[0]}"
            + (
                f" (also accepted: {', '.join(map(str, candidates[1:]))})"
                if len(candidates) > 1
                else ""
            )
        )
    return _first_resolving(found, instances)


# ---------------------------------------------------------------------------- masks
def read_mask(path: str | os.PathLike, channel: int | None = None) -> np.ndarray:
    """A mask image as (H, W) bool: pixels > 0 of its grey value, or of RGB ``channel`` (0 = R).

    Errors name the file (ImageReadError), never a bare PIL traceback.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"mask not found: {path}")
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB") if channel is not None else im.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError, ImportError) as exc:
        raise ImageReadError(f"cannot read mask {path}: {exc}") from exc
    return (arr[..., channel] if channel is not None else arr) > 0


def attach_masks(
    instances: dict,
    mask_paths: dict[int, Path],
    channel: int | None = None,
    source: Any = "<instances>",
) -> dict:
    """A copy of ``instances`` whose annotations carry RLE ``segmentation`` read from mask files.

    mask_paths: image id -> mask file ((H, W) like its image; see :func:`read_mask`).
    One annotation on the image: it gets the whole mask (``area`` = mask pixels, ``bbox`` kept as
    published). Several: each gets the mask cropped to its box. None and a non-empty mask: an
    annotation is made from the mask. Images without a mask path keep their annotations as they are.
    """
    out = copy.deepcopy(instances)
    anns_by_img: dict[int, list[dict]] = {}
    for ann in out["annotations"]:
        anns_by_img.setdefault(ann["image_id"], []).append(ann)
    next_id = max((a["id"] for a in out["annotations"]), default=0) + 1
    images = {img["id"]: img for img in out["images"]}
    for image_id, path in bar(
        mask_paths.items(), desc="reading GT masks", progress=len(mask_paths) >= 200, leave=False
    ):
        img = images[image_id]
        mask = read_mask(path, channel)
        if mask.shape != (img["height"], img["width"]):
            raise coco.CocoFormatError(
                f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but image {img['file_name']} "
                f"is {img['width']}x{img['height']} in {source}"
            )
        anns = anns_by_img.get(image_id, [])
        if not anns:
            if mask.any():
                out["annotations"].append(coco.make_annotation(next_id, image_id, mask=mask))
                next_id += 1
            continue
        for ann in anns:
            m = mask
            if len(anns) > 1:
                x1, y1, x2, y2 = coco.xywh_to_xyxy(ann["bbox"])[0]
                m = np.zeros_like(mask)
                r = np.s_[
                    int(np.floor(y1)) : int(np.ceil(y2)), int(np.floor(x1)) : int(np.ceil(x2))
                ]
                m[r] = mask[r]
            ann["segmentation"] = coco.mask_to_rle(m)
            ann["area"] = float(np.count_nonzero(m))
    return out


def _has_segmentations(instances: dict) -> bool:
    anns = instances["annotations"]
    return bool(anns) and all("segmentation" in a for a in anns)


def _with_masks_from_files(
    instances: dict,
    candidates: Callable[[dict], list[Path]],
    channel: int | None,
    source: Path,
    what: str,
    cache_dir: str | os.PathLike | None = None,
) -> dict:
    """Attach GT masks unless the json has them already.

    ``candidates(image)`` lists where that image's mask may be, best first. No mask found for any
    image: the dataset stays box-only (a warning says where masks would go). Some found, some not:
    DatasetNotFoundError naming the first missing file. With ``cache_dir``, the converted json is
    kept there and reused while the source json is unchanged (reading thousands of full-size PNGs
    is the slow part).
    """
    if _has_segmentations(instances) or not instances["images"]:
        return instances
    cache = None
    if cache_dir is not None:
        # the json's own name is the same in every copy of a dataset: the path tells copies apart
        digest = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:10]
        cache = Path(cache_dir) / f"{source.stem}.{digest}.with_masks.json"
        stamp = {"source": str(source.resolve()), "mtime": source.stat().st_mtime}
        if cache.is_file():
            cached = coco.read_json(cache)
            if isinstance(cached, dict) and cached.get("info", {}).get("afss_source") == stamp:
                return coco.validate_instances(cached, cache)
    found: dict[int, Path] = {}
    missing: list[Path] = []
    for img in instances["images"]:
        paths = candidates(img)
        hit = next((p for p in paths if p.is_file()), None)
        if hit is None:
            missing.append(paths[0])
        else:
            found[img["id"]] = hit
    if not found:
        example = candidates(instances["images"][0])[0]
        warnings.warn(
            f"{what}: {source} has no segmentations and no mask files were found (e.g. {example}); "
            "the dataset is box-only, so mask AP cannot be reported",
            stacklevel=3,
        )
        return instances
    if missing:
        raise DatasetNotFoundError(
            f"{what}: {len(missing)} of {len(instances['images'])} GT masks are missing, "
            f"e.g. {missing[0]}; place each image's mask there (or remove all masks for box-only use)"
        )
    out = attach_masks(instances, found, channel, source)
    if cache is not None:
        out.setdefault("info", {})["afss_source"] = stamp
        coco.save_json(out, cache)
    return out


# ---------------------------------------------------------------------------- paper layouts
def _mask_file_field(root: Path, img: dict) -> list[Path]:
    # An explicit ``mask_file`` (relative to the dataset root) wins over any naming convention.
    return [root / img["mask_file"]] if img.get("mask_file") else []


def open_speedplus(
    root: str | os.PathLike,
    domain: str,
    split: str,
    name: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """SPEED+ real images (``domain`` sunlamp | lightbox) in the authors' layout.

    - annotations: ``{root}/annotations/instances_train_<domain>_500.json`` (train) and
      ``instances_val_<domain>.json`` (test), COCO instances with boxes;
    - images: ``{root}/images/<split folder>/`` with split folder ``train_<domain>_500`` (the
      authors' scripts) or ``train_<domain>`` (their README), and ``val_<domain>``;
    - GT masks, binary PNGs the size of the image (pixel > 0 = spacecraft), needed only when the
      json has no ``segmentation``; looked up per image, first hit wins:
        1. ``mask_file`` in the image entry, relative to ``root``;
        2. ``{root}/masks/<image folder>/<stem>.png`` (the convention of this study);
        3. ``{root}/masks/<domain>/masks/<file_name>`` and ``.../<stem>.png`` (where the authors'
           evaluation script reads them).
      Masks are converted to RLE segmentations.
    """
    if domain not in SPEEDPLUS_DOMAINS:
        raise DatasetSpecError(f"SPEED+ domain must be one of {SPEEDPLUS_DOMAINS}, got '{domain}'")
    root = Path(root)
    stem = f"train_{domain}_500" if split == "train" else f"val_{domain}"
    what = f"SPEED+ {domain} {split} split"
    ann_file = _need_file(
        root / "annotations" / f"instances_{stem}.json",
        what,
        f"Place the authors' json files ({AUTHORS_JSON_URL}) in {root / 'annotations'}/ and the "
        f"images in {root / 'images' / stem}/ (layout: afss_utils.datasets.open_speedplus).",
    )
    instances = coco.load_instances(ann_file)
    folders = [stem, f"train_{domain}"] if split == "train" else [stem]
    image_dir = _need_dir(
        [root / "images" / f for f in folders] + [root / "images"], instances, what
    )

    def candidates(img: dict) -> list[Path]:
        fname = Path(img["file_name"])
        return [
            *_mask_file_field(root, img),
            root / "masks" / image_dir.name / f"{fname.stem}.png",
            root / "masks" / domain / "masks" / fname.name,
            root / "masks" / domain / "masks" / f"{fname.stem}.png",
        ]

    instances = _with_masks_from_files(instances, candidates, None, ann_file, what, cache_dir)
    return Dataset(name or f"speedplus_{domain}", instances, image_dir, ann_file)


def open_spark(root: str | os.PathLike, split: str, name: str | None = None) -> Dataset:
    """SPARK-2024 real test trajectories in the authors' layout (boxes only, ``has_masks`` False).

    ``{root}/annotations/instances_{train_target_500,val_target_1600}.json`` and images in
    ``{root}/images/{train_target_500,val_target_1600}/``.
    """
    root = Path(root)
    stem = "train_target_500" if split == "train" else "val_target_1600"
    what = f"SPARK-2024 {split} split"
    ann_file = _need_file(
        root / "annotations" / f"instances_{stem}.json",
        what,
        f"Place the authors' json files ({AUTHORS_JSON_URL}) in {root / 'annotations'}/ and the "
        f"images in {root / 'images' / stem}/ (layout: afss_utils.datasets.open_spark).",
    )
    instances = coco.load_instances(ann_file)
    image_dir = _need_dir([root / "images" / stem, root / "images"], instances, what)
    return Dataset(name or "spark", instances, image_dir, ann_file)


def open_tango(
    root: str | os.PathLike,
    split: str,
    name: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """TANGO (``Tango_RoI_and_SS``) in the authors' layout.

    ``{root}/annotations/instances_{train,val}_tango.json``, images in ``{root}/images/{train,val}/``,
    GT masks as shipped with the dataset: ``{root}/train_SS_img/`` (train) and
    ``{root}/test_SS_img/`` (test), named ``<stem>_mask.png`` (or ``<stem>_mask<image suffix>``),
    RGB with R = spacecraft, G = Earth, B = deep space; only R is used. A ``mask_file`` field in
    an image entry (relative to ``root``) takes precedence.
    """
    root = Path(root)
    stem = "train" if split == "train" else "val"
    what = f"TANGO {split} split"
    ann_file = _need_file(
        root / "annotations" / f"instances_{stem}_tango.json",
        what,
        f"Place the authors' json files ({AUTHORS_JSON_URL}) in {root / 'annotations'}/ and the "
        f"images in {root / 'images' / stem}/ (layout: afss_utils.datasets.open_tango).",
    )
    instances = coco.load_instances(ann_file)
    image_dir = _need_dir([root / "images" / stem, root / "images"], instances, what)
    mask_dir = root / ("train_SS_img" if split == "train" else "test_SS_img")

    def candidates(img: dict) -> list[Path]:
        fname = Path(img["file_name"])
        return [
            *_mask_file_field(root, img),
            mask_dir / f"{fname.stem}_mask.png",
            mask_dir / f"{fname.stem}_mask{fname.suffix}",
        ]

    instances = _with_masks_from_files(instances, candidates, 0, ann_file, what, cache_dir)
    return Dataset(name or "tango", instances, image_dir, ann_file)


# ---------------------------------------------------------------------------- params entries
def _spec_get(spec: dict, key: str) -> Any:
    if key not in spec or spec[key] in (None, ""):
        layout = spec.get("layout", "?")
        raise DatasetSpecError(
            f"dataset spec {spec.get('name', spec)!r} (layout '{layout}') lacks key '{key}'; "
            f"layout '{layout}' needs: {', '.join(_LAYOUT_KEYS.get(layout, ['layout']))}"
        )
    return spec[key]


_LAYOUT_KEYS = {
    "synthetic": ["domain"],
    "coco": ["train", "test"],
    "speedplus": ["root", "domain"],
    "spark": ["root"],
    "tango": ["root"],
    "spark2022": ["root"],
}


def mask_cache_dir() -> Path:
    """Where :func:`open_split` keeps the paper layouts' jsons with their PNG masks attached:
    ``{AFSS_CACHE or <repo>/.cache}/gt_masks``."""
    from afss_utils.config import cache_dir

    return cache_dir() / "gt_masks"


def open_split(
    spec: dict,
    split: str,
    data_dir: str | os.PathLike = ".",
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """Open one params ``datasets`` entry's ``split`` ('train' | 'val' | 'test') as a :class:`Dataset`.

    Relative paths in ``spec`` are taken relative to ``data_dir`` (absolute ones are kept). The
    dataset's name is ``spec['name']``. Layouts and their keys: see the module docstring.
    Missing files raise DatasetNotFoundError saying which file to place where; an unknown layout
    or a missing key raises DatasetSpecError naming it. ``cache_dir`` (default
    :func:`mask_cache_dir`) keeps mask-converted jsons (SPEED+, TANGO) between runs and notebooks:
    decoding thousands of full-size mask PNGs is the slow part of opening them.
    """
    if not isinstance(spec, dict):
        raise DatasetSpecError(f"a datasets entry must be a mapping, got {spec!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got '{split}'")
    layout = _spec_get(spec, "layout")
    if layout not in LAYOUTS:
        raise DatasetSpecError(
            f"dataset spec {spec.get('name', spec)!r}: unknown layout '{layout}' (key 'layout'; "
            f"known: {', '.join(LAYOUTS)})"
        )
    for key in _LAYOUT_KEYS[layout]:
        _spec_get(spec, key)
    data_dir = Path(data_dir)
    name = spec.get("name") or layout

    if layout == "synthetic":
        return _open_synthetic(data_dir, split, spec["domain"], name)
    if split == "val" and spec.get("val") is None:
        # Model selection (best TTA setting, theta) must never look at the test split, and the
        # authors' layouts ship only train and test: a labelled validation set is the user's.
        raise NoValidationSplitError(
            f"dataset '{name}' ({layout} layout) has no validation split: give its entry a "
            "'val' key naming a COCO annotations file (relative to data_dir), or the stages "
            "that select settings use the params as given"
        )
    if layout == "coco" or split == "val":
        ann_file = _need_file(
            data_dir / spec[split], f"dataset '{name}' {split} split (key '{split}')"
        )
        images = spec.get("images")
        if isinstance(images, dict):
            images = images.get(split)
        return open_coco(ann_file, None if images is None else data_dir / images, name=name)
    root = data_dir / spec["root"]
    cache_dir = mask_cache_dir() if cache_dir is None else cache_dir
    if layout == "speedplus":
        return open_speedplus(root, spec["domain"], split, name=name, cache_dir=cache_dir)
    if layout == "spark":
        return open_spark(root, split, name=name)
    if layout == "spark2022":
        return open_spark2022(root, split, name=name)
    return open_tango(root, split, name=name, cache_dir=cache_dir)


def _open_synthetic(data_dir: Path, split: str, domain: str, name: str) -> Dataset:
    ann_file = _need_file(
        data_dir / split / "annotations.json",
        f"synthetic {split} set",
        f"Generate it first: run notebook 00_datasets (python -m afss_utils.run --only 00) "
        f"with data_dir={data_dir}.",
    )
    pooled = open_coco(ann_file, name=name)
    ids = [img["id"] for img in pooled.instances["images"] if img.get("domain") == domain]
    if not ids:
        present = sorted({str(img.get("domain")) for img in pooled.instances["images"]})
        raise DatasetNotFoundError(
            f"{ann_file}: no images with domain '{domain}' (domains present: {', '.join(present)}); "
            "regenerate the synthetic data with this domain in params `datasets`"
        )
    return pooled.subset(ids, name)


# ---------------------------------------------------------------------------- image checks
@dataclass
class ImageProblem:
    """One image that cannot be used: its id, file and why."""

    image_id: int
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"image {self.image_id}: {self.reason}"


def check_images(
    dataset: Dataset, skip_missing: bool = False, decode: bool = False
) -> tuple[list[int], list[ImageProblem]]:
    """Check every image of ``dataset`` exists, opens, and has the size its json entry states.

    Returns (ids of usable images, problems). With ``skip_missing`` False any problem raises
    ImageReadError listing them; with True the problems are returned (and warned about) so the
    caller can go on with ``dataset.subset(ok_ids)``. ``decode`` reads every pixel (slower; finds
    truncated files that a header check misses).
    """
    ok: list[int] = []
    problems: list[ImageProblem] = []
    for image_id in bar(
        dataset.image_ids,
        desc=f"checking {dataset.name}",
        progress=len(dataset) >= 200,
        leave=False,
    ):
        info = dataset.image_info(image_id)
        path = dataset.image_path(image_id)
        try:
            if decode:
                h, w = read_image(path).shape[:2]
            else:
                if not path.is_file():
                    raise ImageReadError(f"image not found: {path}")
                try:
                    with Image.open(path) as im:
                        w, h = im.size
                except (UnidentifiedImageError, OSError, ValueError, ImportError) as exc:
                    raise ImageReadError(f"cannot read image {path}: {exc}") from exc
        except ImageReadError as exc:
            problems.append(ImageProblem(image_id, path, str(exc)))
            continue
        if (w, h) != (info["width"], info["height"]):
            reason = f"{path} is {w}x{h} but the json says {info['width']}x{info['height']}"
            problems.append(ImageProblem(image_id, path, reason))
            continue
        ok.append(image_id)
    if problems:
        head = "; ".join(map(str, problems[:5])) + (" ..." if len(problems) > 5 else "")
        msg = (
            f"{len(problems)} of {len(dataset)} images of dataset '{dataset.name}' unusable: {head}"
        )
        if not skip_missing:
            raise ImageReadError(msg + " (pass skip_missing=True to skip them)")
        warnings.warn(msg + " - skipped", stacklevel=2)
    return ok, problems


def pool(parts: list[Dataset], name: str = "pooled") -> Dataset:
    """One Dataset holding the images of ``parts`` (e.g. the domains of a synthetic split).

    The parts must share one image folder and have distinct image ids, which holds for the
    views ``open_split`` gives of one pooled synthetic split; real datasets are trained one by
    one (``pool_training: false``) and never pooled.
    """
    if not parts:
        raise ValueError("pool() needs at least one dataset")
    folders = {p.image_dir.resolve() for p in parts}
    if len(folders) > 1:
        raise ValueError(
            f"cannot pool datasets with different image folders ({', '.join(map(str, folders))}); "
            "set pool_training: false to train one student per dataset"
        )
    images, annotations, seen = [], [], set()
    for part in parts:
        clash = seen.intersection(part.image_ids)
        if clash:
            raise ValueError(f"cannot pool: image id {min(clash)} appears in two datasets")
        seen.update(part.image_ids)
        images += part.instances["images"]
        annotations += part.instances["annotations"]
    instances = coco.make_instances(images, annotations)
    return Dataset(name, instances, parts[0].image_dir, parts[0].annotation_file)


# ---------------------------------------------------------------------------- SPARK 2022
# Stream 1 of the SPARK 2022 challenge (the ResNet18 center-detector report's data): 11 classes
# (10 satellites + debris), one object per image, labels in a csv per split.
SPARK2022_SPLITS = {"train": "train", "test": "val"}  # the challenge's test labels are private


def _spark2022_bbox(text: str, where: str) -> list[float]:
    """``"[y1, x1, y2, x2]"`` (brackets or parentheses, commas or spaces) -> xyxy floats."""
    parts = text.strip().strip("[]()").replace(",", " ").split()
    if len(parts) != 4:
        raise DatasetSpecError(f"{where}: bbox {text!r} is not [y1, x1, y2, x2]")
    y1, x1, y2, x2 = map(float, parts)
    return [x1, y1, x2, y2]


def open_spark2022(root: str | os.PathLike, split: str, name: str | None = None) -> Dataset:
    """SPARK 2022 Stream 1 (classification + detection) as the study's COCO view.

    ``{root}/{train,val}.csv`` (or ``{root}/labels/{train,val}.csv``) with columns ``filename``
    (or ``image``), ``class`` and ``bbox`` given as ``[y1, x1, y2, x2]`` pixels (rows, columns);
    images in ``{root}/{train,val}/{class}/{filename}`` or ``{root}/{train,val}/{filename}``.
    The study's ``test`` split is the challenge's ``val``. Categories are the class names
    (sorted, ids 1..); every annotation keeps its ``category_id``, and each image entry records
    its ``class``. Boxes only (``has_masks`` False).
    """
    import csv

    root = Path(root)
    stem = SPARK2022_SPLITS[split]
    what = f"SPARK 2022 {split} split"
    candidates = [root / f"{stem}.csv", root / "labels" / f"{stem}.csv"]
    csv_file = next((p for p in candidates if p.is_file()), None)
    if csv_file is None:
        raise DatasetNotFoundError(
            f"{what}: no labels csv (looked for {', '.join(map(str, candidates))}); place the "
            "challenge's csv there (layout: afss_utils.datasets.open_spark2022)."
        )
    with open(csv_file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    image_dir = root / stem
    images, annotations, classes = [], [], sorted({r.get("class", "") for r in rows})
    ids = {c: k + 1 for k, c in enumerate(classes)}
    for i, row in enumerate(rows, 1):
        where = f"{csv_file}: row {i}"
        fname = row.get("filename") or row.get("image")
        if not fname or not row.get("class") or not row.get("bbox"):
            raise DatasetSpecError(f"{where}: needs columns filename (or image), class, bbox")
        rel = Path(row["class"]) / fname
        if not (image_dir / rel).is_file():
            rel = Path(fname)
        path = image_dir / rel
        if not path.is_file():
            raise DatasetNotFoundError(
                f"{where}: image not found at {image_dir / row['class'] / fname} or {path}"
            )
        with Image.open(path) as im:
            w, h = im.size
        box = np.array(_spark2022_bbox(row["bbox"], where))
        images.append(coco.make_image(i, rel.as_posix(), w, h, **{"class": row["class"]}))
        ann = coco.make_annotation(i, i, box_xyxy=box)
        ann["category_id"] = ids[row["class"]]
        annotations.append(ann)
    instances = coco.make_instances(images, annotations)
    instances["categories"] = [{"id": ids[c], "name": c, "supercategory": "space"} for c in classes]
    return Dataset(name or "spark2022", instances, image_dir, csv_file)


# ----------------------------------------------------------------------------- opening a path
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def image_folder_dataset(folder: str | os.PathLike, name: str | None = None) -> Dataset:
    """An unlabelled Dataset of the images in ``folder`` (sorted by name, ids 1..n).

    Only the image headers are read (for width/height); errors name the file.
    """
    folder = Path(folder)
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    images = []
    for i, path in enumerate(files, 1):
        try:
            with Image.open(path) as im:
                width, height = im.size
        except (OSError, ValueError) as exc:
            raise ImageReadError(f"cannot read image {path}: {exc}") from exc
        images.append(coco.make_image(i, path.name, width, height))
    return Dataset(name or folder.name, coco.make_instances(images, []), folder)


def open_dataset(path: str | os.PathLike, image_dir: str | os.PathLike | None = None) -> Dataset:
    """A COCO instances json (images in ``image_dir`` or ``images/`` beside it) or an image folder."""
    path = Path(path)
    if path.is_dir():
        return image_folder_dataset(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset not found: {path} (a COCO json or an image folder)")
    return open_coco(path, image_dir)
