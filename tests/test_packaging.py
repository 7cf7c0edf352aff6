"""environment.yml (conda) and pyproject.toml (pip) must list the same dependencies."""

import re

import pytest
import yaml

from afss_utils.config import REPO_ROOT

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"]}
    pip_names |= {_name(r) for r in project["optional-dependencies"]["dev"]}

    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda_names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            conda_names |= {_name(r) for r in dep["pip"]}
        else:
            conda_names.add(_name(dep))
    conda_names -= {"python", "pip"}
    assert pip_names == conda_names, (
        f"only in pyproject: {sorted(pip_names - conda_names)}; "
        f"only in environment.yml: {sorted(conda_names - pip_names)}"
    )


def test_package_discovery_finds_every_subpackage():
    """pyproject's ``packages.find`` must ship every afss_utils subpackage (e.g. ``debris``)."""
    setuptools = pytest.importorskip("setuptools")
    find = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(
        setuptools.find_packages(str(REPO_ROOT), include=find["packages"]["find"]["include"])
    )
    on_disk = {
        ".".join(p.parent.relative_to(REPO_ROOT).parts)
        for p in (REPO_ROOT / "afss_utils").rglob("__init__.py")
    }
    assert "afss_utils.debris" in on_disk and on_disk <= found, sorted(on_disk - found)
