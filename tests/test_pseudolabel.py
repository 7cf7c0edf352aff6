"""Pseudo-labelling: results json + empty sidecar, streaming cache, resume (incl. SIGKILL), CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from afss_utils import coco
from afss_utils.coco import mask_to_xyxy
from afss_utils.datasets import ImageReadError, open_coco
from afss_utils.fusion import FusionConfig
from afss_utils.pseudolabel import (
    CacheMismatchError,
    cache_path,
    empty_path,
    info_path,
    main,
    pseudolabel,
    save_labels,
)
from afss_utils.teachers.base import Prediction

TESTS_DIR = Path(__file__).parent
REPO = TESTS_DIR.parent


class FakeTeacher:
    """Deterministic stand-in: the bright pixels (> 128) are the object; score from their mean.

    ``_delay`` (seconds per call) and ``_fail_after`` (raise on that call) are private, so they
    are not part of the cache header: a slow or crashing run resumes with a normal one.
    """

    name = "fake_bright"

    def __init__(self, top_k=1, threshold=128, delay=0.0, fail_after=None):
        self.top_k = top_k
        self.threshold = threshold
        self._delay = delay
        self._fail_after = fail_after
        self.calls = 0

    def predict(self, image, prompt="spacecraft"):
        self.calls += 1
        if self._fail_after is not None and self.calls > self._fail_after:
            raise RuntimeError("simulated crash")
        if self._delay:
            time.sleep(self._delay)
        mask = image.max(axis=2) > self.threshold
        box = mask_to_xyxy(mask)
        if box is None:
            return Prediction.empty(*image.shape[:2])
        score = float(image[mask].mean()) / 255.0
        return Prediction(box[None], [score], mask[None], {"mask_scores": [score / 2]}).top_k(
            self.top_k
        )


def make_dataset(
    root: Path, n: int, size=(24, 32), empty_every: int = 4, min_side: int = 3
) -> Path:
    """``n`` tiny PNGs with one bright rectangle each (every ``empty_every``-th blank) + COCO json."""
    rng = np.random.default_rng(n)
    (root / "images").mkdir(parents=True, exist_ok=True)
    h, w = size
    images, anns = [], []
    for i in range(n):
        pixels = rng.integers(0, 50, (h, w, 3), dtype=np.uint8)
        name = f"im_{i:03d}.png"
        images.append(coco.make_image(i + 1, name, w, h))
        if (i + 1) % empty_every:
            x1, y1 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            x2 = x1 + int(rng.integers(min_side, max(w // 2, min_side + 1)))
            y2 = y1 + int(rng.integers(min_side, max(h // 2, min_side + 1)))
            mask = np.zeros((h, w), bool)
            mask[y1:y2, x1:x2] = True
            pixels[mask] = rng.integers(150, 255, (3,), dtype=np.uint8)
            anns.append(coco.make_annotation(len(anns) + 1, i + 1, mask=mask))
        Image.fromarray(pixels).save(root / "images" / name)
    return coco.save_json(coco.make_instances(images, anns), root / "annotations.json")


@pytest.fixture
def data12(tmp_path):
    return open_coco(make_dataset(tmp_path / "data", 12))


# ----------------------------------------------------------------------------- outputs
def test_results_match_teacher_and_empty_images_are_listed(data12, tmp_path):
    out = tmp_path / "pred.json"
    summary = pseudolabel(FakeTeacher(), data12, out, progress=False)
    results = coco.load_results(out)
    empties = json.loads(empty_path(out).read_text())
    assert summary.n_images == 12 and summary.n_empty == 3 == len(empties)
    assert summary.out_path == out and summary.empty_path == tmp_path / "pred.empty.json"
    assert not cache_path(out).exists()
    assert [e["image_id"] for e in empties] == [4, 8, 12]
    assert {e["file_name"] for e in empties} == {"im_003.png", "im_007.png", "im_011.png"}
    assert [r["image_id"] for r in results] == [i for i in range(1, 13) if i % 4]
    for rec in results:  # the box, mask and extras of the GT rectangle, in COCO form
        gt = data12.annotations(rec["image_id"])[0]
        assert rec["bbox"] == gt["bbox"]
        mask = coco.rle_to_mask(rec["segmentation"])
        np.testing.assert_array_equal(mask, coco.rle_to_mask(gt["segmentation"]))
        assert 0 < rec["score"] <= 1 and rec["mask_scores"] == pytest.approx(
            rec["score"] / 2, abs=1e-4
        )
    from pycocotools.coco import COCO

    gt = COCO(str(data12.annotation_file))
    assert len(gt.loadRes(str(out)).anns) == len(results)


def test_output_bytes_equal_save_json_of_same_list(data12, tmp_path):
    out = tmp_path / "pred.json"
    pseudolabel(FakeTeacher(), data12, out, tta=["vflip"], progress=False)
    again = coco.save_json(json.loads(out.read_text()), tmp_path / "again.json")
    assert out.read_bytes() == again.read_bytes()


def test_empty_dataset_gives_empty_json(tmp_path):
    ds = open_coco(make_dataset(tmp_path / "data", 0))
    out = tmp_path / "pred.json"
    summary = pseudolabel(FakeTeacher(), ds, out, progress=False)
    assert out.read_text() == "[]" and json.loads(empty_path(out).read_text()) == []
    assert summary.n_images == 0 and summary.images_per_s == 0.0 and not cache_path(out).exists()


def test_tta_with_flip_equivariant_teacher_matches_single_view(data12, tmp_path):
    single = json.loads(
        (
            pseudolabel(FakeTeacher(), data12, tmp_path / "a.json", progress=False)
        ).out_path.read_text()
    )
    teacher = FakeTeacher()
    s = pseudolabel(teacher, data12, tmp_path / "b.json", tta="vflip,hflip,rot90", progress=False)
    fused = json.loads(s.out_path.read_text())
    assert teacher.calls == 4 * 12  # identity + 3 views per image
    assert [r["image_id"] for r in fused] == [r["image_id"] for r in single]
    for a, b in zip(single, fused, strict=True):
        np.testing.assert_allclose(a["bbox"], b["bbox"], atol=0.02)
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
        assert a["segmentation"] == b["segmentation"]


def test_reprompt_needs_a_teacher_that_can_segment_boxes(data12, tmp_path):
    with pytest.raises(ValueError, match="segment_boxes"):
        pseudolabel(
            FakeTeacher(),
            data12,
            tmp_path / "p.json",
            tta="vflip",
            fusion=FusionConfig(mask_fusion="reprompt"),
            progress=False,
        )


class SegmentingTeacher(FakeTeacher):
    """Also re-segments given boxes, like a SAM-backed teacher: the box interior, score 0.5."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.segmented = []

    def segment_boxes(self, image, boxes):
        self.segmented.append(np.array(boxes))
        masks = np.zeros((len(boxes), *image.shape[:2]), bool)
        for m, (x1, y1, x2, y2) in zip(masks, np.round(boxes).astype(int), strict=True):
            m[y1:y2, x1:x2] = True
        return masks, np.full(len(boxes), 0.5)


