"""Bad input tried as a user would: each gets one clear message naming the file or key, and
nothing already written is lost."""

from __future__ import annotations

import json

import pytest

from afss_utils import synthetic

SIZE = (48, 40)


# ----------------------------------------------------------------------------- synthetic --out
def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_synthetic_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "annotations.json").write_text('{"images": []}')
    with pytest.raises(FileExistsError, match="not a dataset rendered"):
        synthetic.generate(mine, "lightbox", 1, 0, SIZE, progress=False)
    rc = synthetic.main(["--domain", "lightbox", "--num-images", "1", "--out", str(mine)])
    assert rc == 1 and "--overwrite" in capsys.readouterr().err
    assert (mine / "annotations.json").read_text() == '{"images": []}'
    assert _listing(tmp_path) == ["mine", "mine/annotations.json"]  # no temp folder left
    synthetic.generate(mine, "lightbox", 1, 0, SIZE, progress=False, overwrite=True)
    assert json.loads((mine / "annotations.json").read_text())["info"]["seed"] == 0


def test_synthetic_replaces_its_own_dataset_whole_or_not_at_all(tmp_path, monkeypatch):
    out = tmp_path / "data"
    synthetic.generate(out, "lightbox", 2, 0, SIZE, progress=False, workers=1)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    real, calls = synthetic._make_one, []

    def dies_on_the_second(job):
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill mid-way
        return real(job)

    monkeypatch.setattr(synthetic, "_make_one", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate(out, "lightbox", 3, 7, SIZE, progress=False, workers=1)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert _listing(tmp_path)[0] == "data"  # nothing hidden left beside it
    monkeypatch.undo()
    synthetic.generate(out, "lightbox", 3, 7, SIZE, progress=False, workers=1)
    info = json.loads((out / "annotations.json").read_text())["info"]
    assert info["seed"] == 7 and len(list((out / "images").iterdir())) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    assert (out.stat().st_mode & 0o077) != 0  # not mkdtemp's private 0700
