"""The README's result tables are the committed results, rendered, never typed by hand."""

import pytest

from afss_utils.config import REPO_ROOT
from afss_utils.tables import embed_tables


def test_readme_tables_match_results():
    readme = (REPO_ROOT / "README.md").read_text()
    tables = REPO_ROOT / "results" / "tables"
    if not (tables / "table3_distillation.csv").is_file():
        pytest.skip("no committed default run in results/ yet")
    assert embed_tables(readme, tables) == readme, (
        "README.md tables differ from results/tables: run "
        "`python -m afss_utils.tables --embed README.md`"
    )