def test_reprompt_fusion_uses_the_teachers_segment_boxes(data12, tmp_path):
    teacher = SegmentingTeacher()
    cfg = FusionConfig(mask_fusion="reprompt")
    out = pseudolabel(
        teacher, data12, tmp_path / "p.json", tta="hflip", fusion=cfg, progress=False
    ).out_path
    results = json.loads(out.read_text())
    assert len(teacher.segmented) == len(results) == 9
    for rec in results:
        assert rec["mask_scores"] == 0.5
        assert coco.rle_to_mask(rec["segmentation"]).sum() == pytest.approx(
            rec["bbox"][2] * rec["bbox"][3], abs=1
        )


# ----------------------------------------------------------------------------- resume
def test_crash_then_resume_equals_uninterrupted_run(data12, tmp_path):
    ref = pseudolabel(
        FakeTeacher(), data12, tmp_path / "ref.json", tta="vflip", progress=False
    ).out_path
    out = tmp_path / "pred.json"
    with pytest.raises(RuntimeError, match="simulated crash"):
        pseudolabel(
            FakeTeacher(fail_after=2 * 5), data12, out, tta="vflip", progress=False
        )  # 2 views/image
    lines = cache_path(out).read_text().splitlines()
    assert len(lines) == 1 + 5 and not out.exists()
    teacher = FakeTeacher()
    summary = pseudolabel(teacher, data12, out, tta="vflip", progress=False)
    assert teacher.calls == 2 * 7 and summary.n_resumed == 5
    assert out.read_bytes() == ref.read_bytes()
    assert empty_path(out).read_bytes() == empty_path(ref).read_bytes()
    assert not cache_path(out).exists()


