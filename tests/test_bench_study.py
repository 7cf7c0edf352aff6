"""benchmarks/bench_study.py: the study's wall-time rows from a manifest."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "bench_study", Path(__file__).parents[1] / "benchmarks" / "bench_study.py"
)
bench_study = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench_study)

MANIFEST = {
    "git": {"sha": "0123456789abcdef"},
    "machine": {"cpu_count": 2},
    "notebooks": {"00_datasets": {"duration_s": 40.0}, "05_debris_tracking": {"duration_s": 705.1}},
}


def test_one_notebook_by_name_or_number_and_an_unknown_one_is_an_error():
    for name in ("05", "05_debris_tracking"):
        (row,) = bench_study.rows_from_manifest(MANIFEST, "default", "quiet", [name])
        assert row["setting"] == "default 05_debris_tracking" and row["value"] == 705.1
        assert "git 01234567, quiet" in row["notes"]
    with pytest.raises(KeyError, match="no notebook 5x in the manifest: 00_datasets"):
        bench_study.rows_from_manifest(MANIFEST, "default", "", ["5x"])
