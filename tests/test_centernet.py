"""CenterNetStudent: heatmap target, loss, decoding, and that it learns (overfits a tiny set).
Its classification metrics and grid search: tests/test_classification.py."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from afss_utils import coco
from afss_utils.classification import classification_metrics
from afss_utils.config import load_params
from afss_utils.datasets import open_coco
from afss_utils.evaluate import evaluate
from afss_utils.students import Student, build_student, centernet, letterbox
from afss_utils.students.centernet import (
    CenterNetStudent,
    LossWeights,
    box_cells,
    center_loss,
    decode,
    decode_boxes,
    encode_boxes,
    heatmap_target,
)


def make_rects(root: Path, n: int = 8, size=(96, 64), classes: int = 1, seed: int = 0) -> Path:
    """``n`` non-square (W, H) = ``size`` images, one bright filled rectangle each on dark noise
    at a random place; with ``classes`` > 1 the class (category id 1..classes) sets its colour.
    Returns the annotations path."""
    rng = np.random.default_rng(seed)
    w, h = size
    (root / "images").mkdir(parents=True, exist_ok=True)
    colours = [(230, 60, 60), (60, 230, 60), (60, 60, 230), (230, 230, 60)]
    images, anns = [], []
    for i in range(n):
        img = rng.integers(0, 30, (h, w, 3), dtype=np.uint8)
        bw, bh = int(rng.integers(w // 5, w // 2)), int(rng.integers(h // 5, h // 2))
        x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        c = i % classes
        img[y0 : y0 + bh, x0 : x0 + bw] = colours[c] if classes > 1 else (220, 220, 220)
        name = f"rect_{i:02d}.png"
        cv2.imwrite(str(root / "images" / name), img[..., ::-1])
        images.append(coco.make_image(i + 1, name, w, h))
        ann = coco.make_annotation(i + 1, i + 1, box_xyxy=np.array([x0, y0, x0 + bw, y0 + bh]))
        ann["category_id"] = c + 1
        anns.append(ann)
    instances = coco.make_instances(images, anns)
    if classes > 1:
        instances["categories"] = [{"id": k + 1, "name": f"type{k}"} for k in range(classes)]
    return coco.save_json(instances, root / "annotations.json")


# ---------------------------------------------------------------------------- targets


def test_heatmap_peak_sigma_and_radius():
    t = heatmap_target(np.array([[2, 3]]), 8, sigma=0.5)
    assert t.shape == (8, 8) and t.dtype == np.float32
    assert np.unravel_index(t.argmax(), t.shape) == (2, 3) and t[2, 3] == 1.0
    assert np.isclose(t[2, 4], np.exp(-1 / (2 * 0.5**2)))  # one cell away: exp(-d^2 / 2 sigma^2)
    assert np.isclose(t[3, 4], np.exp(-2 / (2 * 0.5**2)))  # diagonal, d^2 = 2 < (3 sigma)^2
    assert t[2, 5] == 0.0  # d = 2 > 3 sigma = 1.5
    wide = heatmap_target(np.array([[2, 3]]), 8, sigma=1.0)
    assert wide[2, 5] > 0 and wide[2, 4] > t[2, 4]  # wider sigma, wider and flatter bump
    assert wide[2, 7] == 0.0  # d = 4 > 3
    assert (t == 1.0).sum() == 1


def test_heatmap_empty_and_two_objects():
    assert not heatmap_target(np.zeros((0, 2)), 5, 0.5).any()
    t = heatmap_target(np.array([[0, 0], [4, 4]]), 5, 0.5)
    assert t[0, 0] == t[4, 4] == 1.0 and (t == 1.0).sum() == 2
    with pytest.raises(ValueError, match="sigma"):
        heatmap_target(np.array([[0, 0]]), 5, 0.0)


def test_box_cells_of_centers():
    boxes = np.array([[0, 0, 20, 20], [300, 300, 320, 320], [100, 40, 140, 60]])
    assert box_cells(boxes, 320, 10).tolist() == [[0, 0], [9, 9], [1, 3]]
    assert box_cells(np.zeros((0, 4)), 320, 10).shape == (0, 2)


@pytest.mark.parametrize("wh", [(96, 64), (50, 130), (640, 480)])
def test_decode_round_trips_to_original_pixels_on_non_square_images(wh):
    w, h = wh
    size, grid = 128, 4
    image = np.zeros((h, w, 3), np.uint8)
    _, scale = letterbox(image, size)
    box = np.array([[0.1 * w, 0.3 * h, 0.7 * w, 0.9 * h]])
    enc = encode_boxes(box * scale, size)
    assert np.allclose(decode_boxes(enc, size, scale, w, h), box, atol=1e-3 * max(w, h))
    # a "perfect" set of head outputs: the GT cell wins, the box is read there
    (r, c) = box_cells(box * scale, size, grid)[0]
    center = np.full((grid, grid), -5.0)
    center[r, c] = 4.0
    box_map = np.zeros((4, grid, grid), np.float32)
    box_map[:, r, c] = enc[0]
    cls = np.zeros((3, grid, grid))
    cls[2, r, c] = 1.0
    (det,) = decode(center, box_map, cls, size, scale, w, h, top_k=1)
    assert np.allclose(det.box, box[0], atol=1e-3 * max(w, h))
    assert det.cell == (r, c) and det.label == 2
    assert np.isclose(det.score, 1 / (1 + np.exp(-4.0)))
    assert len(decode(center, box_map, None, size, scale, w, h, top_k=None)) <= grid * grid


# ---------------------------------------------------------------------------- loss


def _perfect_outputs(heat: np.ndarray, cells, box_t, labels, classes: int) -> dict:
    """Head outputs equal to the targets: logits of the heatmap, boxes at the GT cells, a
    confident correct class."""
    t = torch.from_numpy(heat).clamp(1e-6, 1 - 1e-6)
    g = heat.shape[-1]
    box = torch.full((len(heat), 4, g, g), 0.5)
    cls = torch.zeros((len(heat), classes, g, g))
    k = 0
    for i, (cs, ls) in enumerate(zip(cells, labels, strict=True)):
        for (r, c), lab in zip(cs, ls, strict=True):
            box[i, :, r, c] = torch.from_numpy(box_t[k])
            cls[i, lab, r, c] = 30.0
            k += 1
    return {
        "center": torch.logit(t)[:, None],
        "box": box,
        "cls": cls,
        "box_target": torch.from_numpy(box_t),
    }


def test_loss_zero_on_perfect_prediction_positive_otherwise():
    cells = [np.array([[1, 2]]), np.array([[3, 0]])]
    labels = [np.array([1]), np.array([0])]
    heat = np.stack([heatmap_target(c, 4, 0.5) for c in cells])
    box_t = np.array([[0.5, 0.3, 0.2, 0.1], [0.1, 0.9, 0.15, 0.2]], np.float32)
    w = LossWeights()
    perfect = center_loss(
        _perfect_outputs(heat, cells, box_t, labels, 2), torch.from_numpy(heat), cells, labels, w
    )
    assert perfect["loss"].item() == pytest.approx(0.0, abs=1e-3)
    # each part, perturbed alone, makes its own term (and the total) positive
    for part in ("center", "box", "cls"):
        out = _perfect_outputs(heat, cells, box_t, labels, 2)
        if part == "center":
            out["center"] = out["center"].roll(1, dims=-1)
        elif part == "box":
            out["box"] = out["box"] * 0.5
        else:
            out["cls"] = out["cls"].flip(1)
        losses = center_loss(out, torch.from_numpy(heat), cells, labels, w)
        assert losses[part].item() > 1e-3, part
        assert losses["loss"].item() > perfect["loss"].item() + 1e-3
    # the class weight switches the class term off (detectors trained on pseudo-labels)
    out = _perfect_outputs(heat, cells, box_t, labels, 2)
    out["cls"] = out["cls"].flip(1)
    off = center_loss(out, torch.from_numpy(heat), cells, labels, LossWeights(cls=0.0))
    assert off["loss"].item() == pytest.approx(0.0, abs=1e-3)


def test_positive_cells_weigh_k_times():
    cells, labels = [np.array([[1, 1]])], [np.array([0])]
    heat = np.stack([heatmap_target(c, 4, 0.5) for c in cells])
    box_t = np.array([[0.5, 0.5, 0.2, 0.2]], np.float32)
    out = _perfect_outputs(heat, cells, box_t, labels, 1)
    out["center"] = out["center"].clone()
    out["center"][0, 0, 1, 1] = 0.0  # the positive cell only half-believed
    lo = center_loss(out, torch.from_numpy(heat), cells, labels, LossWeights(pos_weight=1))
    hi = center_loss(out, torch.from_numpy(heat), cells, labels, LossWeights(pos_weight=10))
    assert hi["center"].item() == pytest.approx(10 * lo["center"].item(), rel=1e-4)


def test_loss_with_no_objects_is_center_only():
    heat = np.zeros((2, 4, 4), np.float32)
    cells = [np.zeros((0, 2), int)] * 2
    labels = [np.zeros(0, np.int64)] * 2
    out = {
        "center": torch.full((2, 1, 4, 4), 2.0),
        "box": torch.rand(2, 4, 4, 4),
        "cls": torch.rand(2, 1, 4, 4),
        "box_target": torch.zeros((0, 4)),
    }
    losses = center_loss(out, torch.from_numpy(heat), cells, labels, LossWeights())
    assert losses["box"].item() == 0 and losses["cls"].item() == 0 and losses["center"].item() > 0


# ---------------------------------------------------------------------------- student


def test_registered_and_speaks_the_student_protocol(tmp_path: Path):
    params = load_params("params/smoke.yaml")
    student = build_student("center_resnet18", params)
    assert isinstance(student, Student) and isinstance(student, CenterNetStudent)
    assert student.name == "center_resnet18" and student.iou_types == ("bbox",)
    with pytest.raises(ValueError, match="multiple of 32"):
        CenterNetStudent(imgsz=100)
    with pytest.raises(RuntimeError, match="train"):
        student.predict(open_coco(make_rects(tmp_path, 1)))


def test_empty_training_set_is_an_error(tmp_path: Path):
    with pytest.raises(ValueError, match="empty"):
        CenterNetStudent(imgsz=64).train(coco.make_instances([], []), tmp_path, tmp_path / "o")


@pytest.mark.slow
def test_overfits_eight_images_box_ap50(tmp_path: Path):
    """A training test (fixed seed), not a timing: 300 steps on 8 non-square images (at 150
    the boxes are still loose: AP50 84, one image under IoU 0.5)."""
    ds = open_coco(make_rects(tmp_path / "rects", 8))
    student = CenterNetStudent(
        imgsz=96, batch=8, epochs=300, lr=1e-3, weight_decay=1e-4, warmup_epochs=10, seed=0
    )
    student.train(ds.instances, ds.image_dir, tmp_path / "run")
    assert student.history[-1]["loss"] < student.history[0]["loss"] / 5
    preds = student.predict(ds)
    assert len(preds) == 8 and {p["category_id"] for p in preds} == {1}
    assert evaluate(ds, preds)["AP50"] >= 90.0
    # the saved weights reproduce the predictions
    again = CenterNetStudent(imgsz=96).load(tmp_path / "run" / "weights.pt").predict(ds)
    assert [p["bbox"] for p in again] == [p["bbox"] for p in preds]


@pytest.mark.slow
def test_classifier_learns_types_and_metrics(tmp_path: Path):
    ds = open_coco(make_rects(tmp_path / "rects", 8, classes=2))
    student = CenterNetStudent(imgsz=96, batch=8, epochs=60, weight_decay=1e-4, seed=0)
    student.train(ds.instances, ds.image_dir, tmp_path / "run")
    preds = student.predict(ds)
    m = classification_metrics(ds.instances, preds, student.imgsz)
    assert m["accuracy"] == 1.0 and m["labels"] == ["type0", "type1"]
    assert m["confusion"].tolist() == [[4, 0], [0, 4]]
    assert m["per_class"] == {"type0": 1.0, "type1": 1.0}
    assert m["cell_accuracy"] >= 0.75
    assert {p["class_name"] for p in preds} == {"type0", "type1"}


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_training_runs_the_network_in_the_asked_precision_and_the_loss_in_float32(
    tmp_path: Path, monkeypatch, precision, dtype
):
    seen = []
    build = centernet.build_model

    def watched(*args, **kwargs):
        net = build(*args, **kwargs)
        net.backbone.register_forward_hook(lambda m, i, o: seen.append(o[-1].dtype))
        return net

    loss_inputs = []
    loss = centernet.center_loss

    def watched_loss(outputs, *args):
        loss_inputs.append({k: v.dtype for k, v in outputs.items()})
        return loss(outputs, *args)

    monkeypatch.setattr(centernet, "build_model", watched)
    monkeypatch.setattr(centernet, "center_loss", watched_loss)
    ds = open_coco(make_rects(tmp_path / "rects", 4))
    student = CenterNetStudent(imgsz=64, batch=2, epochs=1, precision=precision)
    student.train(ds.instances, ds.image_dir, tmp_path / "run")
    assert seen == [dtype, dtype]  # two steps of two images
    assert all(set(d.values()) == {torch.float32} for d in loss_inputs) and len(loss_inputs) == 2
    assert np.isfinite(student.history[0]["loss"]) and student.history[0]["box"] > 0
    # the saved network is a plain float32 one whatever the training precision
    again = CenterNetStudent(imgsz=64).load(tmp_path / "run" / "weights.pt")
    assert next(again.net.parameters()).dtype == torch.float32


def test_unknown_precision_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="center.precision"):
        CenterNetStudent(precision="fp16")


def test_load_moves_the_network_to_the_students_device(tmp_path, monkeypatch):
    """load() rebuilds the net on the CPU; it must move it to ``self.device`` (a CUDA student
    would otherwise predict with CPU weights on CUDA inputs: a device mismatch)."""
    net = centernet.build_model("resnet18", 1)
    torch.save(
        {"categories": [{"id": 1, "name": "spacecraft"}], "state_dict": net.state_dict()},
        tmp_path / "w.pt",
    )
    moved_to = []
    build = centernet.build_model

    def spied(*args, **kwargs):
        model = build(*args, **kwargs)
        to = model.to

        def spy_to(*a, **k):
            moved_to.append(a[0] if a else k.get("device"))
            return to(*a, **k)

        model.to = spy_to
        return model

    monkeypatch.setattr(centernet, "build_model", spied)
    student = CenterNetStudent(imgsz=64, device="cpu").load(tmp_path / "w.pt")
    assert [torch.device(d) for d in moved_to] == [torch.device(student.device)]
    assert {p.device for p in student.net.parameters()} == {torch.device(student.device)}


# ---------------------------------------------------------------------------- batches via DataLoader


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_batches_equal_the_old_direct_indexing(tmp_path: Path, monkeypatch, workers):
    """The DataLoader's batches (built in the main process as on the CPU, or in worker
    processes as on CUDA) are, bit for bit, those the loop built by indexing with its seeded
    Generator: per epoch a permutation, then two flip draws per image."""
    from functools import partial

    from afss_utils.students import efficientdet as ed
    from afss_utils.students.training import load_letterboxed

    monkeypatch.setattr(ed, "loader_workers", lambda device: workers)
    ds = open_coco(make_rects(tmp_path / "rects", 5, classes=2))
    labels, _ = centernet.image_labels(ds.instances)
    canvases, boxes, extents = load_letterboxed(ds.instances, ds.image_dir, 64)
    student = CenterNetStudent(imgsz=64)
    old, rng = [], np.random.default_rng(5)
    for _ in range(2):
        for idx in np.array_split(rng.permutation(5), 2):
            old.append(student._batch(canvases, boxes, extents, labels, idx, rng))
    make = partial(student._batch, canvases, boxes, extents, labels)
    plans = ed.FlipPlans(5, 2, 2, np.random.default_rng(5))
    new = list(ed.batch_loader(ed.FlipBatches(make), "cpu", 0, sampler=plans))
    assert len(new) == len(old) == 4
    for (x0, h0, c0, b0, l0), (x1, h1, c1, b1, l1) in zip(old, new, strict=True):
        assert torch.equal(x0, x1) and torch.equal(h0, h1) and torch.equal(b0, b1)
        # per-image cells and labels stay numpy arrays (center_loss indexes with them)
        assert all(isinstance(c, np.ndarray) for c in c1 + l1)
        assert [c.tolist() for c in c0] == [c.tolist() for c in c1]
        assert [v.tolist() for v in l0] == [v.tolist() for v in l1]


def test_training_in_loader_workers_gives_the_same_network(tmp_path: Path, monkeypatch):
    """Worker processes (the CUDA setting) build the same batches as the main process, so a
    seeded run trains the same network whichever builds them."""
    from afss_utils.students import efficientdet as ed

    ds = open_coco(make_rects(tmp_path / "rects", 5))
    runs = []
    for workers in (0, 2):
        monkeypatch.setattr(ed, "loader_workers", lambda device, w=workers: w)
        student = CenterNetStudent(imgsz=64, batch=2, epochs=2, seed=4, precision="fp32")
        student.train(ds.instances, ds.image_dir, tmp_path / f"w{workers}")
        runs.append(student)
    a, b = (r.net.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert runs[0].history == runs[1].history and len(runs[0].history) == 2


def test_predict_is_independent_of_the_chunking(tmp_path: Path):
    """Mixed image sizes, a ragged last chunk: every record keeps its image's id and scale."""
    sizes = {1: (96, 64), 2: (50, 130), 3: (64, 64)}
    (tmp_path / "images").mkdir()
    images = []
    for i, (w, h) in sizes.items():
        img = np.random.default_rng(i).integers(0, 255, (h, w, 3), np.uint8)
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), img)
        images.append(coco.make_image(i, f"{i}.png", w, h))
    ds = open_coco(coco.save_json(coco.make_instances(images, []), tmp_path / "a.json"))
    student = CenterNetStudent(imgsz=64, top_k=2, conf=0.0)
    torch.manual_seed(0)
    student.net = centernet.build_model("resnet18", 1).eval()
    whole, pairs = student.predict(ds, batch=3), student.predict(ds, batch=2)
    assert [r["image_id"] for r in whole] == [1, 1, 2, 2, 3, 3]
    assert [(r["image_id"], r["cell"]) for r in pairs] == [
        (r["image_id"], r["cell"]) for r in whole
    ]
    for a, b in zip(whole, pairs, strict=True):
        assert a["bbox"] == pytest.approx(b["bbox"], abs=0.011)  # records round to 0.01 px
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
    # the same as the heads read image by image through forward_images
    for r in whole[::2]:
        heads, (s,) = student.forward_images([ds.load_image(r["image_id"])])
        w, h = sizes[r["image_id"]]
        (d, *_) = decode(heads["center"][0, 0], heads["box"][0], heads["cls"][0], 64, s, w, h)
        assert r["bbox"] == pytest.approx(coco.xyxy_to_xywh(d.box[None])[0].tolist(), abs=0.011)
    assert student.predict(ds.subset([]), batch=2) == []