def test_torn_last_cache_line_is_discarded(data12, tmp_path):
    ref = pseudolabel(FakeTeacher(), data12, tmp_path / "ref.json", progress=False).out_path
    out = tmp_path / "pred.json"
    with pytest.raises(RuntimeError):
        pseudolabel(FakeTeacher(fail_after=3), data12, out, progress=False)
    with open(cache_path(out), "ab") as fh:
        fh.write(b'{"image_id": 4, "file_name": "im_0')  # killed mid-write
    teacher = FakeTeacher()
    pseudolabel(teacher, data12, out, progress=False)
    assert teacher.calls == 9 and out.read_bytes() == ref.read_bytes()


def test_cache_from_other_settings_is_an_error_unless_restart(data12, tmp_path):
    out = tmp_path / "pred.json"
    with pytest.raises(RuntimeError):
        pseudolabel(FakeTeacher(fail_after=3), data12, out, progress=False)
    with pytest.raises(CacheMismatchError, match=r"tta.*\['identity'\].*\['identity', 'hflip'\]"):
        pseudolabel(FakeTeacher(), data12, out, tta="hflip", progress=False)
    with pytest.raises(CacheMismatchError, match="teacher"):
        pseudolabel(FakeTeacher(threshold=100), data12, out, progress=False)
    assert len(cache_path(out).read_text().splitlines()) == 4  # the error left the cache alone
    teacher = FakeTeacher()
    summary = pseudolabel(teacher, data12, out, tta="hflip", progress=False, restart=True)
    assert teacher.calls == 2 * 12 and summary.n_resumed == 0


def test_limit_resumes_and_longer_run_reuses_the_cache(data12, tmp_path):
    ref = pseudolabel(FakeTeacher(), data12, tmp_path / "ref.json", progress=False).out_path
    ref_records = json.loads(ref.read_text())
    out = tmp_path / "pred.json"
    with pytest.raises(RuntimeError):
        pseudolabel(FakeTeacher(fail_after=7), data12, out, progress=False)  # 7 of 12 cached
    teacher = FakeTeacher()
    short = pseudolabel(teacher, data12, out, limit=5, progress=False)
    assert teacher.calls == 0 and short.n_images == 5 and short.n_resumed == 5
    assert json.loads(out.read_text()) == [r for r in ref_records if r["image_id"] <= 5]
    assert cache_path(out).exists()  # kept: a limited run leaves it for a longer one
    teacher = FakeTeacher()
    pseudolabel(teacher, data12, out, limit=9, progress=False)
    assert teacher.calls == 2 and cache_path(out).exists()
    teacher = FakeTeacher()
    pseudolabel(teacher, data12, out, progress=False)
    assert teacher.calls == 3 and out.read_bytes() == ref.read_bytes()
    assert not cache_path(out).exists()


