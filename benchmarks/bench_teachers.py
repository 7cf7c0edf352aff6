"""Teacher compute cost: weight-free throughput and real-size VLM architectures on CPU.

    python benchmarks/bench_teachers.py [--images 20] [--repeats 3] [--skip-vlm] [--write]

1. Weight-free teachers (``classical_threshold``, ``classical_grabcut``) on 512x512 synthetic
   sunlamp/earth images: median over ``--repeats`` runs of images/s (target for
   ``classical_threshold``: >= 50 img/s on 2 cores).
2. Real-size VLM teachers with *random* weights (no download possible here; the compute cost of
   an architecture does not depend on its weights): Grounding DINO-T (Swin-T + BERT-base, the
   ``IDEA-Research/grounding-dino-tiny`` architecture), SAM 2.1 Hiera-tiny and OWLv2 B/16 at
   960 px, built from their transformers configs, saved with ``save_pretrained`` to a temporary
   folder and run through the real teacher classes on a 640x480 image: median of ``--repeats``
   s/img after one warm-up per component (detector, SAM image encoder, SAM box decoder); the
   end-to-end cost of a top-1 labelled image is their sum (what ``predict`` runs).

The tokenizers are offline stand-ins (tests/tiny_models.py) holding the same special-token ids;
"spacecraft." is 4 tokens either way, so the text cost is as with the real vocabulary. With
``--write`` rows replace same-named rows in ``results/tables/benchmarks.csv`` (columns
``benchmark, setting, value, unit, notes``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from afss_utils.tables import record_benchmarks  # noqa: E402
from afss_utils.teachers import build_teacher  # noqa: E402

CSV_NAME = "results/tables/benchmarks.csv"


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    return median_times(fn, repeats, warmup)[0]


def median_times(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, float]:
    """(median wall seconds, median process CPU seconds) of ``fn()`` after ``warmup`` calls.

    CPU seconds are reported too because a shared machine inflates wall time."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def synthetic_images(n: int, size: int = 512) -> list[np.ndarray]:
    """n images alternating sunlamp/earth (the easy and the hard domain) at size x size."""
    from afss_utils.synthetic import render_sample

    return [render_sample(i, ("sunlamp", "earth")[i % 2], (size, size))[0] for i in range(n)]


def bench_weight_free(n_images: int, repeats: int) -> list[dict]:
    images = synthetic_images(n_images)
    rows = []
    for name in ("classical_threshold", "classical_grabcut"):
        teacher = build_teacher(name)
        sec = median_time(lambda t=teacher: [t.predict(im) for im in images], repeats)
        rows.append(
            {
                "benchmark": "teacher_throughput",
                "setting": f"{name} 512x512",
                "value": round(n_images / sec, 1),
                "unit": "img/s",
                "notes": f"median of {repeats} runs x {n_images} synthetic sunlamp/earth images; "
                f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end",
            }
        )
    return rows


# ---------------------------------------------------------------------------- real-size models
def build_real_size(root: Path) -> dict[str, Path]:
    """Random-init real-size checkpoints (+ processors) under ``root``; returns their dirs."""
    import torch
    from tiny_models import _bert_vocab, _clip_vocab
    from transformers import (
        BertTokenizer,
        CLIPTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
        Sam2Config,
        Sam2ImageProcessor,
        Sam2Model,
        Sam2Processor,
    )

    torch.manual_seed(0)
    paths = {k: root / k for k in ("grounding_dino", "sam2", "owlv2")}
    # Defaults = grounding-dino-tiny: Swin-T (96, [2,2,6,2], window 7), BERT-base text,
    # d_model 256, 6+6 layers, 900 queries, 4 levels, max_text_len 256.
    GroundingDinoForObjectDetection(GroundingDinoConfig()).save_pretrained(paths["grounding_dino"])
    GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(),  # shortest edge 800, longest 1333
        tokenizer=BertTokenizer(vocab=_bert_vocab(), model_max_length=256),
    ).save_pretrained(paths["grounding_dino"])
    # Defaults = sam2.1-hiera-tiny: Hiera 96, blocks [1,2,7,2], global [5,7,9], 1024 px.
    Sam2Model(Sam2Config()).save_pretrained(paths["sam2"])
    Sam2Processor(image_processor=Sam2ImageProcessor()).save_pretrained(paths["sam2"])
    # owlv2-base-patch16-ensemble: CLIP B/16 towers at 960 px (config default says 768).
    vocab, merges = _clip_vocab()
    Owlv2ForObjectDetection(Owlv2Config(vision_config={"image_size": 960})).save_pretrained(
        paths["owlv2"]
    )
    Owlv2Processor(
        image_processor=Owlv2ImageProcessor(),  # 960x960
        tokenizer=CLIPTokenizer(vocab=vocab, merges=merges, pad_token="!", model_max_length=16),
    ).save_pretrained(paths["owlv2"])
    return paths


