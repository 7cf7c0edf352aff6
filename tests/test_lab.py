"""JupyterLab for real: a headless server serves the notebooks through its REST API and /lab."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from afss_utils.config import REPO_ROOT

pytestmark = [pytest.mark.lab, pytest.mark.slow]
NOTEBOOK = "notebooks/01_zero_shot_comparison.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str) -> tuple[int, str, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists() and not shutil.which("jupyter"):
        pytest.skip("jupyter is not installed")
    port, token = _free_port(), secrets.token_hex(16)
    runtime = tmp_path_factory.mktemp("jupyter_runtime")
    log = (runtime / "lab.log").open("w")
    proc = subprocess.Popen(
        [
            str(jupyter if jupyter.exists() else "jupyter"),
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.root_dir={REPO_ROOT}",
            f"--IdentityProvider.token={token}",
            "--ServerApp.port_retries=0",
            *(["--allow-root"] if os.geteuid() == 0 else []),  # containers run tests as root
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _get(f"{base}/api/status", token)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"jupyter lab did not start:\n{(runtime / 'lab.log').read_text()}")
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log.close()


def test_rest_api_serves_the_notebook(lab):
    base, token = lab
    status, ctype, body = _get(f"{base}/api/contents/{NOTEBOOK}?content=1", token)
    assert status == 200 and "json" in ctype
    model = json.loads(body)
    assert model["type"] == "notebook" and model["path"] == NOTEBOOK
    nb = model["content"]
    assert nb["nbformat"] == 4 and nb["cells"]
    tags = [c["metadata"].get("tags", []) for c in nb["cells"]]
    assert ["parameters"] in tags
    assert nb["cells"][0]["source"].startswith("# 01 ")


def test_lab_page_is_html(lab):
    base, token = lab
    status, ctype, body = _get(f"{base}/lab/tree/{NOTEBOOK}", token)
    assert status == 200 and "text/html" in ctype
    assert "<html" in body.lower() and "jupyterlab" in body.lower()


def test_the_server_needs_the_token(lab):
    base, _ = lab
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"{base}/api/contents/{NOTEBOOK}", "wrong-token")
    assert err.value.code == 403