def test_corrupt_image_names_the_file_and_keeps_the_cache(tmp_path):
    ann = make_dataset(tmp_path / "data", 6)
    bad = tmp_path / "data" / "images" / "im_003.png"
    good = bad.read_bytes()
    bad.write_bytes(b"not a png")
    ds = open_coco(ann)
    out = tmp_path / "pred.json"
    with pytest.raises(ImageReadError, match="im_003.png"):
        pseudolabel(FakeTeacher(), ds, out, progress=False)
    assert len(cache_path(out).read_text().splitlines()) == 1 + 3
    bad.write_bytes(good)
    teacher = FakeTeacher()
    assert pseudolabel(teacher, ds, out, progress=False).n_images == 6 and teacher.calls == 3


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_pseudolabel import FakeTeacher
    from afss_utils.datasets import open_coco
    from afss_utils.pseudolabel import pseudolabel
    pseudolabel(FakeTeacher(delay=float(sys.argv[3])), open_coco(sys.argv[1]), sys.argv[2],
                tta="vflip", progress=False)
    """
)


def test_sigkill_midway_then_rerun_is_byte_identical(tmp_path):
    ann = make_dataset(tmp_path / "data", 30)
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(tests=str(TESTS_DIR)))
    out = tmp_path / "pred.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script), str(ann), str(out), "0.05"], env=env)
    cache = cache_path(out)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if cache.exists() and len(cache.read_bytes().splitlines()) >= 1 + 5:
                break
            assert proc.poll() is None, "the labeller finished or died before it could be killed"
            time.sleep(0.02)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    done = len([ln for ln in cache.read_bytes().split(b"\n")[1:] if ln.strip()])
    assert 5 <= done < 30

    ds = open_coco(ann)
    teacher = FakeTeacher()
    resumed = pseudolabel(teacher, ds, out, tta="vflip", progress=False)
    assert resumed.n_resumed >= 5 and teacher.calls == 2 * (30 - resumed.n_resumed)
    ref = pseudolabel(
        FakeTeacher(), ds, tmp_path / "ref.json", tta="vflip", progress=False
    ).out_path
    assert out.read_bytes() == ref.read_bytes()
    assert empty_path(out).read_bytes() == empty_path(ref).read_bytes()
    assert not cache.exists()


# ----------------------------------------------------------------------------- CLI
def test_cli_classical_threshold_on_image_folder_and_json(tmp_path, capsys):
    # objects of >= 12 px: the edge-based teacher is not meant for specks of a few pixels
    ann = make_dataset(tmp_path / "data", 4, size=(48, 64), empty_every=100, min_side=12)
    out = tmp_path / "pred.json"
    rc = main(
        [
            "--teacher",
            "classical_threshold",
            "--dataset",
            str(tmp_path / "data" / "images"),
            "--out",
            str(out),
            "--tta",
            "none",
            "--no-progress",
        ]
    )
    assert rc == 0 and "4 images" in capsys.readouterr().out
    gt = open_coco(ann)

    def assert_labels_the_objects(results, image_ids):
        # one label per image (top_k 1) on its object: the folder's ids follow sorted file
        # names, like the json's
        assert sorted(r["image_id"] for r in results) == image_ids
        for rec in results:
            iou = coco.box_iou(
                coco.xywh_to_xyxy(rec["bbox"]),
                coco.xywh_to_xyxy(gt.annotations(rec["image_id"])[0]["bbox"]),
            )
            assert iou[0, 0] > 0.5 and "segmentation" in rec

    assert_labels_the_objects(coco.load_results(out), [1, 2, 3, 4])
    out2 = tmp_path / "pred2.json"
    rc = main(
        [
            "--teacher",
            "classical_threshold",
            "--dataset",
            str(ann),
            "--out",
            str(out2),
            "--limit",
            "2",
            "--tta",
            "vflip,hflip",
            "--fusion",
            "nms",
            "--no-progress",
        ]
    )
    assert rc == 0
    assert_labels_the_objects(coco.load_results(out2), [1, 2])  # the first two, labelled


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    rc = main(
        [
            "--teacher",
            "no_such_teacher",
            "--dataset",
            str(tmp_path),
            "--out",
            str(tmp_path / "p.json"),
        ]
    )
    assert rc == 1 and "no_such_teacher" in capsys.readouterr().err
    rc = main(["--dataset", str(tmp_path), "--out", str(tmp_path / "p.json"), "--tta", "flipx"])
    assert rc == 1 and "flipx" in capsys.readouterr().err
    rc = main(["--dataset", str(tmp_path / "missing.json"), "--out", str(tmp_path / "p.json")])
    assert rc == 1 and "missing.json" in capsys.readouterr().err
    rc = main(
        [
            "--dataset",
            str(tmp_path),
            "--out",
            str(tmp_path / "p.json"),
            "--params",
            str(tmp_path / "nope.yaml"),
        ]
    )
    assert rc == 1 and "nope.yaml" in capsys.readouterr().err


# ----------------------------------------------------------------------------- determinism
def test_classical_labeller_is_byte_identical_across_runs_and_thread_counts(tmp_path):
    import cv2

    from afss_utils.synthetic import generate
    from afss_utils.teachers import build_teacher

    ds = open_coco(generate(tmp_path / "d", "lightbox", 10, 11, (320, 256), False, 1))
    before = cv2.getNumThreads()
    outs = []
    try:
        for k, threads in enumerate((1, 2, 2)):
            cv2.setNumThreads(threads)
            teacher = build_teacher("classical_threshold")
            out = pseudolabel(teacher, ds, tmp_path / f"p{k}.json", "vflip", progress=False)
            outs.append(out.out_path.read_bytes())
    finally:
        cv2.setNumThreads(before)
    assert outs[0] == outs[1] == outs[2] and b"score" in outs[0]


# ----------------------------------------------------------------------------- bad outputs
def test_out_equal_to_an_input_is_refused_and_nothing_is_touched(data12, tmp_path):
    from afss_utils.pseudolabel import OutputConflictError

    ann = data12.annotation_file
    gt = ann.read_bytes()
    image = data12.image_path(1)
    png = image.read_bytes()
    for out in (ann, image, tmp_path / "data" / "." / "annotations.json"):
        with pytest.raises(OutputConflictError, match="input of this run"):
            pseudolabel(FakeTeacher(), data12, out, progress=False)
    assert ann.read_bytes() == gt and image.read_bytes() == png
    assert not cache_path(ann).exists()


def test_existing_out_is_replaced_only_if_this_tool_made_it_from_the_same_inputs(
    data12, tmp_path, capsys
):
    from afss_utils.pseudolabel import OutputConflictError, info_path

    other = tmp_path / "notes.json"
    other.write_text('{"mine": true}')
    with pytest.raises(OutputConflictError, match="--overwrite"):
        pseudolabel(FakeTeacher(), data12, other, progress=False)
    assert other.read_text() == '{"mine": true}'
    rc = main(["--dataset", str(data12.annotation_file), "--out", str(other), "--teacher",
               "classical_threshold", "--tta", "none", "--no-progress"])  # fmt: skip
    assert rc == 1 and "notes.json" in capsys.readouterr().err
    # a results list someone else wrote (no .info.json): not ours either
    foreign = tmp_path / "theirs.json"
    foreign.write_text("[]")
    with pytest.raises(OutputConflictError, match="not written by this tool"):
        pseudolabel(FakeTeacher(), data12, foreign, progress=False)
    assert foreign.read_text() == "[]"
    pseudolabel(FakeTeacher(), data12, other, progress=False, overwrite=True)
    first = other.read_bytes()
    assert info_path(other).exists() and first.startswith(b"[")
    pseudolabel(FakeTeacher(), data12, other, progress=False)  # its own output, same inputs
    assert other.read_bytes() == first
    with pytest.raises(OutputConflictError, match="tta differ"):  # other inputs: refused
        pseudolabel(FakeTeacher(), data12, other, tta="vflip", progress=False)
    assert other.read_bytes() == first
    pseudolabel(FakeTeacher(), data12, other, tta="vflip", progress=False, overwrite=True)
    assert json.loads(info_path(other).read_text())["header"]["tta"] == ["identity", "vflip"]


def test_missing_or_read_only_output_folder(data12, tmp_path):
    from afss_utils.pseudolabel import OutputConflictError

    out = pseudolabel(FakeTeacher(), data12, tmp_path / "new" / "deep" / "p.json", progress=False)
    assert out.out_path.exists()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # running as root: permissions do not apply
            pytest.skip("running as root: a read-only folder is still writable")
        teacher = FakeTeacher()
        with pytest.raises(OutputConflictError, match="not writable"):
            pseudolabel(teacher, data12, ro / "p.json", progress=False)
        assert teacher.calls == 0  # refused before any image was labelled
    finally:
        ro.chmod(0o755)


def test_resume_cache_keys_images_by_content(tmp_path):
    ann = make_dataset(tmp_path / "data", 8)
    ds = open_coco(ann)
    out = tmp_path / "p.json"
    pseudolabel(FakeTeacher(), ds, out, limit=4, progress=False)
    # re-render image 2 with other pixels into the same file name: its label must not be kept
    path = ds.image_path(2)
    Image.fromarray(np.full((24, 32, 3), 200, np.uint8)).save(path)
    teacher = FakeTeacher()
    summary = pseudolabel(teacher, ds, out, progress=False)
    assert summary.n_resumed == 3 and teacher.calls == 5
    ref = pseudolabel(FakeTeacher(), ds, tmp_path / "ref.json", progress=False).out_path
    assert out.read_bytes() == ref.read_bytes()


class InterruptingTeacher(FakeTeacher):
    def predict(self, image, prompt="spacecraft"):
        if self.calls >= 3:
            raise KeyboardInterrupt
        return super().predict(image, prompt)


def test_ctrl_c_prints_one_line_keeps_the_cache_and_the_rerun_resumes(
    tmp_path, monkeypatch, capsys
):
    import afss_utils.teachers as teachers

    ann = make_dataset(tmp_path / "data", 6)
    out = tmp_path / "p.json"
    argv = ["--dataset", str(ann), "--out", str(out), "--tta", "none", "--no-progress"]
    monkeypatch.setattr(teachers, "build_teacher", lambda name, **kw: InterruptingTeacher())
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and str(cache_path(out)) in err
    assert not out.exists() and len(cache_path(out).read_bytes().splitlines()) == 1 + 3
    monkeypatch.setattr(teachers, "build_teacher", lambda name, **kw: FakeTeacher())
    assert main(argv) == 0 and "3 resumed" in capsys.readouterr().out
    ref = pseudolabel(FakeTeacher(), open_coco(ann), tmp_path / "ref.json", "none", progress=False)
    assert out.read_bytes() == ref.out_path.read_bytes()


# ----------------------------------------------------------------------------- checkpoints
def test_resume_with_another_sam2_checkpoint_is_an_error(tiny_vlm_models, tmp_path):
    """The cache header records which checkpoints a VLM teacher loaded: a run started with one
    SAM 2 and resumed with another fails naming the teacher key, instead of mixing the two."""
    import shutil

    import tiny_models

    from afss_utils.pseudolabel import OutputConflictError, info_path
    from afss_utils.teachers import build_teacher

    data = open_coco(make_dataset(tmp_path / "data", 3))

    def teacher(sam2):
        return build_teacher(
            "grounded_sam2",
            detector=str(tiny_vlm_models["grounding_dino"]),
            segmenter=str(sam2),
            box_threshold=0.0,
            text_threshold=0.0,
        )

    out = tmp_path / "pred.json"
    first = pseudolabel(teacher(tiny_vlm_models["sam2"]), data, out, limit=1, progress=False)
    assert first.n_images == 1 and cache_path(out).exists()
    other = tiny_models.build_sam2(tmp_path / "sam2_other", seed=1)  # same config, other weights
    # the sidecar of the partial PRED.json says whose labels they are: not replaced silently
    with pytest.raises(OutputConflictError, match="teacher differ"):
        pseudolabel(teacher(other), data, out, progress=False)
    with pytest.raises(CacheMismatchError, match=r"\(teacher: .*checkpoints"):
        pseudolabel(teacher(other), data, out, progress=False, overwrite=True)
    # a copy of the same checkpoint in another folder is the same checkpoint: it resumes
    copy = shutil.copytree(tiny_vlm_models["sam2"], tmp_path / "sam2_copy")
    done = pseudolabel(teacher(copy), data, out, progress=False)
    assert done.n_resumed == 1 and done.n_images == 3
    settings = json.loads(info_path(out).read_text())["header"]["teacher"]
    assert set(settings["checkpoints"]) == {"detector", "segmenter"}


def test_weight_free_teacher_header_has_no_checkpoints():
    """Classical teachers keep exactly their old header (name + scalar options)."""
    from afss_utils.pseudolabel import teacher_settings
    from afss_utils.teachers import build_teacher

    assert "checkpoints" not in teacher_settings(FakeTeacher())
    assert "checkpoints" not in teacher_settings(build_teacher("classical_threshold"))


# ----------------------------------------------------------------------------- read-ahead
def test_reading_ahead_changes_no_byte_and_stays_bounded(
    make_shapes, bright_teacher_cls, tmp_path, monkeypatch
):
    import threading

    from afss_utils import pseudolabel as pl

    ds = open_coco(make_shapes(tmp_path / "data", n=12, size=48))
    monkeypatch.setattr(pl, "PREFETCH", 1)  # read, then label: one image at a time
    one = pseudolabel(bright_teacher_cls(), ds, tmp_path / "one.json", ["vflip"], progress=False)
    monkeypatch.setattr(pl, "PREFETCH", 4)
    in_flight, peak, lock = [0], [0], threading.Lock()
    load = type(ds).load_image

    def counting_load(self, image_id):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            time.sleep(0.01)
            return load(self, image_id)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(type(ds), "load_image", counting_load)
    ahead = pseudolabel(
        bright_teacher_cls(), ds, tmp_path / "ahead.json", ["vflip"], progress=False
    )
    assert ahead.out_path.read_bytes() == one.out_path.read_bytes()
    assert 1 < peak[0] <= 2  # two reader threads, never more, whatever the dataset's size


def test_read_ahead_raises_in_order_and_keeps_what_came_before(tmp_path):
    from afss_utils.pseudolabel import _read_ahead

    def read(i):
        if i == 3:
            raise ImageReadError(f"cannot read image img{i}.png")
        return i * 10

    got = []
    with pytest.raises(ImageReadError, match="img3.png"):
        for i, value in _read_ahead([1, 2, 3, 4, 5], read, ahead=4):
            got.append((i, value))
    assert got == [(1, 10), (2, 20)]  # the images before the bad one were handed over
    assert list(_read_ahead([], read, ahead=4)) == []


# ----------------------------------------------------------------------------- reuse
class CountingTeacher(FakeTeacher):
    """FakeTeacher that records which images it was asked about (by their pixel sum)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen = []

    def predict(self, image, prompt="spacecraft"):
        self.seen.append(int(image.sum()))
        return super().predict(image, prompt)


