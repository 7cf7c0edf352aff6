"""COCO evaluation against hand-checked cases.

With one GT and one detection per image, a detection matches at IoU threshold t when
IoU >= t (COCOeval), so AP over t = 0.50, 0.55, ..., 0.95 is the fraction of thresholds passed.
With several images, AP is the 101-point interpolated precision over recall 0, 0.01, ..., 1.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from afss_utils import coco
from afss_utils.datasets import open_coco
from afss_utils.evaluate import (
    ap_by_size_bins,
    earth_confusions,
    evaluate,
    evaluate_by_size,
    evaluate_tasks,
    main,
    size_limits,
)

GT_BOX = np.array([0.0, 0.0, 10.0, 10.0])


def _one_box_gt(with_mask: bool = False) -> dict:
    if with_mask:
        mask = np.zeros((32, 32), bool)
        mask[:10, :10] = True
        ann = coco.make_annotation(1, 1, mask=mask)
    else:
        ann = coco.make_annotation(1, 1, box_xyxy=GT_BOX)
    return coco.make_instances([coco.make_image(1, "a.png", 32, 32)], [ann])


def _pred(box, score=0.9, image_id=1, mask=None):
    return coco.result_record(image_id, np.asarray(box, float), score, mask)


@pytest.mark.parametrize(
    "y2, ap, ap75",
    [
        (10.0, 100.0, 100.0),  # IoU 1
        (9.2, 90.0, 100.0),  # IoU 0.92: 0.50..0.90 pass, 0.95 fails
        (8.0, 70.0, 100.0),  # IoU exactly 0.8: the 0.80 threshold passes (>=)
        (7.2, 50.0, 0.0),  # IoU 0.72: 0.50..0.70 pass
        (4.0, 0.0, 0.0),  # IoU 0.4: below every threshold
    ],
)
def test_single_shifted_box(y2, ap, ap75):
    got = evaluate(_one_box_gt(), [_pred([0, 0, 10, y2])])
    assert got["AP"] == pytest.approx(ap, abs=1e-6)
    assert got["AP50"] == pytest.approx(100.0 if ap > 0 else 0.0, abs=1e-6)
    assert got["AP75"] == pytest.approx(ap75, abs=1e-6)


def _two_image_gt() -> dict:
    images = [coco.make_image(i, f"{i}.png", 32, 32) for i in (1, 2)]
    anns = [coco.make_annotation(i, i, box_xyxy=GT_BOX) for i in (1, 2)]
    return coco.make_instances(images, anns)


def test_ranking_matters():
    hit, miss = [0, 0, 10, 10], [20, 20, 30, 30]
    # The hit ranked first: precision 1 up to recall 0.5 -> 51 of 101 recall points.
    good_first = evaluate(_two_image_gt(), [_pred(hit, 0.9, 1), _pred(miss, 0.8, 2)])
    assert good_first["AP"] == pytest.approx(100 * 51 / 101, abs=1e-4)
    # The miss ranked first: precision 0.5 at recall 0.5.
    bad_first = evaluate(_two_image_gt(), [_pred(hit, 0.8, 1), _pred(miss, 0.9, 2)])
    assert bad_first["AP50"] == pytest.approx(100 * 0.5 * 51 / 101, abs=1e-4)


def test_empty_predictions_are_zero(tiny_coco):
    for preds in ([], tiny_coco.parent / "empty.json"):
        if not isinstance(preds, list):
            coco.save_json([], preds)
        assert evaluate(tiny_coco, preds) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
        assert evaluate(tiny_coco, preds, "segm") == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}


def _perfect(dataset, with_masks=True):
    out = []
    for image_id in dataset.image_ids:
        for ann in dataset.annotations(image_id):
            mask = coco.rle_to_mask(ann["segmentation"]) if with_masks else None
            box = coco.xywh_to_xyxy(ann["bbox"])[0]
            out.append(coco.result_record(image_id, box, 0.9, mask))
    return out


def test_perfect_predictions_all_inputs(tiny_coco, tmp_path):
    ds = open_coco(tiny_coco)
    preds = _perfect(ds)
    pred_file = coco.save_json(preds, tmp_path / "pred.json")
    for gt in (ds, tiny_coco, coco.read_json(tiny_coco)):
        for p in (preds, pred_file):
            for iou_type in ("bbox", "segm"):
                assert evaluate(gt, p, iou_type) == {"AP": 100.0, "AP50": 100.0, "AP75": 100.0}


def test_segm_uses_masks_not_boxes(tiny_coco):
    ds = open_coco(tiny_coco)
    preds = _perfect(ds)
    for p in preds:
        p["bbox"] = [0.0, 0.0, 1.0, 1.0]  # wrong boxes, right masks
    assert evaluate(ds, preds, "segm")["AP"] == 100.0
    assert evaluate(ds, preds, "bbox")["AP"] == 0.0
    assert all("bbox" in p for p in preds), "the caller's predictions must not be modified"


def test_segm_shifted_mask():
    gt = _one_box_gt(with_mask=True)
    pred_mask = np.zeros((32, 32), bool)
    pred_mask[:8, :10] = True  # mask IoU 0.8
    got = evaluate(gt, [_pred([0, 0, 10, 8], mask=pred_mask)], "segm")
    assert got == pytest.approx({"AP": 70.0, "AP50": 100.0, "AP75": 100.0}, abs=1e-6)


def test_segm_errors():
    with pytest.raises(ValueError, match="ground truth lacks 'segmentation'"):
        evaluate(_one_box_gt(), [_pred(GT_BOX)], "segm")
    with pytest.raises(ValueError, match=r"\[0\]\.segmentation is missing"):
        evaluate(_one_box_gt(with_mask=True), [_pred(GT_BOX)], "segm")
    wrong_size = _pred(GT_BOX, mask=np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="size"):
        evaluate(_one_box_gt(with_mask=True), [wrong_size], "segm")
    with pytest.raises(ValueError, match="iou_type"):
        evaluate(_one_box_gt(), [], "keypoints")


def test_image_ids_restrict_evaluation(tiny_coco):
    ds = open_coco(tiny_coco)
    preds = _perfect(ds, with_masks=False)
    for p in preds:
        if ds.image_info(p["image_id"])["domain"] == "b":
            p["bbox"] = [25.0, 25.0, 5.0, 5.0]  # misses on domain b
    domain = {d: [i for i in ds.image_ids if ds.image_info(i)["domain"] == d] for d in "ab"}
    assert evaluate(ds, preds, image_ids=domain["a"])["AP"] == 100.0
    assert evaluate(ds, preds, image_ids=domain["b"])["AP"] == 0.0
    pooled = evaluate(ds, preds)["AP"]
    assert 0.0 < pooled < 100.0
    # No predictions on the chosen images: zeros, not a crash.
    only_a = [p for p in preds if p["image_id"] in domain["a"]]
    assert evaluate(ds, only_a, image_ids=domain["b"])["AP50"] == 0.0
    with pytest.raises(ValueError, match="image_ids not in the ground truth"):
        evaluate(ds, preds, image_ids=[99])


def test_predictions_on_unknown_images():
    with pytest.raises(ValueError, match=r"not in the ground truth.*another split"):
        evaluate(_one_box_gt(), [_pred(GT_BOX, image_id=7)])


def test_no_gt_annotations_is_an_error():
    gt = coco.make_instances([coco.make_image(1, "a.png", 32, 32)], [])
    with pytest.raises(ValueError, match="no ground-truth annotations"):
        evaluate(gt, [_pred(GT_BOX)])


def test_single_category_id_mismatch_still_matches():
    gt = _one_box_gt()
    gt["categories"] = [{"id": 0, "name": "spacecraft"}]
    gt["annotations"][0]["category_id"] = 0
    assert evaluate(gt, [_pred(GT_BOX)])["AP"] == 100.0


def test_bad_prediction_file_names_field(tmp_path):
    path = tmp_path / "pred.json"
    path.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 1, 1]}]))
    with pytest.raises(coco.CocoFormatError, match=r"pred\.json.*\[0\]\.score"):
        evaluate(_one_box_gt(), path)


def test_evaluate_tasks_box_only_gt_gives_nan_mask(tiny_coco):
    ds = open_coco(tiny_coco)
    out = evaluate_tasks(ds, _perfect(ds))
    assert out["box"]["AP"] == 100.0 and out["mask"]["AP"] == 100.0
    box_only = evaluate_tasks(_one_box_gt(), [_pred(GT_BOX)])
    assert box_only["box"]["AP"] == 100.0
    assert all(math.isnan(v) for v in box_only["mask"].values())
    no_masks = evaluate_tasks(ds, _perfect(ds, with_masks=False))
    assert all(math.isnan(v) for v in no_masks["mask"].values())


def test_cli_prints_one_json_object(tiny_coco, tmp_path, capsys):
    ds = open_coco(tiny_coco)
    pred = coco.save_json(_perfect(ds), tmp_path / "pred.json")
    assert main(["--gt", str(tiny_coco), "--pred", str(pred), "--iou-type", "segm"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == {"AP": 100.0, "AP50": 100.0, "AP75": 100.0}
    assert out.count("\n") == 1  # pycocotools' own prints are silenced
    with pytest.raises(SystemExit) as exc:
        main(["--gt", str(tmp_path / "missing.json"), "--pred", str(pred)])
    assert exc.value.code == 2
    assert "missing.json" in capsys.readouterr().err


def test_cli_warns_about_an_empty_prediction_list(tiny_coco, tmp_path, capsys):
    empty = coco.save_json([], tmp_path / "empty.json")
    assert main(["--gt", str(tiny_coco), "--pred", str(empty)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    assert "empty.json holds no predictions" in captured.err


def test_label_quality_per_image(tiny_coco):
    from afss_utils.evaluate import label_quality

    gt = coco.load_instances(tiny_coco)
    a0, a1 = gt["annotations"][0], gt["annotations"][1]
    x, y, w, h = a0["bbox"]
    preds = [
        # image 1: exact box and mask
        {"image_id": 1, "bbox": a0["bbox"], "score": 0.9, "segmentation": a0["segmentation"]},
        # image 2: a box of half the width (IoU 0.5), no mask; a worse-scored duplicate ignored
        {
            "image_id": 2,
            "bbox": [a1["bbox"][0], a1["bbox"][1], a1["bbox"][2] / 2, a1["bbox"][3]],
            "score": 0.4,
        },
        {"image_id": 2, "bbox": [0, 0, 1, 1], "score": 0.1},
    ]
    rows = {r["image_id"]: r for r in label_quality(gt, preds)}
    assert set(rows) == {1, 2, 3, 4}
    assert rows[1]["box_iou"] == pytest.approx(1.0) and rows[1]["mask_iou"] == pytest.approx(1.0)
    assert rows[2]["score"] == pytest.approx(0.4)
    assert rows[2]["box_iou"] == pytest.approx(0.5) and math.isnan(rows[2]["mask_iou"])
    # images 3 and 4: missed objects
    assert rows[3]["box_iou"] == 0.0 and rows[3]["mask_iou"] == 0.0 and math.isnan(rows[3]["score"])
    assert label_quality(gt, []) and all(r["box_iou"] == 0 for r in label_quality(gt, []))


# ----------------------------------------------------------------------------- category checks
def _two_category_gt(ann_category: int) -> dict:
    gt = _one_box_gt()
    gt["categories"] = [{"id": 1, "name": "spacecraft"}, {"id": 2, "name": "debris"}]
    gt["annotations"][0]["category_id"] = ann_category
    return gt


def test_category_mismatch_raises_naming_the_ids():
    with pytest.raises(ValueError, match=r"category ids \[1\].*annotates only \[2\]"):
        evaluate(_two_category_gt(2), [_pred(GT_BOX)])  # predictions say 1
    bad = dict(_pred(GT_BOX), category_id=7)
    with pytest.raises(ValueError, match=r"category ids \[7\] are not categories"):
        evaluate(_two_category_gt(1), [bad])
    assert evaluate(_two_category_gt(1), [_pred(GT_BOX)])["AP"] == pytest.approx(100.0)


def test_negative_gt_box_size_is_an_error():
    gt = _one_box_gt()
    gt["annotations"][0]["bbox"] = [10.0, 10.0, -5.0, 4.0]
    with pytest.raises(ValueError, match="annotation 1 .*negative box"):
        evaluate(gt, [_pred(GT_BOX)])


# ---------------------------------------------------------------------------- AP by object size


def _sized_gt(side: int = 100) -> dict:
    """Three side x side images, one square object each: 5, 10 and 20 px at side 100 (0.25 %,
    1 % and 4 % of the image: small, medium, large at COCO's shares)."""
    k = side / 100
    images = [{"id": i, "width": side, "height": side, "file_name": f"{i}.png"} for i in (1, 2, 3)]
    anns = [
        {"id": i, "image_id": i, "category_id": 1, "bbox": [10, 10, s * k, s * k],
         "area": (s * k) ** 2, "iscrowd": 0}
        for i, s in ((1, 5), (2, 10), (3, 20))
    ]  # fmt: skip
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "sc"}]}