# ---------------------------------------------------------------------------- stride-8/4 variant


@pytest.mark.parametrize("stride", [8, 4])
@pytest.mark.parametrize("wh", [(96, 64), (640, 480)])
def test_fine_heads_decode_a_known_box_exactly(stride, wh):
    """The targets of a box (its cell, sub-cell offset, log size), written into the fine heads
    at that cell, decode back to the same box in original pixels."""
    w, h = wh
    size = 128
    _, scale = letterbox(np.zeros((h, w, 3), np.uint8), size)
    box = np.array([[0.13 * w, 0.31 * h, 0.71 * w, 0.88 * h]])
    canvas_box = box * scale
    grid = size // stride
    (r, c) = box_cells(canvas_box, size, grid)[0]
    off, log_size = centernet.fine_targets(
        torch.from_numpy(encode_boxes(canvas_box, size)).double(),
        torch.tensor([[r, c]]),
        stride,
        size,
    )
    assert ((off >= 0) & (off < 1)).all()  # the center lies inside its cell
    offset_map, size_map = np.zeros((2, grid, grid)), np.zeros((2, grid, grid))
    offset_map[:, r, c], size_map[:, r, c] = off[0].numpy(), log_size[0].numpy()
    box_map = centernet.fine_box_map(offset_map, size_map, stride, size)
    center = np.full((grid, grid), -5.0)
    center[r, c] = 3.0
    (det,) = decode(center, box_map, None, size, scale, w, h)
    assert det.cell == (r, c)
    assert np.allclose(det.box, box[0], atol=1e-4 * max(w, h))


