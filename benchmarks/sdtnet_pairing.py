"""Where SDT-Net loses debris on a split: heatmap peaks or the endpoint pairing (issue #22).

For a trained network (``work_dir/debris/sdtnet/<row>/sdtnet.pt``, written by notebook 05) and
each test split, with the *true* previous-frame heatmap as input (so tracking errors do not feed
back): the share of true left / right endpoints that have a heatmap peak within ``--tol`` pixels
(max-norm), the detections ``decode`` forms by pairing peaks, how many of them lie within 3 px of
a true streak (both endpoints), and so the detection precision and recall. Diagnosis only: the
numbers are read, nothing is chosen on them.

    python benchmarks/sdtnet_pairing.py --write     # -> results/tables/sdtnet_pairing.{csv,md}
    python benchmarks/sdtnet_pairing.py --val 8     # a dense validation render instead

``--val N`` renders N dense videos of its own (split ``val_dense``: other pixels than the test
splits') and compares the pairing with and without the RoI mask's support along each segment
(``SDTNetConfig.line_*``): what those settings were chosen on, never the test splits.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from afss_utils import tables
from afss_utils.config import load_params
from afss_utils.datasets import open_coco
from afss_utils.debris import sdtnet
from afss_utils.debris.simulation import generate_split
from afss_utils.debris.stage import TEST_SPLITS, debris_config, make_videos


def diagnose(model, config, dataset, tol: float = 6.0) -> dict:
    """One split's peak recall, pairs and detection precision / recall (see the module doc)."""
    import torch

    inst = dataset.instances
    by_image: dict[int, list[dict]] = {}
    for a in inst["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    images = sorted(inst["images"], key=lambda i: (i["video"], i["frame_id"]))
    by_key = {(im["video"], im["frame_id"]): im for im in images}
    n = {"true streaks": 0, "left found": 0, "right found": 0, "detections": 0, "correct": 0}
    for im in images:
        before = by_key.get((im["video"], im["frame_id"] - 1), im)
        image, prev = dataset.load_image(im["id"]), dataset.load_image(before["id"])
        truth = by_image.get(im["id"], [])
        h_prev = sdtnet.prev_heatmap(
            by_image.get(before["id"], []) if before is not im else [], image.shape[:2], config
        )
        with torch.no_grad():
            out = model(sdtnet.to_input(image), sdtnet.to_input(prev), h_prev[None])
        ends = sdtnet.endpoint_pairs(truth)  # (K, 2, 2) left, right
        for channel, key in ((0, "left found"), (1, "right found")):
            peaks = sdtnet.heatmap_peaks(
                out["heatmap"][0, channel].numpy(), config.threshold, config.max_objects
            )
            at = np.array([[c, r] for _, r, c in peaks], float).reshape(-1, 2) * config.stride
            for e in ends[:, channel]:
                n[key] += bool(len(at)) and bool(np.abs(at - e).max(1).min() <= tol)
        detections = sdtnet.decode(out, config)[0]
        n["true streaks"] += len(ends)
        n["detections"] += len(detections)
        for d in detections:
            err = [
                min(np.abs(d.endpoints - e).max(), np.abs(d.endpoints[::-1] - e).max())
                for e in ends
            ]
            n["correct"] += bool(err) and min(err) <= 3
    gt = max(n["true streaks"], 1)
    return n | {
        "left peak recall": n["left found"] / gt,
        "right peak recall": n["right found"] / gt,
        "detection precision": n["correct"] / max(n["detections"], 1),
        "detection recall": n["correct"] / gt,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=None, help="params overlay (default: params/default.yaml)")
    ap.add_argument("--rows", nargs="+", default=["SDT-Net_Oracle", "SDT-Net"])
    ap.add_argument("--tol", type=float, default=6.0)
    ap.add_argument("--val", type=int, default=0, help="videos of a dense validation render")
    ap.add_argument("--write", action="store_true", help="write results/tables/sdtnet_pairing")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    work = Path(params["work_dir"]) / "debris"
    if args.val:
        root = work / "val"
        if not (root / "val_dense.json").is_file():
            cfg = debris_config(params["debris"]).dense()
            seed = params["debris"]["seed"]
            generate_split(root, "val_dense", args.val, cfg, seed=seed, progress=False)
        splits = {"dense validation": open_coco(root / "val_dense.json", root, name="val_dense")}
    else:
        data = make_videos({**params["debris"], "device": "cpu"}, work / "data", progress=False)
        splits = {label: data[split] for split, label in TEST_SPLITS.items()}
    out = []
    for row in args.rows:
        model, config = sdtnet.load(work / "sdtnet" / row / "sdtnet.pt")
        pairings = {"embedding + mask along the segment": config}
        if args.val and config.variant == "full":
            pairings["embedding only"] = replace(
                config, line_weight=0.0, line_min=0.0, mask_pair_distance=config.pair_distance
            )
        for pairing, cfg in pairings.items():
            for label, ds in splits.items():
                head = {"network": row, "pairing": pairing, "split": label}
                out.append(head | diagnose(model, cfg, ds, args.tol))
    table = pd.DataFrame(out)
    print(table.round(2).to_string(index=False))
    if args.write:
        tables.write_table(table, "sdtnet_pairing", "results")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