def test_size_limits_are_cocos_shares_of_the_image():
    lo, hi = size_limits(_sized_gt(100))
    assert (lo, hi) == pytest.approx((32**2 / 307200 * 1e4, 96**2 / 307200 * 1e4))
    # COCO's own limits at COCO's image size
    gt = {"images": [{"id": 1, "width": 640, "height": 480}], "annotations": []}
    assert size_limits(gt) == pytest.approx((32**2, 96**2))
    with pytest.raises(ValueError, match="no image"):
        size_limits(gt, image_ids=[])


@pytest.mark.parametrize("side", [100, 1000])
def test_evaluate_by_size_scores_each_size_on_its_own_objects(side):
    gt = _sized_gt(side)
    found = [
        {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9}
        for a in gt["annotations"]
        if a["image_id"] != 2  # the medium object is missed
    ]
    got = evaluate_by_size(gt, found)
    assert got == {
        "AP small": 100.0, "AP medium": 0.0, "AP large": 100.0,
        "n small": 1.0, "n medium": 1.0, "n large": 1.0,
    }  # fmt: skip
    # the same shares of a frame ten times larger keep their sizes; over all sizes the miss
    # costs a third of the recall
    assert evaluate(gt, found)["AP"] == pytest.approx(66.67, abs=0.5)
    # and the same pixels in a frame ten times larger are all small
    wide = {
        **gt,
        "images": [{**img, "width": 10 * side, "height": 10 * side} for img in gt["images"]],
    }
    assert evaluate_by_size(wide, found)["n small"] == 3.0