def test_gaussian_radius_and_size_sigmas_follow_the_object():
    # a 2x2-cell box keeps IoU >= 0.7 for a small corner shift only; bigger boxes allow more
    assert 0 < centernet.gaussian_radius(2, 2) < centernet.gaussian_radius(20, 20)
    assert np.isclose(centernet.gaussian_radius(20, 20), 10 * centernet.gaussian_radius(2, 2))
    sig = centernet.size_sigmas(np.array([[0, 0, 8, 8], [0, 0, 160, 160]]), stride=8)
    r_big = int(centernet.gaussian_radius(20, 20))
    assert sig[0] == pytest.approx(1 / 6) and sig[1] == pytest.approx((2 * r_big + 1) / 6)
    assert centernet.size_sigmas(np.zeros((0, 4)), 8).shape == (0,)
    t = heatmap_target(np.array([[1, 1], [6, 6]]), 8, sig)  # one width per object
    assert t[1, 1] == t[6, 6] == 1.0 and t[1, 2] == 0.0 and t[6, 7] > 0.0


@pytest.mark.parametrize("stride", [8, 4])
def test_fine_network_output_shapes_and_init(stride):
    net = centernet.build_model("resnet18", 3, stride=stride).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 64, 64))
    g = 64 // stride
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "center": (2, 1, g, g),
        "offset": (2, 2, g, g),
        "size": (2, 2, g, g),
        "cls": (2, 3, 2, 2),  # the report's class head on the stride-32 map
    }
    assert ((out["offset"] > 0) & (out["offset"] < 1)).all()
    with pytest.raises(ValueError, match="stride"):
        centernet.build_model("resnet18", 1, stride=16)
    # the student's numpy heads: the coarse class map repeated onto the fine cells it holds
    student = CenterNetStudent(imgsz=64, stride=stride)
    student.net = net
    heads = student._forward(torch.zeros(1, 3, 64, 64))
    assert heads["cls"].shape == (1, 3, g, g) and heads["box"].shape == (1, 4, g, g)
    k = 32 // stride
    assert (heads["cls"][0, :, :k, :k] == out["cls"][0, :, :1, :1].numpy()).all()


