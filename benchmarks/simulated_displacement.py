"""Classical pipeline on simulated sequences: TRA as the displacement per frame grows.

Easy settings (fluo-nuclei, low density, small motion) first, then larger steps between frames
with everything else equal. Each row is the mean over several seeds.

    python benchmarks/simulated_displacement.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import score_result

from celltrail.core.sequence import open_sequence
from celltrail.methods.classical import ClassicalTracker
from celltrail.simulate import SimParams, simulate

DISPLACEMENTS = (0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--cells", type=int, default=10)
    args = parser.parse_args()
    print(f"fluo-nuclei, 256x256, {args.frames} frames, {args.cells} cells of 24 px, "
          f"division rate 0.01, mean of {args.seeds} seeds\n")
    print("| displacement (diameters/frame) | TRA | DET | LNK |\n|---|---|---|---|")
    for displacement in DISPLACEMENTS:
        scores = []
        for seed in range(args.seeds):
            params = SimParams(frames=args.frames, cells=args.cells, displacement=displacement)
            with tempfile.TemporaryDirectory() as tmp:
                seq = simulate(Path(tmp), params, seed=seed)
                result = ClassicalTracker(preset="fluo-nuclei").track(open_sequence(seq))
                s = score_result(result, seq.with_name("01_GT"))
            scores.append((s["TRA"], s["DET"], s["LNK"]))
        tra, det, lnk = np.mean(scores, axis=0)
        print(f"| {displacement:.2f} | {tra:.3f} | {det:.3f} | {lnk:.3f} |", flush=True)


if __name__ == "__main__":
    main()