def test_evaluate_by_size_without_predictions_or_objects_of_a_size():
    gt = _sized_gt()
    empty = evaluate_by_size(gt, [])
    assert [empty[f"AP {s}"] for s in ("small", "medium", "large")] == [0.0, 0.0, 0.0]
    only_large = evaluate_by_size(gt, [], image_ids=[3])
    assert math.isnan(only_large["AP small"]) and math.isnan(only_large["AP medium"])
    assert only_large["AP large"] == 0.0 and only_large["n large"] == 1.0
    hit = [{"image_id": 3, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.5}]
    scored = evaluate_by_size(gt, hit, image_ids=[3])
    assert math.isnan(scored["AP small"]) and scored["AP large"] == 100.0
    with pytest.raises(ValueError, match="iou_type"):
        evaluate_by_size(gt, hit, iou_type="keypoints")


def test_evaluate_tasks_and_score_rows_carry_ap_by_size_from_the_same_run(tiny_coco):
    """Each task's row has AP by object size equal to evaluate_by_size's, and its AP equal to
    evaluate's: the size limits split the objects without moving AP over all sizes."""
    from afss_utils.evaluate import score_rows

    ds = open_coco(tiny_coco)
    preds = _perfect(ds)
    preds[0]["bbox"] = [v + 3 for v in preds[0]["bbox"]]  # one loose box: not all 100
    out = evaluate_tasks(ds, preds, tasks=("box",))["box"]
    by_size = evaluate_by_size(ds, preds)
    assert {k: out[k] for k in ("AP small", "AP medium", "AP large")} == pytest.approx(
        {k: by_size[k] for k in ("AP small", "AP medium", "AP large")}, nan_ok=True
    )
    assert {k: out[k] for k in ("AP", "AP50", "AP75")} == evaluate(ds, preds)
    (row,) = score_rows(ds, preds, tasks=("box",))
    assert row.pop("task") == "box" and row == pytest.approx(out, nan_ok=True)
    empty = evaluate_tasks(ds, [], tasks=("box",))["box"]
    assert empty["AP"] == 0.0 and all(
        empty[f"AP {s}"] == 0.0 or (math.isnan(empty[f"AP {s}"]) and by_size[f"n {s}"] == 0)
        for s in ("small", "medium", "large")
    )


