"""Linking on oracle detections: celltrail's constraint linker against laptrack.

Detections are the ground-truth TRA markers, relabelled per frame in a seeded random order so that
no identity leaks. Both linkers get the same detections and the same cell scale (the median
equivalent diameter of the sequence's reference segmentation, never the markers, which can be far
smaller than the cells); both results are scored with py-ctcmetrics against the GT folder.
Timing covers everything from label frames to relabelled CTC masks: measuring the objects (the
same code for both), linking, and painting the track labels; the best of ``--repeats`` runs
per linker, the runs of the two alternating.

The hidden sequences we are judged on are not here, so besides the shared sequences as they
are, the table has proxies for them: the shared sequences subsampled in time (every 2nd and
every 3rd frame: larger steps, divisions seen later) and simulated sequences with many
divisions, small and large cells and slow and fast motion (:data:`SIMULATED`). The derived
sequences (seeded, so the same every time) are written to ``--work`` and reused when already
there, or to a temporary folder when it is not given (about a minute to make).

    python benchmarks/oracle_linking.py [--data ../shared/data/ctc] [--work DIR]
        [--seed 0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from common import SEQUENCES, gt_diameter, oracle_frames, score_result

from celltrail.linking import LINKERS
from celltrail.simulate import SimParams, simulate, subsample

#: Frame steps of the shared sequences (1: as they are).
STEPS = (1, 2, 3)

#: Simulated sequences with many divisions (oracle linking reads only the markers, so the
#: modality changes nothing but the name): small and large cells, about 70 in view, slow and
#: fast motion (mean step in cell diameters per frame).
SIMULATED = {
    "sim phase 15px": SimParams(frames=50, size=256, cells=70, modality="phase",
                                cell_diameter=15.0, displacement=0.15, division_rate=0.04),
    "sim phase 15px fast": SimParams(frames=50, size=256, cells=70, modality="phase",
                                     cell_diameter=15.0, displacement=0.4, division_rate=0.04),
    "sim fluo 75px": SimParams(frames=40, size=1024, cells=70, modality="fluo-nuclei",
                               cell_diameter=75.0, displacement=0.1, division_rate=0.03),
    "sim dic 40px fast": SimParams(frames=40, size=512, cells=70, modality="dic",
                                   cell_diameter=40.0, displacement=0.3, division_rate=0.05),
}


def cases(data: Path, work: Path, seed: int) -> Iterator[tuple[str, Path, float]]:
    """(row name, GT folder, cell diameter) of every row; derived sequences go to ``work``."""
    for name in SEQUENCES:
        seq_dir = data / name / "01"
        diameter = gt_diameter(seq_dir.with_name("01_GT"))
        for step in STEPS:
            if step == 1:
                yield f"{name} 01", seq_dir.with_name("01_GT"), diameter
                continue
            folder = work / f"{name}-step{step}"
            if not (folder / "01_GT").is_dir():
                subsample(seq_dir, seq_dir.with_name("01_GT"), folder, step)
            yield f"{name} 01 step {step}", folder / "01_GT", diameter
    for name, params in SIMULATED.items():
        folder = work / name.replace(" ", "-")
        if not (folder / "01_GT").is_dir():
            simulate(folder, params, seed=seed)
        yield name, folder / "01_GT", gt_diameter(folder / "01_GT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ctc"))
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.work is None:
        with tempfile.TemporaryDirectory() as tmp:
            table(args.data, Path(tmp), args.seed, args.repeats)
    else:
        table(args.data, args.work, args.seed, args.repeats)


def table(data: Path, work: Path, seed: int, repeats: int) -> None:
    """Print the table: every row of :func:`cases`, both linkers."""
    print(f"{'sequence':32} {'linker':10} {'TRA':>7} {'LNK':>7} {'BC(0)':>7} {'s/frame':>8}")
    for name, gt_dir, diameter in cases(data, work, seed):
        frames = oracle_frames(gt_dir, seed)
        print(f"{name}: cell diameter {diameter:.1f} px (median of the SEG reference)")
        # Repeats alternate between the linkers so that drifts of the machine hit both alike.
        seconds = dict.fromkeys(LINKERS, float("inf"))
        results = {}
        for _ in range(repeats):
            for linker, run in LINKERS.items():
                start = time.perf_counter()
                results[linker] = run(frames, cell_diameter=diameter)
                elapsed = (time.perf_counter() - start) / len(frames)
                seconds[linker] = min(seconds[linker], elapsed)
        for linker, result in results.items():
            s = score_result(result, gt_dir)
            bc = float("nan") if s["BC(0)"] is None else s["BC(0)"]
            print(f"{name:32} {linker:10} {s['TRA']:7.4f} {s['LNK']:7.4f} {bc:7.4f} "
                  f"{seconds[linker]:8.4f}", flush=True)


if __name__ == "__main__":
    main()
