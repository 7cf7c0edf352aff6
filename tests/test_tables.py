"""Table files and the paper's transcribed tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from afss_utils.tables import (
    METRICS,
    PAPER_SOURCE,
    PAPER_TABLE1,
    PAPER_TABLE2,
    PAPER_TABLE3,
    beside_paper,
    ours_source,
    paper_table,
    pivot_metrics,
    to_markdown,
    write_table,
)


def _ours() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"dataset": "earth", "method": "zero-shot", "model": "classical_threshold",
             "task": "box", "AP": 41.234, "AP50": 80.05, "AP75": 38.0, "s_per_image": 0.0123},
            {"dataset": "lightbox", "method": "zero-shot", "model": "classical_threshold",
             "task": "box", "AP": 55.55, "AP50": 90.0, "AP75": np.nan, "s_per_image": 0.02},
        ]
    )  # fmt: skip


def test_write_table_csv_and_markdown(tmp_path):
    df = _ours()
    csv_path, md_path = write_table(df, "table1_zero_shot", tmp_path)
    assert csv_path == tmp_path / "tables" / "table1_zero_shot.csv"
    assert md_path == tmp_path / "tables" / "table1_zero_shot.md"
    pd.testing.assert_frame_equal(pd.read_csv(csv_path), df)  # full precision in the CSV
    md = md_path.read_text().splitlines()
    assert md[0].startswith("|") and "dataset" in md[0] and set(md[1]) <= set("|:- ")
    assert len(md) == 2 + len(df)
    assert "41.2" in md[2] and "41.23" not in md[2] and "80.0" in md[2]
    assert "N/A" in md[3] and "nan" not in md[3]


def test_write_table_empty(tmp_path):
    csv_path, md_path = write_table(pd.DataFrame(columns=["dataset", "AP"]), "empty", tmp_path)
    assert pd.read_csv(csv_path).empty
    assert "dataset" in md_path.read_text()


def test_paper_tables_shape():
    t1, t2, t3 = (paper_table(n) for n in (1, 2, 3))
    assert len(t1) == len(PAPER_TABLE1) == 4 * 3 * 2  # datasets x VLMs x tasks
    assert len(t2) == len(PAPER_TABLE2) == 4 * 2
    assert len(t3) == len(PAPER_TABLE3) == 4 * 4 * 3  # datasets x rows x (EffDet, YOLO box, mask)
    for t in (t1, t2, t3):
        assert list(t.columns) == ["dataset", "method", "model", "task", *METRICS, "source"]
        assert (t["source"] == PAPER_SOURCE).all()
        assert set(t["dataset"]) == {"spark", "sunlamp", "lightbox", "tango"}
        # SPARK-2024 has no masks: N/A in the paper, NaN here; everything else is a number.
        spark_mask = (t["dataset"] == "spark") & (t["task"] == "mask")
        assert t.loc[spark_mask, list(METRICS)].isna().all().all()
        values = t.loc[~spark_mask, list(METRICS)]
        assert values.notna().all().all() and ((values >= 0) & (values <= 100)).all().all()
        # AP averages over IoU >= 0.5 thresholds, so it never exceeds AP50.
        assert (values["AP"] <= values["AP50"]).all()
    assert set(t3["method"]) == {"Oracle", "TTA+WBF", "TTA+WBF+CF", "TTA+WBF+CF+TR"}
    assert set(zip(t3["model"], t3["task"], strict=True)) == {
        ("EfficientDet", "box"),
        ("YOLOv11", "box"),
        ("YOLOv11", "mask"),
    }


@pytest.mark.parametrize(
    "number, key, expected",
    [  # spot checks against the paper's text
        (1, ("sunlamp", "zero-shot", "GSAM-2", "box"), (73.9, 97.9, 92.1)),
        (1, ("tango", "zero-shot", "OpenSEED", "mask"), (62.2, 91.6, 77.9)),
        (2, ("lightbox", "TTA+WBF", "GSAM-2", "mask"), (66.8, 85.0, 73.8)),
        (3, ("spark", "TTA+WBF+CF+TR", "YOLOv11", "box"), (76.4, 99.5, 98.2)),
        (3, ("tango", "Oracle", "EfficientDet", "box"), (87.4, 94.8, 93.0)),
        (3, ("lightbox", "TTA+WBF+CF", "YOLOv11", "mask"), (62.5, 92.1, 72.6)),
    ],
)
def test_paper_values(number, key, expected):
    t = paper_table(number).set_index(["dataset", "method", "model", "task"])
    assert tuple(t.loc[key, list(METRICS)]) == expected


def test_paper_table_filter_and_bad_number():
    assert set(paper_table(2, ["tango"])["dataset"]) == {"tango"}
    with pytest.raises(ValueError, match="Tables 1-3"):
        paper_table(4)


def test_beside_paper_groups_by_dataset():
    both = beside_paper(_ours(), 1)
    assert list(both["dataset"].drop_duplicates()) == [
        "earth",
        "lightbox",
        "spark",
        "sunlamp",
        "tango",
    ]
    lbox = both[both["dataset"] == "lightbox"]
    assert list(lbox["source"]) == ["ours (synthetic)"] + [PAPER_SOURCE] * 6
    assert math.isnan(both.loc[both["source"] == PAPER_SOURCE, "s_per_image"].iloc[0])
    only = beside_paper(_ours(), paper_table(1), source="mine", datasets=["lightbox"])
    assert set(only["dataset"]) == {"earth", "lightbox"} and "mine" in set(only["source"])
    empty = beside_paper(pd.DataFrame(columns=["dataset", "task", *METRICS]), 2)
    assert len(empty) == len(PAPER_TABLE2)


def test_pivot_metrics_paper_shape():
    wide = pivot_metrics(paper_table(1))
    assert len(wide) == 12
    assert list(wide.columns) == [
        "dataset", "method", "model", "source",
        "box AP", "box AP50", "box AP75", "mask AP", "mask AP50", "mask AP75",
    ]  # fmt: skip
    assert list(wide["dataset"][:3]) == ["spark"] * 3  # paper order kept
    row = wide[(wide["dataset"] == "lightbox") & (wide["model"] == "SEEM")].iloc[0]
    assert (row["box AP"], row["mask AP75"]) == (11.4, 41.8)
    assert "|" in to_markdown(wide)
    assert pivot_metrics(paper_table(1).iloc[:0]).empty


def test_embed_tables_replaces_marked_blocks(tmp_path):
    from afss_utils.tables import embed_tables

    long = pd.DataFrame(
        [
            {
                "dataset": "d",
                "method": "m",
                "model": "x",
                "task": "box",
                "AP": 1.0,
                "AP50": 2.0,
                "AP75": 3.0,
            },
            {
                "dataset": "d",
                "method": "m",
                "model": "x",
                "task": "mask",
                "AP": 4.0,
                "AP50": 5.0,
                "AP75": 6.0,
            },
        ]
    )
    long.to_csv(tmp_path / "t1.csv", index=False)
    pd.DataFrame({"a": [1.25]}).to_csv(tmp_path / "plain.csv", index=False)
    text = "intro\n<!-- table: t1 -->\nold\n<!-- /table -->\nmid\n<!-- table: plain -->\n<!-- /table -->\nend\n"
    out = embed_tables(text, tmp_path)
    assert "old" not in out and out.startswith("intro\n") and out.endswith("end\n")
    assert "box AP75" in out and "mask AP" in out and "6.0 |" in out  # pivoted to the wide shape
    assert "1.25" in out  # plain table rendered with significant digits
    assert embed_tables(out, tmp_path) == out  # idempotent
    # two empty blocks in a row: each is filled, the text between them survives
    two = "<!-- table: plain -->\n<!-- /table -->\nkeep me\n<!-- table: t1 -->\n<!-- /table -->\n"
    filled = embed_tables(two, tmp_path)
    assert "keep me" in filled and filled.count("<!-- /table -->") == 2 and "box AP75" in filled
    with pytest.raises(FileNotFoundError, match="missing"):
        embed_tables("<!-- table: nope -->\n<!-- /table -->", tmp_path)


def test_record_benchmarks_replaces_same_setting_and_keeps_others(tmp_path):
    from afss_utils.tables import record_benchmarks

    record_benchmarks(
        [{"benchmark": "a", "setting": "x", "value": 1.0, "unit": "s", "notes": ""}], tmp_path
    )
    record_benchmarks(
        [{"benchmark": "b", "setting": "y", "value": 2.0, "unit": "s", "notes": ""}], tmp_path
    )
    path = record_benchmarks(
        [{"benchmark": "a", "setting": "x", "value": 3.0, "unit": "s", "notes": "rerun"}], tmp_path
    )
    df = pd.read_csv(path)
    assert sorted(zip(df["benchmark"], df["value"], strict=True)) == [("a", 3.0), ("b", 2.0)]
    assert (tmp_path / "tables" / "benchmarks.md").is_file()
    assert record_benchmarks([], tmp_path) == path and len(pd.read_csv(path)) == 2


def test_mean_over_seeds_mean_spread_and_single_seed():
    from afss_utils.tables import mean_over_seeds

    key = {"dataset": "lightbox", "model": "YOLOv11", "task": "box"}
    runs = pd.DataFrame(
        [
            {**key, "method": "Oracle", "seed": 0, "AP": 70.0, "AP50": 90.0, "AP75": 75.0,
             "epochs": 16, "init": "scratch"},
            {**key, "method": "Oracle", "seed": 1, "AP": 74.0, "AP50": 91.0, "AP75": 80.0,
             "epochs": 16, "init": "scratch"},
            {**key, "method": "TTA+WBF+CF", "seed": 0, "AP": 60.0, "AP50": 85.0, "AP75": 62.0,
             "epochs": 20, "init": "scratch"},
        ]
    )  # fmt: skip
    out = mean_over_seeds(runs).set_index("method")
    assert list(out.index) == ["Oracle", "TTA+WBF+CF"]
    assert out.loc["Oracle", ["AP", "AP50", "AP75"]].tolist() == [72.0, 90.5, 77.5]
    assert out.loc["Oracle", ["AP spread", "AP75 spread"]].tolist() == [4.0, 5.0]
    assert out.loc["Oracle", "seeds"] == 2 and out.loc["TTA+WBF+CF", "seeds"] == 1
    assert pd.isna(out.loc["TTA+WBF+CF", "AP spread"])  # one seed says nothing about spread
    assert out.loc["TTA+WBF+CF", "epochs"] == 20 and out.loc["Oracle", "init"] == "scratch"
    assert "seed" not in out.columns
    assert mean_over_seeds(runs.iloc[:0]).empty


def test_our_rows_say_whether_the_data_was_synthetic():
    synthetic = {"name": "a", "layout": "synthetic", "domain": "earth"}
    real = {"name": "b", "layout": "speedplus", "domain": "sunlamp", "root": "x"}
    assert ours_source([synthetic]) == "ours (synthetic)"
    assert ours_source([real, dict(real, layout="tango")]) == "ours (real data)"
    assert ours_source([synthetic, real]) == "ours"
    df = beside_paper(pd.DataFrame([{"dataset": "b", "AP": 1.0}]), 1, source=ours_source([real]))
    assert df["source"].iloc[0] == "ours (real data)"