def bench_vlm(repeats: int) -> list[dict]:
    import torch

    image = synthetic_images(1, 640)[0]
    image = np.ascontiguousarray(image[:480])  # 640x480 (W x H)
    threads = torch.get_num_threads()
    note = f"random weights, CPU, torch threads {threads}, median of {repeats} after 1 warm-up"
    rows = []

    def row(setting, times):
        wall, cpu = times
        rows.append(
            {
                "benchmark": "vlm_teacher_cpu",
                "setting": f"{setting} 640x480",
                "value": round(wall, 3),
                "unit": "s/img",
                "notes": f"{note}; CPU time {cpu:.2f} s; load average {os.getloadavg()[0]:.1f}",
            }
        )
        print(f"  {setting:44s} {wall:8.3f} s/img (CPU {cpu:.2f} s)", flush=True)
        return times

    with tempfile.TemporaryDirectory() as tmp:
        paths = build_real_size(Path(tmp))
        # box_threshold 0 so SAM always gets a top-1 box: the cost of a labelled image.
        gsam = build_teacher(
            "grounded_sam2",
            detector=str(paths["grounding_dino"]),
            segmenter=str(paths["sam2"]),
            box_threshold=0.0,
            text_threshold=0.0,
        )
        sam = gsam.sam
        gd = row(
            "grounding_dino_tiny detector",
            median_times(lambda: gsam._detect([image], "spacecraft"), repeats),
        )

        def encoder():
            sam._cache = None  # force the image encoder
            return sam.embed([image])

        enc = row("sam2.1_hiera_tiny image encoder (1024 px)", median_times(encoder, repeats))
        emb = sam.embed([image])[0]
        box = np.array([[200, 150, 440, 330]], np.float32)
        dec = row(
            "sam2.1_hiera_tiny box decoder (1 box)",
            median_times(lambda: sam.decode(emb, box), repeats),
        )
        row(
            "grounded_sam2 top-1 (sum)",
            tuple(a + b + c for a, b, c in zip(gd, enc, dec, strict=True)),
        )
        gsam.detector = None  # free its memory before OWLv2 loads
        owl = build_teacher(
            "owlv2_sam2",
            detector=str(paths["owlv2"]),
            segmenter=str(paths["sam2"]),
            box_threshold=0.0,
        )
        ow = row(
            "owlv2_base_patch16 detector (960 px)",
            median_times(lambda: owl._detect([image], "spacecraft"), repeats),
        )
        row(
            "owlv2_sam2 top-1 (sum)", tuple(a + b + c for a, b, c in zip(ow, enc, dec, strict=True))
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=20, help="images per weight-free run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-vlm", action="store_true", help="only the weight-free teachers")
    ap.add_argument("--write", action="store_true", help=f"add rows to {CSV_NAME}")
    args = ap.parse_args(argv)

    print("weight-free teachers (512x512):", flush=True)
    rows = bench_weight_free(args.images, max(3, args.repeats))
    for r in rows:
        print(f"  {r['setting']:42s} {r['value']:8.1f} {r['unit']}", flush=True)
    if not args.skip_vlm:
        print("real-size VLM architectures, random weights, CPU (640x480):", flush=True)
        rows += bench_vlm(max(3, args.repeats))
    print()
    print(f"{'benchmark':20s} {'setting':52s} {'value':>9s} unit")
    for r in rows:
        print(f"{r['benchmark']:20s} {r['setting']:52s} {r['value']:9} {r['unit']}")
    if args.write:
        record_benchmarks(rows, ROOT / "results")
        print(f"wrote {len(rows)} rows to {CSV_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
