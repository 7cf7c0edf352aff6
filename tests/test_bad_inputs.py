"""Bad input tried as a user would: each gets one clear message naming the file or key, and
nothing already written is lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from afss_utils import synthetic
from afss_utils.datasets import ImageReadError, read_image

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

    real, calls = synthetic.dataset._make_one, []

    def dies_on_the_second(job):
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill mid-way
        return real(job)

    monkeypatch.setattr(synthetic.dataset, "_make_one", dies_on_the_second)
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


# ----------------------------------------------------------------------------- image files
def _png(path, array, mode=None):
    img = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    img.save(path)
    return path


def test_sixteen_bit_grayscale_is_scaled_by_its_range_not_clipped(tmp_path):
    ramp = np.linspace(1000, 3000, 8 * 10).reshape(8, 10).astype(np.uint16)
    im = read_image(_png(tmp_path / "g16.png", ramp))
    assert im.shape == (8, 10, 3) and im.dtype == np.uint8
    assert im[..., 0].min() == 0 and im[..., 0].max() == 255 and (im[..., 0] == im[..., 2]).all()
    assert np.all(np.diff(im[..., 0].ravel().astype(int)) >= 0)  # order kept
    flat = read_image(_png(tmp_path / "flat.png", np.full((4, 4), 7, np.uint16)))
    assert not flat.any()


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "LA"])
def test_other_colour_modes_become_rgb(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 255, (6, 9, 3), dtype=np.uint8)
    path = tmp_path / f"x_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    Image.fromarray(rgb).convert(mode).save(path)
    im = read_image(path)
    assert im.shape == (6, 9, 3) and im.dtype == np.uint8
    if mode == "RGBA":  # lossless: the RGB pixels come back, the alpha is dropped
        assert np.array_equal(im, rgb)


@pytest.mark.parametrize(
    "content, what",
    [
        (b"", "zero-byte"),
        (b"this is text, not a PNG", "text"),
        (None, "truncated"),
    ],
)
def test_unreadable_image_files_name_the_file(tmp_path, content, what):
    path = tmp_path / "dir with spaces é" / f"{what}.png"
    path.parent.mkdir()
    if content is None:
        ok = _png(tmp_path / "ok.png", np.zeros((64, 64, 3), np.uint8) + 50)
        content = ok.read_bytes()[:60]
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=f"cannot read image .*{what}.png"):
        read_image(path)
    with pytest.raises(ImageReadError, match="image not found: .*missing.png"):
        read_image(tmp_path / "missing.png")


def test_unicode_and_spaces_in_paths_read_fine(tmp_path):
    path = tmp_path / "ünï cödé" / "a b.png"
    path.parent.mkdir()
    assert read_image(_png(path, np.full((3, 5, 3), 9, np.uint8))).shape == (3, 5, 3)


def test_decompression_bomb_is_a_clear_error(tmp_path, monkeypatch):
    path = _png(tmp_path / "big.png", np.zeros((64, 64, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 4)  # 64x64 is then "very large"
    with pytest.raises(ImageReadError, match="big.png"):
        read_image(path)


# ----------------------------------------------------------------------------- pseudolabel --out
@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_out_on_a_file_system_that_refuses_writes_is_one_clear_error(tmp_path, capsys):
    """os.access says yes to root even where nothing can be written (/proc, a read-only
    mount): the folder is tried with a real file before any image is labelled."""
    from afss_utils import coco
    from afss_utils.pseudolabel import main

    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    ann = coco.save_json(
        coco.make_instances([coco.make_image(1, "a.png", 8, 8)], []), tmp_path / "a.json"
    )
    argv = ["--dataset", str(ann), "--out", "/proc/afss_test_p.json", "--teacher",
            "classical_threshold", "--tta", "none", "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "output folder /proc is not writable" in err
