"""The type-classification metrics and the report's staged grid search (afss_utils.classification)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_centernet import make_rects  # tests/ is on sys.path (conftest)

from afss_utils.classification import (
    agnostic_box_ap,
    classification_metrics,
    first_per_domain,
    grid_search,
    staged_grid,
    train_for_steps,
)
from afss_utils.datasets import open_coco
from afss_utils.students.centernet import CenterNetStudent


def test_classification_metrics_by_hand_and_empty():
    gt = {
        "images": [
            {"id": i, "width": 64, "height": 64, "file_name": f"{i}.png"} for i in (1, 2, 3)
        ],
        "annotations": [
            {"id": i, "image_id": i, "category_id": c, "bbox": [0, 0, 10, 10]}
            for i, c in ((1, 1), (2, 2), (3, 2))
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    preds = [
        {"image_id": 1, "category_id": 1, "score": 0.9, "bbox": [0, 0, 10, 10], "cell": [0, 0]},
        {"image_id": 1, "category_id": 2, "score": 0.1, "bbox": [0, 0, 10, 10], "cell": [1, 1]},
        {"image_id": 2, "category_id": 1, "score": 0.8, "bbox": [0, 0, 10, 10], "cell": [1, 1]},
    ]  # image 3 has no detection: wrong
    m = classification_metrics(gt, preds, imgsz=64)
    assert m["accuracy"] == pytest.approx(1 / 3) and m["cell_accuracy"] == pytest.approx(1 / 3)
    assert m["per_class"] == {"a": 1.0, "b": 0.0}
    assert m["confusion"].tolist() == [[1, 0], [1, 0]]
    empty = classification_metrics({**gt, "images": [], "annotations": []}, [], 64)
    assert empty["accuracy"] == 0.0 and empty["num_images"] == 0


def test_staged_grid_stages_and_search_uses_validation(tmp_path: Path, ray_local):
    full = {
        "lr": [1e-4, 3e-4],
        "weight_decay": [1e-4, 1e-5],
        "sigma": [0.3, 0.5, 0.7],
        "pos_weight": [6, 8, 10],
        "box_weight": [3, 5, 8],
    }
    assert staged_grid(full) == [
        ["lr", "weight_decay"],
        ["sigma", "pos_weight"],
        ["pos_weight", "box_weight"],
    ]
    assert staged_grid({"sigma": [0.5]}) == [["sigma"]]
    train = open_coco(make_rects(tmp_path / "train", 4))
    val = open_coco(make_rects(tmp_path / "val", 2, seed=1))

    def make(**hyper):
        return CenterNetStudent(imgsz=64, batch=4, epochs=1, **hyper)

    # the trials of a stage run as Ray tasks, each training into its own folder
    best, rows = grid_search(
        make, (train.instances, train.image_dir), val, {"lr": [1e-4, 3e-4]}, tmp_path / "gs"
    )
    assert [r["lr"] for r in rows] == [1e-4, 3e-4] and [r["trial"] for r in rows] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "gs").iterdir()) == ["trial01", "trial02"]
    assert all((tmp_path / "gs" / f"trial0{i}" / "weights.pt").is_file() for i in (1, 2))
    assert best["lr"] == max(rows, key=lambda r: (r["val_AP"], r["val_cell_accuracy"]))["lr"]
    _, capped = grid_search(
        make, (train.instances, train.image_dir), val, full, tmp_path / "gs2", max_trials=1
    )
    assert len(capped) == 1
    with pytest.raises(KeyError, match="unknown"):
        grid_search(make, (train.instances, train.image_dir), val, {"lrr": [1]}, tmp_path)


def test_agnostic_box_ap_ignores_the_class():
    gt = {
        "images": [{"id": 1, "width": 64, "height": 64, "file_name": "1.png"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 2, "bbox": [8, 8, 20, 20], "area": 400,
             "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }  # fmt: skip
    wrong_type = [{"image_id": 1, "category_id": 1, "score": 0.9, "bbox": [8, 8, 20, 20]}]
    assert agnostic_box_ap(gt, wrong_type)["AP"] == pytest.approx(100.0)
    assert agnostic_box_ap(gt, []) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}  # no detection


def test_first_per_domain_nests_and_keeps_annotations():
    images = [
        {"id": i, "domain": d, "width": 8, "height": 8, "file_name": f"{i}.png"}
        for i, d in enumerate(["a", "b", "a", "b", "a", "b"], 1)
    ]
    gt = {"images": images, "annotations": [{"id": i, "image_id": i} for i in range(1, 7)]}
    two = first_per_domain(gt, 2)
    assert [i["id"] for i in two["images"]] == [1, 2, 3, 4]
    assert [a["image_id"] for a in two["annotations"]] == [1, 2, 3, 4]
    one = first_per_domain(gt, 1)
    assert {i["id"] for i in one["images"]} <= {i["id"] for i in two["images"]}  # nested
    assert first_per_domain(gt, 0)["images"] == [] and first_per_domain(gt, 9) == gt


@pytest.mark.parametrize("n_images, steps", [(8, 8), (4, 8), (8, 3)])
def test_train_for_steps_takes_the_budget_whatever_the_set_size(tmp_path: Path, n_images, steps):
    """8 steps on 8 images (batch 2: 4 per epoch, 2 epochs) or on 4 (2 per epoch, 4 epochs);
    a budget the epochs cannot divide is rounded to whole epochs (3 -> 1 epoch of 4)."""
    from afss_utils.distill import optimiser_steps

    ds = open_coco(make_rects(tmp_path / "rects", n_images))
    student = CenterNetStudent(imgsz=64, batch=2, seed=0)
    taken = optimiser_steps(
        lambda: train_for_steps(student, ds.instances, ds.image_dir, tmp_path / "o", steps, 2)
    )
    per_epoch = n_images // 2
    expected = max(1, round(steps / per_epoch)) * per_epoch
    assert taken == expected and len(student.history) == expected // per_epoch
    assert student.warmup_epochs == 2 / per_epoch