def test_a_run_reuses_the_images_another_run_labelled_with_its_settings(data12, tmp_path):
    # notebook 03 scores the teacher on a pooled test set whose parts 01/02 already labelled
    part_a = data12.subset(data12.image_ids[:5], "a")
    part_b = data12.subset(data12.image_ids[5:9], "b")
    pseudolabel(FakeTeacher(), part_a, tmp_path / "a.json", ["vflip"], progress=False)
    pseudolabel(FakeTeacher(), part_b, tmp_path / "b.json", ["vflip"], progress=False)
    fresh = pseudolabel(FakeTeacher(), data12, tmp_path / "fresh.json", ["vflip"], progress=False)

    teacher = CountingTeacher()
    sources = {tmp_path / "a.json": part_a, tmp_path / "b.json": part_b}
    out = tmp_path / "pooled" / "fresh.json"
    run = pseudolabel(teacher, data12, out, ["vflip"], progress=False, reuse=sources)
    assert (run.n_reused, run.n_resumed, run.n_images) == (9, 0, 12)
    assert len(teacher.seen) == 2 * 3  # the 3 images no source had, two views each
    for path in (out, empty_path(out), info_path(out)):  # as if labelled here
        assert path.read_bytes() == (tmp_path / path.name).read_bytes(), path.name
    assert fresh.n_reused == 0


