"""Every notebook has a jupytext ``py:percent`` twin whose text is the notebook's conversion.

The ``.py`` files are what a reviewer diffs; this test fails when one side was edited without
``jupytext --sync notebooks/NN_name.ipynb`` (or the .py) so the two drifted apart.
"""

from __future__ import annotations

import re

import jupytext
import pytest

from afss_utils import run

NOTEBOOKS = run.discover_notebooks(run.NOTEBOOKS_DIR)
# The header records the jupytext version that wrote it; that line is not content.
VERSION_LINE = re.compile(r"^#\s+jupytext_version: .*\n", re.MULTILINE)


def _text(s: str) -> str:
    return VERSION_LINE.sub("", s)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_paired_and_in_sync(path):
    py = path.with_suffix(".py")
    assert py.is_file(), (
        f"{path.name}: no paired {py.name} (jupytext --set-formats ipynb,py:percent)"
    )
    nb = jupytext.read(path)
    formats = nb.metadata.get("jupytext", {}).get("formats", "")
    assert "py:percent" in formats, f"{path.name}: not paired with py:percent ({formats!r})"
    expected = jupytext.writes(nb, fmt="py:percent")
    assert _text(py.read_text()) == _text(expected), (
        f"{py.name} differs from {path.name}: run `jupytext --sync {path}`"
    )