def _box_sized_gt() -> dict:
    """Three 100 x 100 images, one square box each, of 4, 15 and 50 px sides (0.16 %, 2.25 %
    and 25 % of the image); every mask area 1 px, so binning by box area is what separates them."""
    images = [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in (1, 2, 3)]
    anns = [
        {"id": i, "image_id": i, "category_id": 1, "bbox": [10, 10, s, s], "area": 1.0,
         "iscrowd": 0}
        for i, s in ((1, 4), (2, 15), (3, 50))
    ]  # fmt: skip
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "sc"}]}


def test_ap_by_size_bins_scores_each_box_size_bin_on_its_own_objects():
    gt = _box_sized_gt()
    small = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 4, 4], "score": 0.9}
    rows = ap_by_size_bins(gt, [small], edges=[0, 0.0025, 0.01, 0.16, 1.0])
    assert [(r["share lo"], r["share hi"], r["n"]) for r in rows] == [
        (0.0, 0.0025, 1), (0.0025, 0.01, 0), (0.01, 0.16, 1), (0.16, 1.0, 1),
    ]  # fmt: skip
    got = [[r[m] for m in ("AP", "AP50", "AP75")] for r in rows]
    assert got[0] == [100.0] * 3  # the small box found
    assert all(math.isnan(v) for v in got[1])  # no object of this size: NaN, not 0
    assert got[2] == got[3] == [0.0] * 3  # the medium and the large box missed
    # one bin over all sizes is evaluate's AP; the annotations' own areas (1 px) play no part
    (whole,) = ap_by_size_bins(gt, [small], edges=[0, 1])
    assert {m: whole[m] for m in ("AP", "AP50", "AP75")} == evaluate(gt, [small])
    assert whole["n"] == 3