def test_a_source_with_other_settings_or_a_newer_image_is_not_reused(data12, tmp_path):
    part = data12.subset(data12.image_ids[:6], "part")
    pseudolabel(FakeTeacher(), part, tmp_path / "flip.json", ["vflip"], progress=False)
    pseudolabel(FakeTeacher(), part, tmp_path / "single.json", [], progress=False)

    # other views, another teacher setting, a source that does not exist
    for tta, teacher, source in (
        ([], FakeTeacher(), "flip.json"),
        (["vflip"], FakeTeacher(threshold=100), "flip.json"),
        (["vflip"], FakeTeacher(), "missing.json"),
    ):
        run = pseudolabel(
            teacher,
            data12,
            tmp_path / "out.json",
            tta,
            progress=False,
            overwrite=True,
            reuse={tmp_path / source: part},
        )
        assert run.n_reused == 0, (tta, source)
    # a single view is not fused: a run with other fusion settings takes it as its own
    nms = FusionConfig(method="nms", iou_thr=0.3)
    run = pseudolabel(
        FakeTeacher(),
        data12,
        tmp_path / "out.json",
        [],
        nms,
        progress=False,
        overwrite=True,
        reuse={tmp_path / "single.json": part},
    )
    assert run.n_reused == 6

    # the source was written before this image changed: it is labelled again
    changed = part.image_path(part.image_ids[0])
    later = (tmp_path / "flip.json").stat().st_mtime + 10
    os.utime(changed, (later, later))

    def reused_from_flip(source_dataset):
        """Images a vflip run over data12 takes from flip.json, given as ``source_dataset``'s."""
        return pseudolabel(
            FakeTeacher(),
            data12,
            tmp_path / "out.json",
            ["vflip"],
            progress=False,
            overwrite=True,
            reuse={tmp_path / "flip.json": source_dataset},
        ).n_reused

    assert reused_from_flip(part) == 5
    # a source whose dataset is not the one given for it (ids of another list) is not trusted
    assert reused_from_flip(data12.subset(data12.image_ids[6:], "part")) == 0


def test_save_labels_refuses_results_of_images_outside_the_dataset(data12, tmp_path):
    part = data12.subset(data12.image_ids[:3], "part")
    results = [{"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]
    with pytest.raises(ValueError, match=r"image_id 99 is not in part"):
        save_labels(results, FakeTeacher(), part, tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists() and not info_path(tmp_path / "p.json").exists()
    empty = save_labels([], FakeTeacher(), part, tmp_path / "p.json")
    assert empty.read_text() == "[]" and len(json.loads(empty_path(empty).read_text())) == 3
