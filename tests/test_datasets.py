"""Dataset views and the adapters for the paper's layouts, on tiny fixtures written to tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from afss_utils import coco
from afss_utils.datasets import (
    Dataset,
    DatasetNotFoundError,
    DatasetSpecError,
    ImageReadError,
    check_images,
    open_coco,
    open_spark,
    open_speedplus,
    open_split,
    open_tango,
    read_mask,
)

SIZE = (32, 24)  # W, H: not square, so a transposed mask would be caught


def _box_mask(i: int) -> np.ndarray:
    """(H, W) bool: a rectangle that differs per image index."""
    m = np.zeros(SIZE[::-1], bool)
    m[3 + i : 15 + i, 5 + i : 20] = True
    return m


def _write_split(
    root: Path,
    json_name: str,
    image_folder: str,
    n: int = 3,
    ext: str = ".png",
    with_segmentation: bool = False,
) -> list[dict]:
    """Write ``root/annotations/<json_name>`` (boxes, no masks) and n images; return images."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "images" / image_folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(json_name))
    images, anns = [], []
    for i in range(n):
        name = f"img{i:03d}{ext}"
        pixels = rng.integers(0, 255, (*SIZE[::-1], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / image_folder / name)
        images.append(coco.make_image(10 + i, name, *SIZE))
        mask = _box_mask(i)
        ann = coco.make_annotation(100 + i, 10 + i, mask=mask)
        if not with_segmentation:
            del ann["segmentation"]
            ann["area"] = ann["bbox"][2] * ann["bbox"][3]
        anns.append(ann)
    coco.save_json(coco.make_instances(images, anns), root / "annotations" / json_name)
    return images


def _save_binary(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def _check_masks(ds: Dataset) -> None:
    for k, image_id in enumerate(ds.image_ids):
        (ann,) = ds.annotations(image_id)
        got = coco.rle_to_mask(ann["segmentation"])
        np.testing.assert_array_equal(got, _box_mask(k))
        assert ann["area"] == _box_mask(k).sum()
        assert isinstance(ann["segmentation"]["counts"], str)


# ---------------------------------------------------------------------------- generic COCO
def test_open_coco_ids_paths_gt(tiny_coco):
    ds = open_coco(tiny_coco)
    assert ds.image_ids == [1, 2, 3, 4]
    assert len(ds) == 4 and list(ds) == [1, 2, 3, 4]
    assert ds.image_path(2) == tiny_coco.parent / "images" / "img_01.png"
    assert ds.load_image(1).shape == (32, 32, 3)
    assert ds.has_masks
    (ann,) = ds.annotations(3)
    assert ann["bbox"] == [6.0, 6.0, 16.0, 16.0]
    mask = coco.rle_to_mask(ann["segmentation"])
    assert mask.sum() == 256 and mask[6:22, 6:22].all()


def test_open_coco_file_names_with_folder_prefix(tiny_coco):
    data = coco.read_json(tiny_coco)
    for img in data["images"]:
        img["file_name"] = "images/" + img["file_name"]
    path = coco.save_json(data, tiny_coco.parent / "prefixed.json")
    ds = open_coco(path)
    assert ds.image_dir == tiny_coco.parent
    assert ds.load_image(1).shape == (32, 32, 3)


def test_empty_dataset(tmp_path):
    path = coco.save_json(coco.make_instances([], []), tmp_path / "empty.json")
    ds = open_coco(path)
    assert len(ds) == 0 and ds.image_ids == [] and not ds.has_masks
    assert check_images(ds) == ([], [])


def test_load_image_names_missing_file(tiny_coco):
    ds = open_coco(tiny_coco)
    ds.image_path(1).unlink()
    with pytest.raises(ImageReadError, match="img_00.png"):
        ds.load_image(1)


# ---------------------------------------------------------------------------- SPEED+
@pytest.fixture
def speedplus_root(tmp_path) -> Path:
    root = tmp_path / "speedplus_dataset"
    for domain in ("sunlamp", "lightbox"):
        for stem in (f"train_{domain}_500", f"val_{domain}"):
            for img in _write_split(root, f"instances_{stem}.json", stem):
                k = img["id"] - 10
                _save_binary(root / "masks" / stem / f"img{k:03d}.png", _box_mask(k))
    return root


def test_speedplus_masks_from_pngs(speedplus_root):
    ds = open_speedplus(speedplus_root, "sunlamp", "train")
    assert ds.name == "speedplus_sunlamp"
    assert ds.image_ids == [10, 11, 12]
    assert ds.image_path(11) == speedplus_root / "images" / "train_sunlamp_500" / "img001.png"
    assert ds.load_image(12).shape == (SIZE[1], SIZE[0], 3)
    assert ds.has_masks
    _check_masks(ds)
    # the published box is kept, not recomputed
    assert ds.annotations(10)[0]["bbox"] == [5.0, 3.0, 15.0, 12.0]
    test = open_speedplus(speedplus_root, "lightbox", "test", name="lbox")
    assert test.name == "lbox" and test.image_dir.name == "val_lightbox" and test.has_masks


def test_speedplus_readme_folder_and_authors_mask_layout(tmp_path):
    # The authors' README names the folder train_sunlamp; their eval script reads
    # masks/<domain>/masks/<file_name>.
    root = tmp_path / "speedplus_dataset"
    images = _write_split(root, "instances_train_sunlamp_500.json", "train_sunlamp")
    for img in images:
        _save_binary(
            root / "masks" / "sunlamp" / "masks" / img["file_name"], _box_mask(img["id"] - 10)
        )
    ds = open_speedplus(root, "sunlamp", "train")
    assert ds.image_dir == root / "images" / "train_sunlamp"
    _check_masks(ds)


def test_speedplus_mask_file_field(tmp_path):
    root = tmp_path / "speedplus_dataset"
    _write_split(root, "instances_val_sunlamp.json", "val_sunlamp")
    path = root / "annotations" / "instances_val_sunlamp.json"
    data = coco.read_json(path)
    for img in data["images"]:
        img["mask_file"] = f"elsewhere/{img['id']}.png"
        _save_binary(root / img["mask_file"], _box_mask(img["id"] - 10))
    coco.save_json(data, path)
    _check_masks(open_speedplus(root, "sunlamp", "test"))


def test_speedplus_json_segmentation_used_as_is(tmp_path):
    root = tmp_path / "speedplus_dataset"
    _write_split(root, "instances_val_lightbox.json", "val_lightbox", with_segmentation=True)
    ds = open_speedplus(root, "lightbox", "test")  # no mask files at all: the json's are used
    _check_masks(ds)


def test_speedplus_without_masks_is_box_only(tmp_path):
    root = tmp_path / "speedplus_dataset"
    _write_split(root, "instances_val_sunlamp.json", "val_sunlamp")
    with pytest.warns(UserWarning, match="box-only"):
        ds = open_speedplus(root, "sunlamp", "test")
    assert not ds.has_masks and len(ds) == 3


def test_speedplus_partial_masks_name_the_missing_file(speedplus_root):
    (speedplus_root / "masks" / "val_sunlamp" / "img001.png").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 of 3 .*val_sunlamp/img001\.png"):
        open_speedplus(speedplus_root, "sunlamp", "test")


def test_speedplus_mask_size_mismatch_names_file(speedplus_root):
    _save_binary(speedplus_root / "masks" / "val_sunlamp" / "img002.png", np.ones((8, 8), bool))
    with pytest.raises(coco.CocoFormatError, match=r"img002\.png: mask is 8x8"):
        open_speedplus(speedplus_root, "sunlamp", "test")


def test_speedplus_missing_json_says_where(tmp_path):
    with pytest.raises(DatasetNotFoundError) as exc:
        open_speedplus(tmp_path / "speedplus_dataset", "sunlamp", "test")
    msg = str(exc.value)
    assert "annotations/instances_val_sunlamp.json" in msg and "images/val_sunlamp" in msg
    with pytest.raises(DatasetSpecError, match="domain"):
        open_speedplus(tmp_path, "earth", "test")


def test_speedplus_missing_image_folder(tmp_path):
    root = tmp_path / "speedplus_dataset"
    _write_split(root, "instances_val_sunlamp.json", "val_sunlamp")
    for f in (root / "images" / "val_sunlamp").iterdir():
        f.unlink()
    (root / "images" / "val_sunlamp").rmdir()
    (root / "images").rmdir()
    with pytest.raises(DatasetNotFoundError, match="images/val_sunlamp"):
        open_speedplus(root, "sunlamp", "test")


def test_speedplus_mask_cache(speedplus_root, tmp_path):
    cache = tmp_path / "cache"
    open_speedplus(speedplus_root, "sunlamp", "train", cache_dir=cache)
    (cached,) = cache.glob("instances_train_sunlamp_500.*.with_masks.json")
    for f in (speedplus_root / "masks" / "train_sunlamp_500").iterdir():
        f.unlink()  # the second open must not need the PNGs
    _check_masks(open_speedplus(speedplus_root, "sunlamp", "train", cache_dir=cache))
    # another copy of the dataset (same json name, other folder) gets its own cache file
    other = tmp_path / "elsewhere" / "speedplus_dataset"
    for stem in ("train_sunlamp_500", "val_sunlamp"):
        for img in _write_split(other, f"instances_{stem}.json", stem):
            _save_binary(other / "masks" / stem / img["file_name"], _box_mask(img["id"] - 10))
    open_speedplus(other, "sunlamp", "train", cache_dir=cache)
    assert len(list(cache.glob("instances_train_sunlamp_500.*.with_masks.json"))) == 2
    assert cached.is_file()


def test_open_split_caches_masks_for_every_notebook(speedplus_root, tmp_path, monkeypatch):
    # notebooks call open_split without a cache: the project cache is the default, so only the
    # first notebook decodes the PNGs
    monkeypatch.setenv("AFSS_CACHE", str(tmp_path / "project_cache"))
    spec = {"name": "sun", "layout": "speedplus", "domain": "sunlamp", "root": "speedplus_dataset"}
    open_split(spec, "train", speedplus_root.parent)
    assert list((tmp_path / "project_cache" / "gt_masks").glob("*.with_masks.json"))
    for f in (speedplus_root / "masks" / "train_sunlamp_500").iterdir():
        f.unlink()
    _check_masks(open_split(spec, "train", speedplus_root.parent))


# ---------------------------------------------------------------------------- SPARK-2024
def test_spark_boxes_only(tmp_path):
    root = tmp_path / "spark_dataset"
    _write_split(root, "instances_train_target_500.json", "train_target_500", ext=".jpg")
    _write_split(root, "instances_val_target_1600.json", "val_target_1600", n=2)
    train = open_spark(root, "train")
    assert train.name == "spark" and train.image_ids == [10, 11, 12]
    assert train.image_path(10) == root / "images" / "train_target_500" / "img000.jpg"
    assert not train.has_masks
    assert train.annotations(11)[0]["bbox"] == [6.0, 4.0, 14.0, 12.0]
    test = open_spark(root, "test")
    assert len(test) == 2 and test.load_image(11).shape == (SIZE[1], SIZE[0], 3)
    # Box-only converters write "segmentation": []; that is not a mask.
    path = root / "annotations" / "instances_val_target_1600.json"
    data = coco.read_json(path)
    for ann in data["annotations"]:
        ann["segmentation"] = []
    coco.save_json(data, path)
    assert not open_spark(root, "test").has_masks


# ---------------------------------------------------------------------------- TANGO
def test_tango_r_channel_masks(tmp_path):
    root = tmp_path / "Tango_RoI_and_SS"
    for stem, mask_dir in (("train", "train_SS_img"), ("val", "test_SS_img")):
        for img in _write_split(root, f"instances_{stem}_tango.json", stem):
            k = img["id"] - 10
            rgb = np.zeros((*SIZE[::-1], 3), np.uint8)
            rgb[..., 0] = _box_mask(k) * 255
            rgb[..., 1] = (~_box_mask(k)) * 255  # Earth everywhere else: must not count
            path = root / mask_dir / f"img{k:03d}_mask.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(path)
    for split, folder in (("train", "train"), ("test", "val")):
        ds = open_tango(root, split)
        assert ds.name == "tango" and ds.image_dir == root / "images" / folder
        assert ds.image_ids == [10, 11, 12] and ds.has_masks
        _check_masks(ds)


def test_read_mask_errors_name_file(tmp_path):
    with pytest.raises(ImageReadError, match="nope.png"):
        read_mask(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="bad.png"):
        read_mask(bad)


# ---------------------------------------------------------------------------- params entries
def test_open_split_synthetic_pooled_by_domain(tiny_coco):
    data_dir = tiny_coco.parent.parent / "synthetic"
    (data_dir / "test").mkdir(parents=True)
    tiny_coco.rename(data_dir / "test" / "annotations.json")
    (tiny_coco.parent / "images").rename(data_dir / "test" / "images")
    ds = open_split({"name": "bee", "layout": "synthetic", "domain": "b"}, "test", data_dir)
    assert ds.name == "bee" and ds.image_ids == [2, 4]
    assert [a["image_id"] for a in ds.instances["annotations"]] == [2, 4]
    assert ds.load_image(4).shape == (32, 32, 3)
    with pytest.raises(DatasetNotFoundError, match=r"domain 'earth' \(domains present: a, b\)"):
        open_split({"name": "x", "layout": "synthetic", "domain": "earth"}, "test", data_dir)
    with pytest.raises(DatasetNotFoundError, match=r"train/annotations\.json.*00_datasets"):
        open_split({"name": "x", "layout": "synthetic", "domain": "a"}, "train", data_dir)


def test_open_split_coco_layout(tiny_coco):
    data_dir = tiny_coco.parent
    spec = {
        "name": "mine",
        "layout": "coco",
        "train": "annotations.json",
        "test": "annotations.json",
    }
    assert open_split(spec, "train", data_dir).image_ids == [1, 2, 3, 4]
    (data_dir / "images").rename(data_dir / "pics")
    spec["images"] = {"train": "pics", "test": "pics"}
    ds = open_split(spec, "test", data_dir)
    assert ds.name == "mine" and ds.load_image(2).shape == (32, 32, 3)
    spec["test"] = "missing.json"
    with pytest.raises(DatasetNotFoundError, match=r"key 'test'.*missing\.json"):
        open_split(spec, "test", data_dir)


def test_open_split_paper_layouts(speedplus_root):
    data_dir = speedplus_root.parent
    spec = {
        "name": "sunlamp",
        "layout": "speedplus",
        "root": "speedplus_dataset",
        "domain": "sunlamp",
    }
    ds = open_split(spec, "test", data_dir)
    assert ds.name == "sunlamp" and ds.has_masks and ds.image_dir.name == "val_sunlamp"
    with pytest.raises(
        DatasetNotFoundError, match="spark_dataset/annotations/instances_val_target_1600.json"
    ):
        open_split({"name": "spark", "layout": "spark", "root": "spark_dataset"}, "test", data_dir)
    with pytest.raises(DatasetNotFoundError, match="instances_train_tango.json"):
        open_split(
            {"name": "tango", "layout": "tango", "root": "Tango_RoI_and_SS"}, "train", data_dir
        )


def test_open_split_spec_errors(tmp_path):
    with pytest.raises(DatasetSpecError, match="unknown layout 'kitti'"):
        open_split({"name": "k", "layout": "kitti"}, "train", tmp_path)
    with pytest.raises(DatasetSpecError, match="lacks key 'layout'"):
        open_split({"name": "k"}, "train", tmp_path)
    with pytest.raises(DatasetSpecError, match="lacks key 'root'"):
        open_split({"name": "s", "layout": "speedplus", "domain": "sunlamp"}, "train", tmp_path)
    with pytest.raises(DatasetSpecError, match="lacks key 'domain'"):
        open_split({"name": "s", "layout": "synthetic"}, "train", tmp_path)
    with pytest.raises(ValueError, match="split"):
        open_split({"name": "s", "layout": "synthetic", "domain": "a"}, "dev", tmp_path)


def test_validation_split_of_the_authors_layouts_is_the_users(tmp_path):
    from afss_utils.datasets import NoValidationSplitError

    # model selection must never fall back to the test split: no val -> a clear error
    spec = {"name": "lb", "layout": "speedplus", "domain": "lightbox", "root": "speedplus"}
    with pytest.raises(NoValidationSplitError, match="'lb' .*no validation split.*'val' key"):
        open_split(spec, "val", tmp_path)
    with pytest.raises(DatasetNotFoundError, match="lb_val.json"):
        open_split({**spec, "val": "lb_val.json"}, "val", tmp_path)
    with pytest.raises(DatasetNotFoundError, match="synthetic val set"):
        open_split({"name": "s", "layout": "synthetic", "domain": "a"}, "val", tmp_path)


def test_default_params_specs_are_valid(tmp_path):
    from afss_utils.config import load_params

    # Well-formed specs get past validation and fail only on the absent data.
    for spec in load_params()["datasets"]:
        with pytest.raises(DatasetNotFoundError, match="annotations.json"):
            open_split(spec, "train", tmp_path)


# ---------------------------------------------------------------------------- image checks
def test_check_images_skip_and_report(tiny_coco):
    ds = open_coco(tiny_coco)
    ds.image_path(1).unlink()
    ds.image_path(2).write_bytes(b"garbage")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(ds.image_path(3))
    with pytest.raises(ImageReadError, match=r"3 of 4 .*img_00\.png"):
        check_images(ds)
    with pytest.warns(UserWarning, match="skipped"):
        ok, problems = check_images(ds, skip_missing=True)
    assert ok == [4]
    assert [p.image_id for p in problems] == [1, 2, 3]
    assert "img_01.png" in str(problems[1]) and "10x10" in str(problems[2])
    assert len(ds.subset(ok)) == 1


def test_check_images_decode_finds_truncated(tiny_coco):
    ds = open_coco(tiny_coco)
    data = ds.image_path(1).read_bytes()
    ds.image_path(1).write_bytes(data[: len(data) // 2])
    ok, problems = check_images(ds)  # the header is intact
    assert ok == [1, 2, 3, 4] and problems == []
    with pytest.warns(UserWarning):
        ok, problems = check_images(ds, skip_missing=True, decode=True)
    assert ok == [2, 3, 4] and "img_00.png" in str(problems[0])


def test_dataset_json_is_not_modified_by_open(speedplus_root):
    path = speedplus_root / "annotations" / "instances_val_sunlamp.json"
    before = json.loads(path.read_text())
    open_speedplus(speedplus_root, "sunlamp", "test")
    assert json.loads(path.read_text()) == before


def test_pool_joins_views_of_one_split(tiny_coco, tmp_path):
    from afss_utils.datasets import pool

    ds = open_coco(tiny_coco)
    a = ds.subset([1, 3], name="a")
    b = ds.subset([2, 4], name="b")
    pooled = pool([a, b])
    assert sorted(pooled.image_ids) == [1, 2, 3, 4]
    assert len(pooled.instances["annotations"]) == 4
    assert pooled.load_image(2).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="appears in two"):
        pool([a, a])
    other = Dataset("other", ds.instances, tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="pool_training"):
        pool([a, other])
    with pytest.raises(ValueError, match="at least one"):
        pool([])


# ---------------------------------------------------------------------------- SPARK 2022


def _spark2022_fixture(root: Path) -> None:
    """Three 40x30 images in SPARK 2022 Stream 1's layout: val.csv + val/<class>/<file>, one
    of them directly in val/; boxes written as [y1, x1, y2, x2]."""
    rows = [("a.png", "debris", "[2, 4, 12, 20]"), ("b.png", "smart_1", "[5, 6, 25, 30]")]
    rows.append(("c.png", "debris", "(0, 0, 30, 40)"))
    lines = ["filename,class,bbox"]
    for i, (fname, cls, bbox) in enumerate(rows):
        folder = root / "val" / (cls if i < 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(folder / fname)
        lines.append(f'{fname},{cls},"{bbox}"')
    (root / "val.csv").write_text("\n".join(lines) + "\n")


def test_spark2022_csv_to_coco_with_class_names(tmp_path: Path):
    from afss_utils.datasets import open_spark2022

    _spark2022_fixture(tmp_path / "spark2022")
    ds = open_split({"name": "s22", "layout": "spark2022", "root": "spark2022"}, "test", tmp_path)
    assert ds.name == "s22" and len(ds) == 3 and not ds.has_masks
    assert [c["name"] for c in ds.instances["categories"]] == ["debris", "smart_1"]
    anns = {ds.image_info(a["image_id"])["file_name"]: a for a in ds.instances["annotations"]}
    assert set(anns) == {"debris/a.png", "smart_1/b.png", "c.png"}
    assert anns["debris/a.png"]["bbox"] == [4.0, 2.0, 16.0, 10.0]  # [y1,x1,y2,x2] -> xywh
    assert anns["c.png"]["bbox"] == [0.0, 0.0, 40.0, 30.0]
    assert [anns[f]["category_id"] for f in sorted(anns)] == [1, 1, 2]
    assert ds.load_image(ds.image_ids[0]).shape == (30, 40, 3)
    assert ds.image_info(ds.image_ids[1])["class"] == "smart_1"
    with pytest.raises(DatasetNotFoundError, match="train.csv"):
        open_spark2022(tmp_path / "spark2022", "train")


def test_spark2022_empty_csv_and_bad_bbox(tmp_path: Path):
    from afss_utils.datasets import open_spark2022

    (tmp_path / "val").mkdir()
    (tmp_path / "val.csv").write_text("filename,class,bbox\n")
    assert len(open_spark2022(tmp_path, "test")) == 0
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "val" / "x.png")
    (tmp_path / "val.csv").write_text('filename,class,bbox\nx.png,debris,"[1, 2, 3]"\n')
    with pytest.raises(DatasetSpecError, match="row 1"):
        open_spark2022(tmp_path, "test")


def test_check_rgb_image_names_what_it_got():
    import numpy as np

    from afss_utils.datasets import check_rgb_image

    ok = np.zeros((2, 3, 3), np.uint8)
    assert check_rgb_image(ok) is ok
    for bad in (np.zeros((2, 3), np.uint8), np.zeros((2, 3, 4), np.uint8), ok.astype(np.uint16)):
        with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB image, got"):
            check_rgb_image(bad)
    with pytest.raises(KeyError):
        check_rgb_image(np.zeros((0, 3, 3), np.uint8), error=KeyError)


def test_image_folder_dataset_and_open_dataset(tiny_coco, tmp_path):
    from afss_utils.datasets import image_folder_dataset, open_dataset

    images = tiny_coco.parent / "images"
    (images / "notes.txt").write_text("not an image")
    ds = image_folder_dataset(images)
    assert ds.image_ids == [1, 2, 3, 4] and not ds.has_masks
    assert [ds.image_info(i)["file_name"] for i in ds.image_ids] == [
        f"img_{i:02d}.png" for i in range(4)
    ]
    assert (ds.image_info(1)["width"], ds.image_info(1)["height"]) == (32, 32)
    assert ds.load_image(2).shape == (32, 32, 3)
    assert open_dataset(images).image_ids == [1, 2, 3, 4]  # a folder: unlabelled
    assert open_dataset(tiny_coco).has_masks  # a COCO json: with its annotations
    with pytest.raises(FileNotFoundError, match="nowhere"):
        open_dataset(tmp_path / "nowhere")
