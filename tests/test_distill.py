"""Label distillation: confidence filtering, pseudo training sets, ultralytics export, TR loop."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from afss_utils import coco
from afss_utils.datasets import open_coco
from afss_utils.distill import (
    PAPER_KEPT_SHARE,
    confidence_filter,
    confidence_filter_by_dataset,
    filter_report,
    images_with_labels,
    optimiser_steps,
    pseudo_instances,
    relabel,
    run_rounds,
    student_init,
    training_epochs,
)


def rec(image_id: int, score: float, box=(6, 4, 22, 20), mask=None) -> dict:
    return coco.result_record(image_id, np.array(box, float), score, mask)


# ---------------------------------------------------------------------------- confidence filter


def test_confidence_filter_number_keeps_scores_at_or_above_theta():
    results = [rec(1, 0.2), rec(2, 0.5), rec(3, 0.9), rec(3, 0.49)]
    kept, theta = confidence_filter(results, 0.5)
    assert theta == 0.5
    assert [r["score"] for r in kept] == [0.5, 0.9]


def test_confidence_filter_mean_rule():
    results = [rec(1, 0.2), rec(2, 0.4), rec(3, 0.9), rec(4, 0.7)]
    kept, theta = confidence_filter(results, "mean")
    assert theta == pytest.approx(0.55)
    assert sorted(r["image_id"] for r in kept) == [3, 4]
    # ties at the mean are kept: the float mean of 0.1 x 3 is 0.10000000000000002, above every
    # score (0.3 x 3 averages to exactly 0.3 and would pass without the tolerance)
    ties = [rec(i, 0.1) for i in (1, 2, 3)]
    assert float(np.mean([r["score"] for r in ties])) > 0.1
    same, theta_same = confidence_filter(ties, "mean")
    assert len(same) == 3 and theta_same == pytest.approx(0.1)
    # the tolerance is 1e-9, rounding noise only: a score 2e-9 under theta is dropped
    # (scores set directly: result_record rounds them to 1e-5)
    near = [{**rec(1, 0.5), "score": 0.5 - 5e-10}, {**rec(2, 0.5), "score": 0.5 - 2e-9}]
    assert [r["image_id"] for r in confidence_filter(near, 0.5)[0]] == [1]


def test_confidence_filter_empty_and_invalid():
    assert confidence_filter([], 0.4) == ([], 0.4)
    kept, theta = confidence_filter([], "mean")
    assert kept == [] and math.isnan(theta)
    with pytest.raises(ValueError, match="median"):
        confidence_filter([rec(1, 0.5)], "median")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        confidence_filter([rec(1, 0.5)], 1.5)


def test_confidence_filter_keep_rule_keeps_the_best_share():
    scores = [0.9, 0.1, 0.5, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, 0.65]
    results = [rec(i, s) for i, s in enumerate(scores)]
    kept, theta = confidence_filter(results, "keep 0.85")  # ceil(8.5) = 9 of 10: all but 0.1
    assert theta == 0.2 and sorted(r["image_id"] for r in kept) == sorted(set(range(10)) - {1})
    kept, theta = confidence_filter(results, "keep 0.3")  # the best 3, in input order
    assert theta == 0.7 and [r["score"] for r in kept] == [0.9, 0.7, 0.8]
    assert confidence_filter(results, "keep 1")[1] == 0.1
    # a share that is exact in decimal but not in binary: 0.85 * 20 is 17.000000000000004
    twenty = [rec(i, i / 20) for i in range(20)]
    assert len(confidence_filter(twenty, "keep 0.85")[0]) == 17
    # ties at theta pass: at least the share is kept, never fewer
    tied = [rec(1, 0.9), rec(2, 0.5), rec(3, 0.5), rec(4, 0.2)]
    assert len(confidence_filter(tied, "keep 0.5")[0]) == 3
    assert len(confidence_filter([rec(1, 0.3)], "keep 0.01")[0]) == 1  # one label is its best


def test_confidence_filter_keep_rule_empty_invalid_and_the_papers_share():
    kept, theta = confidence_filter([], "keep 0.85")
    assert kept == [] and math.isnan(theta)
    for bad in ("keep", "keep 0", "keep 1.2", "keep most", "keep 0.5 0.6", 1.5, True):
        with pytest.raises(ValueError, match="confidence threshold must"):
            confidence_filter([rec(1, 0.5)], bad)
    # Sec. IV-F: 395 + 451 + 417 + 471 of 4 x 500 training images survived the paper's filter
    assert PAPER_KEPT_SHARE == pytest.approx(1734 / 2000)


def test_confidence_filter_by_dataset_keep_rule_is_per_dataset():
    low = [rec(i, 0.1 + 0.01 * i) for i in range(10)]  # dataset a: scores 0.10-0.19
    high = [rec(100 + i, 0.8 + 0.01 * i) for i in range(10)]  # dataset b: 0.80-0.89
    kept, thetas = confidence_filter_by_dataset(
        high + low, "keep 0.5", {"a": range(10), "b": range(100, 110)}
    )
    assert thetas == {"a": pytest.approx(0.15), "b": pytest.approx(0.85)}
    assert len(kept) == 10 and sum(r["score"] < 0.5 for r in kept) == 5  # half of each


def test_filter_report_counts_images_and_predictions():
    before = [rec(1, 0.9), rec(1, 0.1), rec(2, 0.2), rec(3, 0.8)]
    after, theta = confidence_filter(before, 0.5)
    report = filter_report(before, after, theta)
    assert (report.images_before, report.images_after) == (3, 2)
    assert (report.predictions_before, report.predictions_after) == (4, 2)
    assert "2/3 images" in str(report)
    assert images_with_labels([]) == 0


# ---------------------------------------------------------------------------- pseudo instances


def test_pseudo_instances_top_prediction_per_image_no_ground_truth(tiny_coco: Path):
    ds = open_coco(tiny_coco)
    mask = np.zeros((32, 32), bool)
    mask[1:9, 2:12] = True
    results = [
        rec(1, 0.3, (0, 0, 5, 5)),
        rec(1, 0.8, (2, 1, 12, 9), mask),
        rec(3, 0.6, (1, 1, 30, 30)),
    ]
    inst = pseudo_instances(results, ds)
    assert [img["id"] for img in inst["images"]] == [1, 3]  # images 2 and 4 have no label
    assert inst["info"]["images_kept"] == 2 and inst["info"]["images_total"] == 4
    assert inst["images"][0]["domain"] == "a"  # image metadata travels (per-domain analysis)
    a1, a3 = inst["annotations"]
    assert a1["image_id"] == 1 and a1["bbox"] == [2, 1, 10, 8] and a1["score"] == 0.8
    assert a1["area"] == 80 and coco.rle_to_mask(a1["segmentation"]).sum() == 80
    assert "segmentation" not in a3 and a3["area"] == 29 * 29
    gt_boxes = {tuple(a["bbox"]) for a in ds.instances["annotations"]}
    assert not gt_boxes & {tuple(a["bbox"]) for a in inst["annotations"]}
    assert len({a["id"] for a in inst["annotations"]}) == 2
    coco.validate_instances(inst)  # a valid instances dict for the datasets layer


def test_pseudo_instances_accept_polygon_masks(tiny_coco: Path):
    ds = open_coco(tiny_coco)
    square = [[2.0, 1.0, 12.0, 1.0, 12.0, 9.0, 2.0, 9.0]]  # x, y pairs: a 10 x 8 rectangle
    result = {"image_id": 2, "bbox": [2, 1, 10, 8], "score": 0.7, "segmentation": square}
    (ann,) = pseudo_instances([result], ds)["annotations"]
    mask = coco.rle_to_mask(ann["segmentation"])  # stored as RLE in the image's frame
    assert mask.shape == (32, 32) and ann["area"] == mask.sum()
    np.testing.assert_array_equal(coco.mask_to_xyxy(mask), [2, 1, 12, 9])


def test_pseudo_instances_empty_and_unknown_ids(tiny_coco: Path):
    ds = open_coco(tiny_coco)
    empty = pseudo_instances([], ds)
    assert empty["images"] == [] and empty["annotations"] == []
    with pytest.raises(ValueError, match="not in dataset"):
        pseudo_instances([rec(99, 0.5)], ds)
    two = pseudo_instances([rec(2, 0.5), rec(2, 0.7, (0, 0, 4, 4))], ds, top_k=2)
    assert [a["score"] for a in two["annotations"]] == [0.7, 0.5]


# ---------------------------------------------------------------------------- relabel rounds


class FakeStudent:
    """Predicts each image's training box shifted by ``shift`` px, scored by image id parity;
    records what it was trained on. One image per optimiser step."""

    created: list[FakeStudent] = []

    def __init__(self, shift: float = 1.0):
        self.shift, self.trained_on, self.train_seconds = shift, None, None
        self.epochs, self.steps, self.trained_epochs = 10, 40, None
        FakeStudent.created.append(self)

    def steps_per_epoch(self, n_images):
        return n_images

    def train(self, train_instances, image_dir, out_dir, val=None, epochs=None):
        self.trained_on, self.trained_epochs = train_instances, epochs or self.epochs
        self.train_seconds = 0.5
        weight = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([weight], lr=0.1)
        for _ in range(self.trained_epochs * self.steps_per_epoch(len(train_instances["images"]))):
            opt.step()  # what train_round's record counts
        return self

    def predict(self, dataset):
        boxes = {a["image_id"]: a["bbox"] for a in self.trained_on["annotations"]}
        out = []
        for image_id in dataset.image_ids:
            x, y, w, h = boxes.get(image_id, (0, 0, 8, 8))
            xyxy = np.array([x + self.shift, y, x + w + self.shift, y + h])
            out.append(rec(image_id, 0.9 if image_id % 2 else 0.3, xyxy))
            out.append(rec(image_id, 0.05, xyxy + 1))  # a worse second guess, dropped by top-1
        return out


def test_optimiser_steps_counts_every_optimiser_and_stops_counting_after():
    a, b = (torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1) for _ in range(2))

    def train():
        for _ in range(3):
            a.step()
        b.step()

    assert optimiser_steps(train) == 4
    assert optimiser_steps(lambda: None) == 0  # the hook of the first call is gone
    with pytest.raises(RuntimeError, match="boom"):
        optimiser_steps(lambda: (a.step(), (_ for _ in ()).throw(RuntimeError("boom"))))
    assert optimiser_steps(a.step) == 1  # and of a failed one


def test_training_epochs_equal_steps_and_paper_epochs():
    student = FakeStudent()
    assert training_epochs(student, 4) == 10  # 40 steps of one image
    assert training_epochs(student, 3) == 14  # ceil(40 / 3): a filtered set trains longer
    assert training_epochs(student, 4, "epochs") == training_epochs(student, 3, "epochs") == 10
    assert training_epochs(student, 100) == 1  # never zero epochs
    with pytest.raises(ValueError, match="budget"):
        training_epochs(student, 4, "hours")
    with pytest.raises(ValueError, match="no training image"):
        training_epochs(student, 0)


def test_training_epochs_follow_each_students_batching():
    from afss_utils.students import EfficientDetStudent, YoloStudent

    yolo = YoloStudent("segment", steps=1500, batch=16, nbs=16, precision="fp32")
    assert yolo.steps_per_epoch(1500) == 94  # ultralytics keeps the ragged last batch
    assert training_epochs(yolo, 1500) == 16 and training_epochs(yolo, 900) == 27
    accumulating = YoloStudent("segment", steps=100, batch=16, nbs=64, precision="fp32")
    assert accumulating.steps_per_epoch(1500) == 23  # one step per 4 batches of 16
    effdet = EfficientDetStudent(steps=100, batch=8)
    assert effdet.steps_per_epoch(20) == 2  # the ragged batch is dropped
    assert training_epochs(effdet, 20) == 50


def test_run_rounds_trains_fresh_students_on_filtered_relabels(tiny_coco: Path, tmp_path: Path):
    ds = open_coco(tiny_coco)
    FakeStudent.created = []
    teacher = [rec(1, 0.9), rec(2, 0.2), rec(3, 0.8), rec(4, 0.7)]
    records = run_rounds(FakeStudent, teacher, ds, ds, tmp_path / "tr", rounds=2, theta="mean")
    assert [r.round for r in records] == [0, 1, 2]
    assert len(FakeStudent.created) == 3 and len({id(s) for s in FakeStudent.created}) == 3
    first, second, third = FakeStudent.created
    assert records[0].theta["all"] == pytest.approx(0.65)
    assert [img["id"] for img in first.trained_on["images"]] == [1, 3, 4]  # image 2 filtered
    # 3 of 4 images kept: ceil(40 / 3) = 14 epochs, the optimiser steps of 10 epochs on all 4
    assert first.trained_epochs == records[0].epochs == 14 and records[0].steps == 42
    # round 1: round 0's relabels pass the same filter: theta = mean(0.9, 0.3, 0.9, 0.3) keeps
    # the odd ids (the student's top box down to its 0.05 floor would otherwise all be labels)
    assert records[1].theta["all"] == pytest.approx(0.6)
    assert [img["id"] for img in second.trained_on["images"]] == [1, 3]
    assert second.trained_epochs == records[1].epochs == 20
    shifted = {a["image_id"]: a["bbox"][0] for a in second.trained_on["annotations"]}
    assert shifted[1] == pytest.approx(6 + 1)
    assert {a["image_id"]: a["bbox"][0] for a in third.trained_on["annotations"]}[
        1
    ] == pytest.approx(8)
    for r in records:
        assert r.seconds == 0.5 and len(r.test_results) == 2 * len(ds)
        assert r.init == "scratch" and r.threads >= 1
        assert set(r.summary()) == {
            "round",
            "train_images",
            "total_images",
            "epochs",
            "steps",
            "seconds",
            "threads",
            "init",
        }
    assert coco.load_results(tmp_path / "tr" / "round1" / "test_predictions.json")
    assert coco.load_results(tmp_path / "tr" / "round1" / "relabels.json")
    assert coco.load_instances(tmp_path / "tr" / "round2" / "train_instances.json")["images"]


def test_run_rounds_without_filter_and_zero_rounds(tiny_coco: Path, tmp_path: Path):
    ds = open_coco(tiny_coco)
    teacher = [rec(i, 0.9) for i in ds.image_ids]
    records = run_rounds(FakeStudent, teacher, ds, ds, tmp_path / "a", rounds=1, theta=None)
    assert [r.train_images for r in records] == [4, 4]
    assert all(math.isnan(r.theta["all"]) for r in records)
    assert len(run_rounds(FakeStudent, teacher, ds, ds, tmp_path / "b", rounds=0)) == 1
    with pytest.raises(ValueError, match="no training image"):
        run_rounds(FakeStudent, [], ds, ds, tmp_path / "c", rounds=0)


def test_theta_per_dataset_under_pooling(tiny_coco: Path, tmp_path: Path):
    # two datasets pooled into one training set, one labelled far more confidently: one pooled
    # mean would drop every label of the harder one, the paper's per-dataset rule keeps its best
    results = [rec(1, 0.95), rec(2, 0.85), rec(3, 0.3), rec(4, 0.1)]
    parts = {"easy": [1, 2], "hard": [3, 4]}
    kept, thetas = confidence_filter_by_dataset(results, "mean", parts)
    assert thetas == {"easy": pytest.approx(0.9), "hard": pytest.approx(0.2)}
    assert [r["image_id"] for r in kept] == [1, 3]
    pooled, _ = confidence_filter(results, "mean")
    assert [r["image_id"] for r in pooled] == [1, 2]
    assert confidence_filter_by_dataset([], 0.5, parts) == ([], {"easy": 0.5, "hard": 0.5})
    with pytest.raises(ValueError, match="none of the datasets"):
        confidence_filter_by_dataset([rec(9, 0.5)], "mean", parts)

    ds = open_coco(tiny_coco)
    record = run_rounds(
        FakeStudent, results, ds, ds, tmp_path / "r", rounds=1, theta="mean", datasets=parts
    )
    assert record[0].theta == thetas and record[0].train_images == 2
    # the relabels are filtered per dataset too: odd ids 0.9, even 0.3 -> one image of each
    assert record[1].theta == {"easy": pytest.approx(0.6), "hard": pytest.approx(0.6)}
    assert record[1].train_images == 2


def test_relabel_keeps_top_prediction_per_image(tiny_coco: Path):
    ds = open_coco(tiny_coco)
    student = FakeStudent().train(pseudo_instances([rec(1, 0.9)], ds), ds.image_dir, None)
    labels = relabel(student, ds)
    assert sorted(r["image_id"] for r in labels) == ds.image_ids
    assert all(r["score"] > 0.05 for r in labels)


@pytest.mark.slow
def test_run_rounds_with_yolo_on_tiny_shapes(tmp_path: Path, make_shapes):
    from afss_utils.students import YoloStudent

    ds = open_coco(make_shapes(tmp_path / "shapes", n=8))
    # a noisy teacher: GT boxes jittered by a few pixels, random confidences
    rng = np.random.default_rng(1)
    teacher = []
    for a in ds.instances["annotations"]:
        x, y, w, h = a["bbox"]
        box = np.array([x, y, x + w, y + h]) + rng.normal(0, 2, 4)
        teacher.append(
            rec(
                a["image_id"],
                float(rng.uniform(0.3, 1.0)),
                box,
                coco.rle_to_mask(a["segmentation"]),
            )
        )

    students = []

    def make():
        students.append(
            YoloStudent("segment", "yolo11n-seg.yaml", steps=2, imgsz=64, batch=4, nbs=4, workers=0)
        )
        return students[-1]

    records = run_rounds(make, teacher, ds, ds, tmp_path / "tr", rounds=1, theta="mean")
    assert [r.round for r in records] == [0, 1] and len(students) == 2  # a fresh one per round
    # round 0: the teacher's labels at or above their mean score
    mean0 = float(np.mean([r["score"] for r in teacher]))
    assert records[0].theta == {"all": pytest.approx(mean0)}
    assert records[0].train_labels == [r for r in teacher if r["score"] >= mean0]
    # round 1: round 0's student's relabels of the training images (top 1 each), filtered at
    # their own mean (an untrained head may give every image the same prior score: all kept)
    relabels = coco.load_results(tmp_path / "tr" / "round1" / "relabels.json")
    assert relabels == relabel(students[0], ds) and relabels != teacher
    mean1 = float(np.mean([r["score"] for r in relabels]))
    assert records[1].theta == {"all": pytest.approx(mean1)}
    assert records[1].train_labels == [r for r in relabels if r["score"] >= mean1 - 1e-9]
    trained_on = coco.load_instances(tmp_path / "tr" / "round1" / "train_instances.json")
    assert [a["bbox"] for a in trained_on["annotations"]] == [
        r["bbox"] for r in records[1].train_labels
    ]
    assert records[1].train_images == len(trained_on["images"]) == len(records[1].train_labels)
    for k, r in enumerate(records):
        # the budget: 2 steps at least, one optimiser step per batch of 4 (nbs = batch), counted
        batches = math.ceil(r.train_images / 4)
        assert r.seconds > 0 and r.steps == r.epochs * batches >= 2
        # one test record per image (top_k 1), as COCO results, as written to disk
        assert [t["image_id"] for t in r.test_results] == ds.image_ids
        for t in r.test_results:
            assert t["category_id"] == 1 and 0.001 <= t["score"] <= 1
            assert t["segmentation"]["size"] == [64, 64] and len(t["bbox"]) == 4
        assert r.test_results == coco.load_results(
            tmp_path / "tr" / f"round{k}" / "test_predictions.json"
        )


def test_student_init_names_the_checkpoint_a_training_starts_from(tmp_path):
    from afss_utils.students.efficientdet import EfficientDetStudent
    from afss_utils.students.yolo import YoloStudent

    assert student_init(YoloStudent(model="yolo11n-seg.yaml")) == "scratch"
    pt = tmp_path / "yolo11n-seg.pt"
    pt.write_bytes(b"")  # only its name is read here
    assert student_init(YoloStudent(model=str(pt))) == "yolo11n-seg.pt"
    assert student_init(EfficientDetStudent()) == "scratch"
    ckpt = tmp_path / "efficientdet_d0.pth"
    ckpt.write_bytes(b"")
    assert student_init(EfficientDetStudent(weights=ckpt)) == "efficientdet_d0.pth"
    lite = EfficientDetStudent("tf_efficientdet_lite0", backbone_weights="imagenet_lite0")
    assert student_init(lite) == "imagenet_lite0"
    assert student_init(object()) == "scratch"
