"""Committed notebooks are products: no outputs, one parameters cell, the params schema covered."""

from __future__ import annotations

import ast

import nbformat
import pytest

from afss_utils import run
from afss_utils.config import load_params, with_defaults

NOTEBOOKS = run.discover_notebooks(run.NOTEBOOKS_DIR)
# the study's stages, 00_datasets .. 06_spacecraft_classification: one notebook each
EXPECTED_STAGES = 7


def _ids(paths):
    return [p.name for p in paths]


def test_notebooks_exist():
    # every stage 00 .. 06 once, in order: a lost or renumbered notebook fails here
    prefixes = [p.name[:3] for p in NOTEBOOKS]
    assert prefixes == [f"{i:02d}_" for i in range(EXPECTED_STAGES)], (
        f"stage notebooks in {run.NOTEBOOKS_DIR}: {_ids(NOTEBOOKS)}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts (strip them)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_one_literal_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"
    names = run.declared_parameters(path)
    assert names, f"{path.name}: the parameters cell declares nothing"
    unknown = sorted(set(names) - set(load_params()))
    assert not unknown, f"{path.name}: parameters not in params/default.yaml: {unknown}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_parameter_defaults_are_the_default_study(path):
    # Opened in JupyterLab without the runner, a notebook must run the default study.
    (cell,) = [
        c for c in nbformat.read(path, 4).cells if "parameters" in c.metadata.get("tags", [])
    ]
    defaults = load_params()
    source = "\n".join(c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code")
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign | ast.AnnAssign), f"{path.name}: only assignments"
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for name in map(ast.unparse, targets):  # a = b = {} declares both
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                pytest.fail(f"{path.name}: parameter {name} is not a literal")
            if isinstance(value, dict) and value != defaults.get(name):
                # a partial mapping is filled from the default by the notebook itself
                assert f'"{name}"' in source and "with_defaults(" in source, (
                    f"{path.name}: {name} is a partial mapping never passed to with_defaults"
                )
                value = with_defaults(name, value)
            assert value == defaults.get(name), (
                f"{path.name}: {name} = {value!r} differs from default.yaml"
            )


def test_every_params_key_is_declared_by_a_notebook():
    declared = {name for nb in NOTEBOOKS for name in run.declared_parameters(nb)}
    missing = sorted(set(load_params()) - declared)
    assert not missing, f"params keys no notebook declares (the runner rejects them): {missing}"