def test_ap_by_size_bins_edges_empty_predictions_and_errors():
    gt = _box_sized_gt()
    # a box exactly on an edge (15^2 px = 2.25 %) falls in one bin, the upper
    on_edge = ap_by_size_bins(gt, [], edges=[0, 0.0225, 1.0])
    assert [r["n"] for r in on_edge] == [1, 2]
    empty = ap_by_size_bins(gt, [], edges=[0, 0.0025, 0.01, 1.0])
    assert [r["n"] for r in empty] == [1, 0, 2]
    assert [r["AP"] for r in empty][::2] == [0.0, 0.0] and math.isnan(empty[1]["AP75"])
    only = ap_by_size_bins(gt, [], edges=[0, 0.01, 1.0], image_ids=[3])
    assert math.isnan(only[0]["AP"]) and only[1]["AP"] == 0.0 and only[1]["n"] == 1
    for bad in ([0.5], [0, 0.1, 0.1], [-0.1, 1]):
        with pytest.raises(ValueError, match="edges"):
            ap_by_size_bins(gt, [], edges=bad)
    with pytest.raises(ValueError, match="iou_type"):
        ap_by_size_bins(gt, [], iou_type="keypoints")
    with pytest.raises(ValueError, match="not in the ground truth"):
        ap_by_size_bins(gt, [{"image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}])


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_ap_by_size_bins_perfect_masks_and_boxes(tiny_coco, iou_type):
    ds = open_coco(tiny_coco)
    rows = ap_by_size_bins(ds, _perfect(ds), iou_type=iou_type)
    assert sum(r["n"] for r in rows) == len(ds.instances["annotations"])
    assert all(r["AP"] == 100.0 if r["n"] else math.isnan(r["AP"]) for r in rows)


# ---------------------------------------------------------------------------- Earth confusions
EARTH = [50, 0, 50, 100]  # xywh: the right half of a 100 x 100 frame
CRAFT = np.array([5.0, 5.0, 25.0, 25.0])  # xyxy, on the left half


def _earth_gt() -> dict:
    """Six 100 x 100 images, one spacecraft each at CRAFT; the Earth (EARTH) in frame on 1, 2, 3
    and 6, not on 5 (``earth_box`` null) and unknown on 4 (no key, as in a real dataset)."""
    earth = {1: EARTH, 2: EARTH, 3: EARTH, 5: None, 6: EARTH}
    images = [
        coco.make_image(i, f"{i}.png", 100, 100, **({"earth_box": earth[i]} if i in earth else {}))
        for i in range(1, 7)
    ]
    anns = [coco.make_annotation(i, i, box_xyxy=CRAFT) for i in range(1, 7)]
    return coco.make_instances(images, anns)


def test_earth_confusions_counts_only_a_top_box_on_the_earth():
    on_earth, on_craft = [60, 10, 90, 50], CRAFT
    preds = [
        _pred(on_earth, 0.8, 1),  # 1: the top box on the Earth: a confusion...
        _pred(on_craft, 0.2, 1),  # ...whatever a lower-scoring box found
        _pred(on_craft, 0.9, 2),  # 2: the top box on the spacecraft
        _pred(on_earth, 0.5, 2),
        # 3: no prediction at all: a miss, not a confusion
        _pred(on_earth, 0.7, 4),  # 4: Earth unknown
        _pred(on_earth, 0.7, 5),  # 5: no Earth in frame
        _pred([10, 40, 60, 80], 0.6, 6),  # 6: misses both, only 1/5 of it on the Earth
    ]
    got = earth_confusions(_earth_gt(), preds)
    assert list(got.columns) == ["image_id", "file_name", "score", "iou_gt", "iou_earth"]
    assert got["image_id"].tolist() == [1]
    row = got.iloc[0]
    assert row["file_name"] == "1.png" and row["score"] == pytest.approx(0.8)
    assert row["iou_gt"] == 0.0
    assert row["iou_earth"] == pytest.approx(30 * 40 / (50 * 100))


def test_earth_confusions_needs_a_miss_and_the_earth_closer_than_the_spacecraft():
    # a box over the spacecraft and the whole Earth: mostly on the Earth, IoU 0.04 with the GT
    gt = _earth_gt()
    gt["images"][0]["earth_box"] = [10, 0, 90, 100]
    wide = [_pred([5, 0, 100, 100], 0.9, 1)]
    (iou_gt,) = earth_confusions(gt, wide, iou_miss=1.0)["iou_gt"]  # counted when nothing hits
    assert iou_gt == pytest.approx(400 / 9500)
    assert earth_confusions(gt, wide, iou_miss=0.04).empty  # it "hits" the spacecraft
    gt["images"][0]["earth_box"] = [95, 0, 5, 5]  # a sliver of Earth: the box is not "on" it
    assert earth_confusions(gt, wide, iou_miss=1.0).empty
    # an Earth filling the frame behind a loose box around the spacecraft: all of the box is on
    # the Earth and it misses (IoU 0.25 < 0.3), but it is closer to the spacecraft (IoU 0.16)
    gt["images"][0]["earth_box"] = [0, 0, 100, 100]
    assert earth_confusions(gt, [_pred([5, 5, 45, 45], 0.9, 1)]).empty


def test_earth_confusions_without_any_earth_box_is_an_empty_frame():
    gt = _earth_gt()
    for img in gt["images"]:
        img.pop("earth_box", None)
    preds = [_pred([60, 10, 90, 50], 0.8, i) for i in range(1, 7)]
    for got in (earth_confusions(gt, preds), earth_confusions(_earth_gt(), [])):
        assert got.empty
        assert list(got.columns) == ["image_id", "file_name", "score", "iou_gt", "iou_earth"]
