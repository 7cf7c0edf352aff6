"""Weight-free teacher quality on synthetic images: box / mask IoU, score ranking, speed.

    python benchmarks/eval_teachers.py [--n 60] [--seed 0] [--size 512] \\
        [--teachers classical_threshold,classical_grabcut] [--domains lightbox,sunlamp,earth] \\
        [--cache /tmp/afss_eval_cache]

For each domain, ``--n`` images ``render_sample(seed + i, domain, (size, size))`` are labelled
by each teacher (top-1). Per domain it prints the mean box IoU and mask IoU of the top
prediction with the ground truth (0 when the teacher returns nothing), the Spearman rank
correlation between the score and the box IoU (is the confidence informative? the paper's
eq. 6 filters on it) and the throughput: single-process images/s from wall time and from
process CPU time (the machine may be shared; CPU time is what the teacher itself costs).
Rendered images are cached as ``.npz`` under ``--cache`` (rendering costs more than labelling).
Tune on one seed range (e.g. ``--seed 1000``) and report on another (``--seed 0``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from afss_utils.coco import box_iou, mask_iou, mask_to_xyxy
from afss_utils.synthetic import render_sample
from afss_utils.teachers import build_teacher


def load_samples(
    domain: str, seed: int, n: int, size: int, cache: Path | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (image (H, W, 3) uint8, gt mask (H, W) bool) pairs, rendered or read from cache."""
    out = []
    for i in tqdm(range(n), desc=f"render {domain}", leave=False):
        path = cache / f"{domain}_{size}_{seed + i}.npz" if cache else None
        if path is not None and path.exists():
            z = np.load(path)
            out.append((z["image"], z["mask"]))
            continue
        image, mask, _ = render_sample(seed + i, domain, (size, size))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, image=image, mask=mask)
        out.append((image, mask))
    return out


def evaluate(teacher, samples) -> dict[str, float]:
    """Mean box/mask IoU, Spearman(score, box IoU) and wall/CPU images/s of ``teacher``."""
    biou, miou, score = [], [], []
    wall = cpu = 0.0
    for image, gt in samples:
        t0, c0 = time.perf_counter(), time.process_time()
        pred = teacher.predict(image, "spacecraft")
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        if len(pred):
            biou.append(float(box_iou(pred.boxes[:1], mask_to_xyxy(gt)[None])[0, 0]))
            miou.append(mask_iou(pred.masks[0], gt))
            score.append(float(pred.scores[0]))
        else:
            biou.append(0.0)
            miou.append(0.0)
            score.append(0.0)
    rho = spearmanr(score, biou).statistic if np.ptp(score) > 0 else float("nan")
    n = len(samples)
    return {
        "box_iou": float(np.mean(biou)),
        "mask_iou": float(np.mean(miou)),
        "spearman": float(rho),
        "img_s_wall": n / wall,
        "img_s_cpu": n / cpu,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--teachers", default="classical_threshold,classical_grabcut")
    p.add_argument("--domains", default="lightbox,sunlamp,earth")
    p.add_argument("--cache", default="/tmp/afss_eval_cache", help="'' disables the cache")
    args = p.parse_args(argv)
    cache = Path(args.cache) if args.cache else None
    print(
        f"{'teacher':<20} {'domain':<9} {'boxIoU':>7} {'maskIoU':>7} {'rho':>6} "
        f"{'img/s':>7} {'cpu img/s':>9}"
    )
    for domain in args.domains.split(","):
        samples = load_samples(domain, args.seed, args.n, args.size, cache)
        for name in args.teachers.split(","):
            r = evaluate(build_teacher(name), samples)
            print(
                f"{name:<20} {domain:<9} {r['box_iou']:7.3f} {r['mask_iou']:7.3f} "
                f"{r['spearman']:6.2f} {r['img_s_wall']:7.1f} {r['img_s_cpu']:9.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
