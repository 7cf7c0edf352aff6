"""The generated prose states the numbers of the table it is given, and changes with them."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from afss_utils import narrative


def _zero_shot(ap75_a: float) -> pd.DataFrame:
    rows = [
        ("lightbox", "a", "box", 70.0, 90.0, ap75_a),
        ("lightbox", "b", "box", 60.0, 85.0, 55.0),
        ("lightbox", "a", "mask", 40.0, 70.0, 30.0),
    ]
    return pd.DataFrame(rows, columns=["dataset", "model", "task", "AP", "AP50", "AP75"])


def test_zero_shot_names_the_best_teacher_with_its_numbers():
    text = narrative.zero_shot(_zero_shot(75.0), {"gsam2": "weights not found"})
    assert "**a** is best with box AP75 75.0" in text and "not run: `gsam2`" in text
    # the prose follows the data: when b wins, b is named
    assert "**b** is best with box AP75 55.0" in narrative.zero_shot(_zero_shot(50.0))


def test_tta_choice_counts_gains_and_states_them():
    rows = pd.DataFrame(
        {
            "dataset": ["x", "y"],
            "setting": ["vflip / wbf", "none / none"],
            "single": [50.0, 60.0],
            "chosen": [55.0, 60.0],
            "cost": [2.0, 1.0],
        }
    )
    text = narrative.tta_choice(rows)
    assert "TTA helps on 1 of 2 datasets" in text and "(+5.0)" in text and "2.0x" in text


def test_tta_views_reports_single_and_best():
    box = pd.DataFrame(
        {
            "dataset": ["x"] * 3,
            "fusion": ["none", "wbf", "wbf"],
            "views": [1, 2, 3],
            "AP75": [50.0, 60.0, 40.0],
        }
    )
    text = narrative.tta_views(box)
    assert "single view 50.0; best set of 2 views 60.0, of 3 views 40.0" in text


def test_confidence_filter_and_label_quality():
    cf = pd.DataFrame(
        [
            {
                "dataset": "x",
                "theta": 0.5,
                "train images": 10,
                "kept": 7,
                "box IoU kept": 0.8,
                "box IoU dropped": 0.4,
            }
        ]
    )
    text = narrative.confidence_filter(cf)
    assert "θ = 0.500 keeps 7 of 10" in text and "1 of 1 datasets" in text
    q = pd.DataFrame({"dataset": ["x", "x"], "labels": ["single", "tta"], "box_iou": [0.5, 0.75]})
    assert "single view 0.500, TTA 0.750" in narrative.label_quality(q)


def test_distillation_states_rows_and_effects():
    rows = [
        ("x", "teacher zero-shot", "t", 50.0),
        ("x", "Oracle", "Y", 90.0),
        ("x", "TTA+WBF", "Y", 60.0),
        ("x", "TTA+WBF+CF", "Y", 65.0),
        ("x", "TTA+WBF+CF+TR", "Y", 63.0),
    ]
    ours = pd.DataFrame(rows, columns=["dataset", "method", "model", "AP75"]).assign(task="box")
    text = narrative.distillation(ours, "t", ["Y"])
    assert "Oracle 90.0" in text and "TTA+WBF+CF 65.0 vs the teacher's 50.0 (+15.0)" in text
    assert "CF +5.0, TR -2.0" in text


def test_convergence_and_relabel_rounds():
    curve = pd.DataFrame({"epoch": [1, 2], "dataset": ["x", "x"], "AP": [10.0, 12.5]})
    text = narrative.convergence(curve, {"x": 50.0})
    assert "Oracle box AP 12.5 after 2 epochs (+2.5 over epoch 1)" in text
    assert "no checkpoint" in narrative.convergence(curve.iloc[:0], {})
    rr = pd.DataFrame(
        {
            "dataset": ["x", "x"],
            "student": ["s", "s"],
            "round": [0, 1],
            "task": ["box"] * 2,
            "AP75": [40.0, 42.0],
        }
    )
    assert "round 0 40.0, round 1 42.0" in narrative.relabel_rounds(rr)


def test_dataset_stats_names_the_hardest_domain():
    stats = pd.DataFrame(
        {
            "dataset": ["a", "b"],
            "split": ["test"] * 2,
            "gap %": [20.0, 5.0],
            "brightness %": [30.0, 10.0],
            "area p50 %": [9.0, 3.0],
            "truncated %": [30.0, 10.0],
        }
    )
    text = narrative.dataset_stats(stats)
    assert "`b` has the smallest object-background gap (5.0 %" in text


def test_require_names_the_notebook(tmp_path):
    narrative.require([tmp_path], "00")
    with pytest.raises(FileNotFoundError, match="Run notebook 02_tta_ablation first"):
        narrative.require([tmp_path / "missing.csv"], "02_tta_ablation")


def test_run_from_repo_root_only_moves_out_of_notebooks(tmp_path, monkeypatch):
    (tmp_path / "afss_utils").mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert narrative.run_from_repo_root() == tmp_path.resolve()
    assert os.getcwd() == str(tmp_path.resolve())
    monkeypatch.chdir(tmp_path / "afss_utils")
    assert narrative.run_from_repo_root() == (tmp_path / "afss_utils").resolve()


# ---- 05 debris tracking
def test_debris_splits_states_density_and_the_dense_split():
    splits = pd.DataFrame(
        {
            "split": ["train", "test_sparse", "test_dense"],
            "videos": [4, 2, 2],
            "frames": [40, 20, 20],
            "debris boxes": [60, 30, 90],
            "tracks": [8, 4, 10],
        }
    )
    text = narrative.debris_splits(splits)
    assert "`train`: 4 videos, 40 frames, 1.50 debris per frame, 2.0 tracks per video" in text
    assert "holds 5.0 tracks per video against 2.0 in the sparse one" in text
    assert "no split" in narrative.debris_splits(splits.iloc[:0])
    with pytest.raises(KeyError, match="'tracks'"):
        narrative.debris_splits(splits.drop(columns="tracks"))


def test_zscale_frame_states_the_range_and_clipping():
    stats = pd.DataFrame(
        [
            {
                "k": 2.5,
                "median": 1000.0,
                "std": 40.0,
                "z1": 900.0,
                "z2": 1100.0,
                "min": 950.0,
                "max": 60000.0,
                "below z1 %": 0.25,
                "above z2 %": 1.5,
                "max |diff| stored": 1,
            }
        ]
    )
    text = narrative.zscale_frame(stats)
    assert "spans 950–60000 counts" in text and "[z1, z2] = [900.0, 1100.0]" in text
    assert "0.25 % of the pixels are clipped to 0 and 1.50 % to 255" in text
    assert "by at most 1 grey level" in text
    with pytest.raises(KeyError, match="max \\|diff\\| stored"):
        narrative.zscale_frame(stats.drop(columns="max |diff| stored"))


def test_debris_motion_reports_speed_and_angle_across_the_wrap():
    track = pd.DataFrame(
        {"frame": [1, 2, 3], "v": [float("nan"), 4.0, 4.02], "theta": [None, 179.0, -179.0]}
    )
    text = narrative.debris_motion(track, (3.0, 7.0))
    assert "over 2 steps (frames 1–3)" in text and "v = 4.01 px per frame" in text
    assert "θ = 180.0°" in text and "spread 2.00°" in text and "inside" in text
    assert "differ by 0.02 px (the json rounds" in text
    assert "outside" in narrative.debris_motion(track.assign(v=[None, 9.0, 9.0]), (3.0, 7.0))
    assert "single frame" in narrative.debris_motion(track.iloc[:1], (3.0, 7.0))


def test_debris_labels_counts_per_true_debris_and_cf_share():
    counts = pd.DataFrame(
        {
            "split": ["train", "test_dense"],
            "ground truth": [100, 40],
            "teacher zero-shot": [80, 30],
            "teacher TTA+fusion": [120, 36],
            "kept by CF": [48, float("nan")],
        }
    )
    text = narrative.debris_labels(counts, 0.4321)
    assert "`train`: 80 boxes alone, 120 after TTA+fusion (1.20 per true debris)" in text
    assert "CF at θ = 0.432 keeps 48 (40.0 %)" in text
    assert "`test_dense`: 30 boxes alone, 36 after TTA+fusion (0.90 per true debris)" in text
    assert text.count("CF at") == 1
    with pytest.raises(KeyError, match="kept by CF"):
        narrative.debris_labels(counts.drop(columns="kept by CF"), 0.4)


def test_debris_train_sets_per_frame():
    sets = pd.DataFrame(
        {"training set": ["student", "Oracle"], "images": [30, 40], "boxes": [45, 80]}
    )
    text = narrative.debris_train_sets(sets)
    assert "`student`: 45 boxes on 30 frames (1.50 per frame)" in text
    assert "`Oracle`: 80 boxes on 40 frames (2.00 per frame)" in text
    assert "no training set" in narrative.debris_train_sets(sets.iloc[:0])


def _long_mot() -> pd.DataFrame:
    rows = [
        ("teacher", "ocsort", "sparse", 50.0, 60.0, 2, 40.0, 30.0, 55.0),
        ("Oracle", "ocsort", "sparse", 80.0, 85.0, 1, 70.0, 75.0, 65.0),
        ("teacher", "ocsort", "dense", 20.0, 30.0, 5, 25.0, 20.0, 31.0),
        ("Oracle", "ocsort", "dense", 60.0, 66.0, 3, 45.0, 50.0, 41.0),
    ]
    cols = ["detector", "tracker", "split", "MOTA", "IDF1", "IDS", "HOTA", "DetA", "AssA"]
    return pd.DataFrame(rows, columns=cols)


def test_debris_mot_rows_names_the_best_row_and_the_limit():
    text = narrative.debris_mot_rows(_long_mot())
    assert "DetA is below AssA on 2 of 4 rows" in text
    assert "`sparse`: best HOTA 70.0 by Oracle + ocsort (DetA 75.0, AssA 65.0; MOTA 80.0" in text
    assert "`dense`: best HOTA 45.0 by Oracle + ocsort" in text and "3 ID switches" in text
    assert "no tracking row" in narrative.debris_mot_rows(_long_mot().iloc[:0])


def test_mot_cross_check_counts_agreement_and_explains_by_ids():
    long = pd.DataFrame(
        {
            "MOTA": [50.0, 40.0],
            "mm_MOTA": [50.0, 50.0],
            "IDF1": [60.0, 70.0],
            "mm_IDF1": [60.0, 70.0],
            "IDS": [1, 3],
            "mm_IDS": [1, 2],
            "CLR_TP": [8, 8],
            "CLR_FN": [2, 2],
        }
    )
    text = narrative.mot_cross_check(long)
    # row 2: dMOTA = -10 = -100 * (3 - 2) / 10, explained by one more ID switch
    assert "same IDF1 on 2 of 2 rows and the same MOTA on 1 of 2" in text and ": yes." in text
    assert "no (1 rows are not)" in narrative.mot_cross_check(long.assign(mm_IDS=[1, 3]))
    with pytest.raises(KeyError, match="mm_IDS"):
        narrative.mot_cross_check(long.drop(columns="mm_IDS"))


def test_debris_table_best_rows_of_each_source():
    table = pd.DataFrame(
        {
            "source": ["ours (simulated)", "ours (simulated)", "paper (SDTD)", "paper (SDTD)"],
            "detector": ["student", "Oracle", "OC-SORT", "SDT-Net"],
            "tracker": ["ocsort", "bytetrack", "OC-SORT", "SDT-Net"],
            "sparse MOTA": [40.0, 70.0, 84.1, 87.7],
            "sparse HOTA": [35.0, 60.0, 83.7, 87.8],
        }
    )
    text = narrative.debris_table(table)
    assert "ours best Oracle + bytetrack (HOTA 60.0, MOTA 70.0)" in text
    assert "our Oracle best Oracle + bytetrack" in text
    assert "the paper's best SDT-Net + SDT-Net (HOTA 87.8, MOTA 87.7)" in text
    assert "`dense`" not in text
    assert "no HOTA column" in narrative.debris_table(table.drop(columns="sparse HOTA"))


def test_debris_tracks_counts_identities_and_matching_frames():
    gt = pd.DataFrame({"frame": [1, 1, 2, 2, 3], "id": [1, 2, 1, 2, 1]})
    tracked = pd.DataFrame({"frame": [2, 2, 3, 3], "id": [5, 6, 5, 7]})
    text = narrative.debris_tracks(gt, tracked, "v1", [1, 2, 3, 4])
    assert "the truth holds 2 debris tracks (5 boxes)" in text
    assert "reports 3 identities (4 boxes)" in text
    assert "matches the truth on 2 of 4 frames" in text  # frames 2 and 4
    with pytest.raises(KeyError, match="tracked"):
        narrative.debris_tracks(gt, tracked.drop(columns="id"), "v1")


def test_debris_mota_hota_best_worst_and_dense_drop():
    long = _long_mot()
    text = narrative.debris_mota_hota(long)
    assert "`sparse`: best Oracle (HOTA 70.0, MOTA 80.0), worst teacher (HOTA 40.0" in text
    # dense - sparse HOTA: teacher -15, Oracle -25 -> mean -20
    assert "HOTA changes by -20.0 points" in text
    assert "no detector" in narrative.debris_mota_hota(long.iloc[:0])


def test_stage_times_total_and_largest_share():
    text = narrative.stage_times(pd.Series({"simulate": 5.0, "train": 15.0}))
    assert "took 20.0 s" in text and "`train` (15.0 s, 75.0 %)" in text
    assert "no stage" in narrative.stage_times(pd.Series(dtype=float))


# ---- 06 spacecraft classification
def test_06_narratives_say_so_when_the_table_is_empty_or_lacks_a_column():
    empty = pd.DataFrame()
    for fn in (
        narrative.type_splits,
        narrative.loss_by_hand,
        narrative.center_grid_search,
        narrative.center_history,
        narrative.center_classification,
        narrative.center_per_class,
        narrative.center_heatmaps,
    ):
        assert "lacks column(s)" in fn(empty), fn.__name__
    assert "lacks column(s) images" in narrative.type_splits(pd.DataFrame({"split": ["x"]}))
    assert "is empty" in narrative.type_splits(pd.DataFrame(columns=["split", "images"]))
    assert "is empty" in narrative.heatmap_by_hand(empty, 0.5)
    assert "is empty" in narrative.center_confusion(empty)
    assert "lacks column(s) predict" in narrative.decode_by_hand(
        pd.DataFrame({"by hand": [1.0]}), "a"
    )
    assert "no row of ours" in narrative.center_classification(
        pd.DataFrame(
            {"source": ["report"], "class accuracy %": [96.0], "center-cell accuracy": [0.78]}
        )
    )


def test_type_splits_counts_images_and_type_range():
    counts = pd.DataFrame({"split": ["train", "test"], "images": [12, 6], "a": [5, 2], "b": [7, 4]})
    text = narrative.type_splits(counts)
    assert "2 types" in text and "`train`: 12 images, each type 5–7 times" in text
    assert "`test`: 6 images, each type 2–4 times" in text


def test_heatmap_by_hand_reads_peak_neighbour_and_support():
    t = [[0.0] * 4 for _ in range(4)]
    t[2][1], t[1][1], t[2][2] = 1.0, 0.135, 0.135
    text = narrative.heatmap_by_hand(pd.DataFrame(t), 0.5)
    assert "cell (row 2, col 1) holds 1.000" in text
    assert "exp(−1/2σ²) = 0.135 at σ = 0.50" in text  # exp(-2) at sigma 0.5
    assert "3 of 16 cells are non-zero (radius 3σ = 1.50 cells)" in text


def test_loss_by_hand_weights_and_sums_the_terms():
    terms = pd.DataFrame(
        {"weight": [3.0, 5.0, 1.0], "by hand": [0.5, 0.1, 1.5], "package": [0.5, 0.1, 1.5001]},
        index=["center", "box", "class"],
    )
    text = narrative.loss_by_hand(terms)
    assert "L = 3 · 0.500 (center) + 5 · 0.100 (box) + 1 · 1.500 (class) = 3.500" in text
    assert "largest weighted term is center" in text and "at most 1.0e-04" in text


def test_center_grid_search_picks_each_stage_like_grid_search():
    trials = pd.DataFrame(
        {
            "trial": [1, 2, 3],
            "stage": [1, 1, 2],
            "lr": [1e-4, 3e-4, 3e-4],
            "val_AP": [20.0, 20.0, 35.0],
            "val_cell_accuracy": [0.5, 0.75, 0.25],
        }
    )
    text = narrative.center_grid_search(trials)
    assert "stage 1 (2 trials): trial 2 (lr = 0.0003), val box AP 20.0, cell accuracy 0.75" in text
    assert "stage 2 (1 trials): trial 3" in text and "3 trials" in text


def test_center_history_first_and_last_epoch():
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [9.0, 5.0, 2.5],
            "center": [1.0, 0.5, 0.25],
            "box": [0.2, 0.1, 0.05],
            "cls": [1.79, 1.5, 1.0],
        }
    )
    text = narrative.center_history(history, num_types=6)
    assert "from 9.000 (epoch 1) to 2.500 (epoch 3)" in text
    assert "center 1.000 → 0.250, box 0.200 → 0.050, class 1.790 → 1.000" in text
    assert "ln 6 = 1.792" in text
    one = narrative.center_history(history.iloc[:1])
    assert "after its only epoch the weighted loss is 9.000; per term center 1.000" in one
    assert "ln" not in one


def test_decode_by_hand_states_cell_box_and_agreement():
    index = ["row", "col", "score", "x1", "y1", "x2", "y2"]
    hand = [1, 2, 0.875, 10.0, 20.0, 30.0, 40.0]
    table = pd.DataFrame(
        {"by hand": hand, "predict": [*hand[:3], 10.0, 20.0, 30.0, 40.002]}, index=index
    )
    text = narrative.decode_by_hand(table, "relay")
    assert "(row 1, col 2) with center probability 0.875" in text
    assert "[10.0, 20.0, 30.0, 40.0]" in text and "`relay`" in text and "within 2.0e-03" in text
    table["predict"] = float("nan")
    assert "kept no detection" in narrative.decode_by_hand(table, "relay")


def test_center_classification_sets_ours_beside_the_report():
    summary = pd.DataFrame(
        [
            {
                "source": "ours (synthetic, 6 types)",
                "class accuracy %": 62.5,
                "center-cell accuracy": 0.4375,
                "box AP": 30.25,
                "box AP50": 70.75,
            },
            {"source": "report (SPARK)", "class accuracy %": 96.0, "center-cell accuracy": 0.78},
        ]
    )
    text = narrative.center_classification(summary, num_types=6)
    assert "class accuracy **62.5 %** (chance: 16.7 %) against the report's ≈ 96 %" in text
    assert "center-cell accuracy **0.44** against its 0.78" in text
    assert "box AP50 70.8, AP 30.2" in text


def test_center_per_class_best_worst_and_absent():
    per_class = pd.DataFrame(
        {"type": ["a", "b", "c", "d"], "accuracy %": [50.0, 100.0, float("nan"), 50.0]}
    )
    text = narrative.center_per_class(per_class)
    assert "best `b` (100.0 %), worst `a`, `d` (50.0 %)" in text
    assert "no test image of `c`" in text


def test_center_confusion_diagonal_and_worst_pair():
    conf = pd.DataFrame([[3, 2, 0], [0, 4, 1], [0, 0, 5]], index=list("abc"), columns=list("abc"))
    text = narrative.center_confusion(conf)
    assert "12 of 15 test images lie on the diagonal" in text
    assert "`a` read as `b` (2 images)" in text
    conf.iloc[0, 1] = 1
    assert "(1 image)." in narrative.center_confusion(conf)
    assert "no type was mistaken" in narrative.center_confusion(pd.DataFrame([[1, 0], [0, 1]]))


def test_center_heatmaps_counts_right_types_and_cells():
    shown = pd.DataFrame(
        {
            "image_id": [1, 2],
            "true type": ["a", "b"],
            "predicted type": ["a", "a"],
            "score": [0.9, 0.25],
            "cell": [(1, 1), (0, 1)],
            "true cell": [(1, 1), (1, 1)],
        }
    )
    text = narrative.center_heatmaps(shown)
    assert "1 of 2 shown types and 1 of 2 center cells are right" in text
    assert "image 2: `b` predicted `a` (p = 0.250), cell (0, 1) vs true (1, 1)" in text
