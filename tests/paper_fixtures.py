"""Everything ``params/paper.yaml`` expects a researcher to have, in miniature, built offline.

- :func:`build_datasets`: SPEED+ (lightbox, sunlamp), SPARK-2024 and TANGO roots in the authors'
  layouts (``afss_utils.datasets`` module docstring), a few rendered images each: boxes-only
  COCO jsons as the authors publish them, GT masks where each dataset ships them (SPEED+ binary
  PNGs, TANGO RGB ``*_mask.png`` with R = spacecraft, none for SPARK).
- :func:`build_hf_cache`: the tiny random-init VLMs of :mod:`tiny_models` placed in a Hugging Face
  hub cache under the real model ids that ``teacher_options.paper`` names, so the teachers
  resolve them exactly as they would resolve a downloaded checkpoint (``HF_HOME`` + offline).
- :func:`build_student_weights`: a YOLO11n-seg ``.pt`` and an EfficientDet-D0 COCO-shaped
  state dict (90 classes), random-init, where paper.yaml's students start from.

Usage: see tests/test_paper_path.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from afss_utils import coco, synthetic
from afss_utils.config import named_grid

SIZE = (96, 64)  # W, H of the fixture images: not square, so a transposed mask is caught
# the fixture datasets and the synthetic domain that stands in for each one's images
SPECS = {
    "lightbox": "lightbox",
    "sunlamp": "sunlamp",
    "spark": "earth",
    "tango": "earth",
}
FAKE_REVISION = "0" * 40  # the snapshot folder a hub cache keeps a model's files in


def _render(work: Path, domain: str, n: int, seed: int) -> dict:
    ann = synthetic.generate(work / f"{domain}_{seed}", [domain], n, seed, SIZE, progress=False)
    return coco.read_json(ann) | {"_dir": str(ann.parent)}


def _write_split(root: Path, json_name: str, image_folder: str, rendered: dict, mask_file) -> None:
    """One split: images copied into ``root/images/<image_folder>``, a boxes-only json in
    ``root/annotations/<json_name>``, and each GT mask where ``mask_file(stem)`` says (None: no
    masks, as SPARK)."""
    image_dir = root / "images" / image_folder
    image_dir.mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for img in rendered["images"]:
        src = Path(rendered["_dir"]) / "images" / img["file_name"]
        shutil.copyfile(src, image_dir / img["file_name"])
        images.append(coco.make_image(img["id"], img["file_name"], img["width"], img["height"]))
    for ann in rendered["annotations"]:
        mask = coco.rle_to_mask(ann["segmentation"])
        stem = Path(next(i for i in images if i["id"] == ann["image_id"])["file_name"]).stem
        x, y, w, h = ann["bbox"]
        anns.append(
            {
                "id": ann["id"],
                "image_id": ann["image_id"],
                "category_id": 1,
                "bbox": [x, y, w, h],
                "area": w * h,  # the authors' jsons carry boxes only
                "iscrowd": 0,
            }
        )
        if mask_file is not None:
            path = mask_file(stem)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask_file.pixels(mask)).save(path)
    coco.save_json(coco.make_instances(images, anns), root / "annotations" / json_name)


class _Masks:
    """Where a dataset keeps an image's GT mask and how its pixels encode it."""

    def __init__(self, folder: Path, suffix: str, rgb: bool):
        self.folder, self.suffix, self.rgb = folder, suffix, rgb

    def __call__(self, stem: str) -> Path:
        return self.folder / f"{stem}{self.suffix}"

    def pixels(self, mask: np.ndarray) -> np.ndarray:
        gray = mask.astype(np.uint8) * 255
        if not self.rgb:
            return gray
        rgb = np.zeros((*mask.shape, 3), np.uint8)
        rgb[..., 0] = gray  # R = spacecraft; G (Earth) and B (space) unused by the study
        rgb[..., 2] = 255 - gray
        return rgb


