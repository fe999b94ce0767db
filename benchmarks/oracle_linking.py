"""Linking on oracle detections: celltrail's constraint linker against laptrack.

Detections are the ground-truth TRA markers, relabelled per frame in a seeded random order so that
no identity leaks. Both linkers get the same detections and the same cell scale (the median
equivalent diameter of the sequence's reference segmentation, never the markers, which can be far
smaller than the cells); both results are scored with py-ctcmetrics against the GT folder.
Timing covers everything from label frames to relabelled CTC masks: measuring the objects (the
same code for both), linking, and painting the track labels; the best of ``--repeats`` runs
per linker, the runs of the two alternating.

    python benchmarks/oracle_linking.py [--data ../shared/data/ctc] [--seed 0] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import SEQUENCES, gt_diameter, laptrack_result, oracle_frames, score_result

from celltrail.linking import link


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ctc"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'sequence':18} {'linker':10} {'TRA':>7} {'LNK':>7} {'BC(0)':>7} {'s/frame':>8}")
    for name in SEQUENCES:
        seq_dir = args.data / name / "01"
        gt_dir = seq_dir.with_name("01_GT")
        frames = oracle_frames(gt_dir, args.seed)
        diameter = gt_diameter(gt_dir)
        print(f"{name}: cell diameter {diameter:.1f} px (median of the SEG reference)")
        runs = {
            "celltrail": lambda f=frames, d=diameter: link(f, cell_diameter=d),
            "laptrack": lambda f=frames, d=diameter: laptrack_result(f, d),
        }
        # Repeats alternate between the linkers so that drifts of the machine hit both alike.
        seconds = dict.fromkeys(runs, float("inf"))
        results = {}
        for _ in range(args.repeats):
            for linker, run in runs.items():
                start = time.perf_counter()
                results[linker] = run()
                elapsed = (time.perf_counter() - start) / len(frames)
                seconds[linker] = min(seconds[linker], elapsed)
        for linker, result in results.items():
            s = score_result(result, gt_dir)
            bc = float("nan") if s["BC(0)"] is None else s["BC(0)"]
            print(f"{name:18} {linker:10} {s['TRA']:7.4f} {s['LNK']:7.4f} {bc:7.4f} "
                  f"{seconds[linker]:8.4f}", flush=True)


if __name__ == "__main__":
    main()
