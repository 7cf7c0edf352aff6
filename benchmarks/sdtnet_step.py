"""Seconds per SDT-Net training step on one thread: fp32, bf16 autocast, bf16 + channels-last.

On the default debris training split (notebook 05 renders it into ``work_dir/debris/data``), the
full variant, batch 8, AdamW; the median of steps 3-12 of one run per mode. Measured on the
2-core machine (load < 0.6, nothing else running): fp32 0.478 s, bf16 0.327 s, bf16 +
channels-last 0.282 s, what ``sdtnet.train`` now uses (``debris.sdtnet.precision: auto``);
rerun as committed, load 1.2 falling after the test suite: 0.492 / 0.324 / 0.307 s.

    python benchmarks/sdtnet_step.py [fp32 bf16 bf16cl]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from afss_utils.config import load_params
from afss_utils.debris import sdtnet
from afss_utils.students.training import as_float32


def seconds_per_step(samples, mode: str, steps: int = 12) -> float:
    cfg = sdtnet.SDTNetConfig(variant="full")
    torch.manual_seed(0)
    model = sdtnet.build_model(cfg)
    if mode.endswith("cl"):
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    batches = sdtnet._batches(samples, cfg, 8, 0, "cpu")
    times = []
    for _ in range(steps):
        image, prev, tg = next(batches)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode.startswith("bf16")):
            out = model(image, prev, tg["prev_heatmap"])
        loss = sdtnet.losses(as_float32(out), tg, cfg)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:])  # the first steps warm oneDNN's kernels up


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)  # as each training of notebook 05 runs
    root = Path(load_params(None)["work_dir"]) / "debris" / "data"
    if not (root / "train.json").is_file():
        raise FileNotFoundError(f"no {root / 'train.json'}: run notebook 05 first")
    samples = sdtnet.samples_from_coco(json.loads((root / "train.json").read_text()), root)
    for mode in argv or ["fp32", "bf16", "bf16cl"]:
        print(f"{mode:8s} {seconds_per_step(samples, mode):.3f} s/step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