def build_datasets(data_dir: str | Path, n_train: int = 6, n_test: int = 2) -> list[dict]:
    """Write the four paper datasets under ``data_dir``; returns paper.yaml's ``datasets`` list
    (the same roots, so the caller can check them against the params)."""
    data_dir = Path(data_dir)
    work = data_dir / ".render"
    for k, (name, domain) in enumerate(SPECS.items()):
        train = _render(work, domain, n_train, seed=10 + k)
        test = _render(work, domain, n_test, seed=20 + k)
        if name in ("lightbox", "sunlamp"):
            root = data_dir / "speedplus_dataset"
            for stem, rendered in ((f"train_{name}_500", train), (f"val_{name}", test)):
                masks = _Masks(root / "masks" / stem, ".png", rgb=False)
                _write_split(root, f"instances_{stem}.json", stem, rendered, masks)
        elif name == "spark":
            root = data_dir / "spark_dataset"
            _write_split(root, "instances_train_target_500.json", "train_target_500", train, None)
            _write_split(root, "instances_val_target_1600.json", "val_target_1600", test, None)
        else:
            root = data_dir / "Tango_RoI_and_SS"
            _write_split(
                root,
                "instances_train_tango.json",
                "train",
                train,
                _Masks(root / "train_SS_img", "_mask.png", rgb=True),
            )
            _write_split(
                root,
                "instances_val_tango.json",
                "val",
                test,
                _Masks(root / "test_SS_img", "_mask.png", rgb=True),
            )
    shutil.rmtree(work)
    return [
        {"name": "spark", "layout": "spark", "root": "spark_dataset"},
        {
            "name": "sunlamp",
            "layout": "speedplus",
            "domain": "sunlamp",
            "root": "speedplus_dataset",
        },
        {
            "name": "lightbox",
            "layout": "speedplus",
            "domain": "lightbox",
            "root": "speedplus_dataset",
        },
        {"name": "tango", "layout": "tango", "root": "Tango_RoI_and_SS"},
    ]


def _hub_dir(hf_home: Path, model_id: str) -> Path:
    """The snapshot folder of ``model_id`` in the hub cache of ``hf_home`` (huggingface_hub's
    layout: ``hub/models--owner--name/{refs/main, snapshots/<revision>/}``)."""
    repo = hf_home / "hub" / ("models--" + model_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(FAKE_REVISION)
    return repo / "snapshots" / FAKE_REVISION


def build_hf_cache(hf_home: str | Path, options: str = "paper") -> dict[str, Path]:
    """Put a tiny model under every hub id that ``teacher_options.<options>`` names (detectors
    and segmenters); returns {model id: snapshot folder}. Set ``HF_HOME`` to ``hf_home``."""
    from tiny_models import build_grounding_dino, build_owlv2, build_sam2

    builders = {"grounding-dino": build_grounding_dino, "owlv2": build_owlv2, "sam2": build_sam2}
    ids = sorted(
        {
            source
            for teacher in named_grid("teacher_options", options).values()
            for key in ("detector", "segmenter")
            if (source := (teacher or {}).get(key))
        }
    )
    built = {}
    for model_id in ids:
        kind = next(k for k in builders if k in model_id)
        built[model_id] = builders[kind](_hub_dir(Path(hf_home), model_id))
    return built


def build_student_weights(folder: str | Path) -> dict[str, Path]:
    """Random-init stand-ins for the students' official COCO checkpoints: ``yolo11n-seg.pt`` (an
    ultralytics checkpoint, 80 classes) and ``efficientdet_d0.pth`` (effdet's 90-class
    ``efficientdet_d0`` state dict). Returns {"yolo": path, "efficientdet": path}."""
    import torch
    from effdet import create_model

    from afss_utils.config import import_ultralytics

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    yolo = folder / "yolo11n-seg.pt"
    import_ultralytics().YOLO("yolo11n-seg.yaml").save(yolo)
    effdet = folder / "efficientdet_d0.pth"
    net = create_model(
        "efficientdet_d0", pretrained=False, pretrained_backbone=False, num_classes=90
    )
    torch.save(net.state_dict(), effdet)
    return {"yolo": yolo, "efficientdet": effdet}