def test_focal_and_fine_loss_near_zero_on_perfect_heads_and_empty_batches():
    heat = np.zeros((1, 8, 8), np.float32)
    heat[0] = heatmap_target(np.array([[3, 4]]), 8, 0.5)
    perfect = torch.where(torch.from_numpy(heat) >= 1, 20.0, -20.0)
    assert centernet.focal_loss(perfect, torch.from_numpy(heat)) < 1e-6
    wrong = torch.where(torch.from_numpy(heat) >= 1, -20.0, 20.0)
    assert centernet.focal_loss(wrong, torch.from_numpy(heat)) > 1.0
    box = np.array([[33.0, 25.0, 47.0, 39.0]])  # center (40, 32): cell (4, 5) at stride 8
    cells = [box_cells(box, 64, 8)]
    box_t = torch.from_numpy(encode_boxes(box, 64))
    off, log_size = centernet.fine_targets(box_t, torch.from_numpy(cells[0]), 8, 64)
    out = {
        "center": torch.zeros(1, 1, 8, 8),
        "offset": torch.zeros(1, 2, 8, 8),
        "size": torch.zeros(1, 2, 8, 8),
        "cls": torch.zeros(1, 2, 2, 2),  # stride 32 on a 64 px canvas
        "box_target": box_t,
    }
    out["offset"][0, :, 4, 5], out["size"][0, :, 4, 5] = off[0], log_size[0]
    out["cls"][0, 1, 1, 1] = 30.0  # fine cell (4, 5) lies in coarse cell (1, 1)
    losses = centernet.fine_loss(
        out, torch.zeros(1, 8, 8), cells, [np.array([1])], LossWeights(), 8, 64
    )
    assert float(losses["box"]) < 1e-6 and float(losses["cls"]) < 1e-6
    empty = centernet.fine_loss(
        {**out, "box_target": torch.zeros(0, 4)},
        torch.zeros(1, 8, 8),
        [np.zeros((0, 2), int)],
        [np.zeros(0, int)],
        LossWeights(),
        8,
        64,
    )
    assert float(empty["box"]) == 0.0 and float(empty["cls"]) == 0.0


