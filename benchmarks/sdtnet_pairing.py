"""Where SDT-Net loses debris on a split: heatmap peaks or the endpoint pairing (issue #22).

For a trained network (``work_dir/debris/sdtnet/<row>/sdtnet.pt``, written by notebook 05) and
each test split, :func:`afss_utils.debris.sdtnet.detection_diagnosis` (notebook 05 shows it too),
with the *true* previous-frame heatmap as input (so tracking errors do not feed back): the share
of true left / right endpoints that have a heatmap peak within ``--tol`` pixels (max-norm), the
detections ``decode`` forms by pairing peaks, how many of them lie within 3 px of a true streak
(both endpoints), and so the detection precision and recall. Diagnosis only: the
numbers are read, nothing is chosen on them.

    python benchmarks/sdtnet_pairing.py --write     # -> results/tables/sdtnet_pairing.{csv,md}
    python benchmarks/sdtnet_pairing.py --val 8     # a dense validation render instead

``--val N`` renders N dense videos of its own (split ``val_dense``: other pixels than the test
splits') and compares the pairing with and without the partner vectors (``SDTNetConfig.reach_*``)
and the RoI mask's support along each segment (``SDTNetConfig.line_*``), on the same network:
what those settings were chosen on, never the test splits.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pandas as pd

from afss_utils import tables
from afss_utils.config import load_params
from afss_utils.datasets import open_coco
from afss_utils.debris import sdtnet
from afss_utils.debris.simulation import generate_split
from afss_utils.debris.stage import TEST_SPLITS, debris_config, make_videos


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
        name = "embedding + mask along the segment"
        pairings = {name + (" + partner vectors" if config.reach_weight > 0 else ""): config}
        if args.val and config.variant == "full":
            if config.reach_weight > 0:
                pairings[name] = replace(config, reach_weight=0.0)
            pairings["embedding only"] = replace(
                config,
                line_weight=0.0,
                line_min=0.0,
                mask_pair_distance=config.pair_distance,
                reach_weight=0.0,
            )
        for pairing, cfg in pairings.items():
            for label, ds in splits.items():
                head = {"network": row, "pairing": pairing, "split": label}
                out.append(head | sdtnet.detection_diagnosis(model, cfg, ds, args.tol))
    table = pd.DataFrame(out)
    print(table.round(2).to_string(index=False))
    if args.write:
        tables.write_table(table, "sdtnet_pairing", "results")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