def test_local_peaks_keep_one_cell_per_bump():
    logits = np.full((1, 6, 6), -9.0)
    logits[0, 1:4, 1:4] = [[0, 1, 0], [1, 2, 1], [0, 1, 0]]
    logits[0, 5, 5] = 0.5
    peaks = centernet.local_peaks(logits)
    bump = peaks[0, 1:4, 1:4]
    assert bump[1, 1] == 2 and np.isneginf(bump).sum() == 8  # the bump's top only
    assert peaks[0, 5, 5] == 0.5  # a separate object keeps its own peak


@pytest.mark.slow
def test_stride8_student_fits_boxes_tighter_than_the_report_grid(tmp_path: Path):
    """Same images, steps and seed: the stride-8 variant's boxes beat the stride-32 grid's at
    IoU 0.75, and its saved weights reproduce its predictions (``cell`` on the report's grid)."""
    ds = open_coco(make_rects(tmp_path / "rects", 8))
    ap75 = {}
    for stride in (32, 8):
        student = CenterNetStudent(
            imgsz=96,
            batch=8,
            epochs=150,
            lr=1e-3,
            weight_decay=1e-4,
            warmup_epochs=10,
            seed=0,
            stride=stride,
        )
        student.train(ds.instances, ds.image_dir, tmp_path / f"s{stride}")
        preds = student.predict(ds)
        ap75[stride] = evaluate(ds, preds)["AP75"]
        assert all(0 <= v < 3 for p in preds for v in p["cell"])  # the 3x3 report grid
    assert student.name == "center_resnet18_s8"
    again = CenterNetStudent(imgsz=96, stride=8).load(tmp_path / "s8" / "weights.pt").predict(ds)
    assert [p["bbox"] for p in again] == [p["bbox"] for p in preds]
    assert ap75[8] > ap75[32]


def test_fine_targets_follow_the_box_targets_device():
    """The cells come from numpy (CPU) while a GPU training's box targets are on the GPU: the
    GPU run of params/center_student.yaml failed there. 'meta' stands in for the other device."""
    off, log_size = centernet.fine_targets(
        torch.zeros(3, 4, device="meta"), torch.zeros(3, 2, dtype=torch.long), 8, 192
    )
    assert off.device.type == log_size.device.type == "meta" and off.shape == (3, 2)
