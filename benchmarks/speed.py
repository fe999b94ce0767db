"""Every method's speed and peak memory in one run: 512², 1024² and a dense scene.

Three simulated fluorescent-nuclei sequences of 20 frames (exact ground truth, so BoxTrack's
prompts are known): 512² with 30 cells, 1024² with 120 cells, and a dense 1024² scene with 180
cells at the start (at least 150 in every frame). Each method runs in a fresh process, which
builds its tracker (model loading, not timed), then tracks the whole sequence in memory; the
table gives seconds per frame of tracking and the process's peak resident memory (model
included). Settings: classical with the fluo-nuclei preset; BoxTrack's learned backend as
shipped (`general`, no adaptation) from the first frame's GT boxes; CAP's default model with the
detector's queries; EmbedTrack's default generalist (``general``, at the cell size it measures on
the first frame, which the time includes); CellBoxify with the model trained on Fluo-N2DH-SIM+ 01
(the simulated nuclei are of that kind). None of the models saw these simulated sequences.

    python benchmarks/speed.py [--frames 20] [--threads 2] [--methods cap ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import celltrail
from celltrail.io.ctc import read_tracking_gt
from celltrail.simulate import SimParams, simulate

#: The scenes: name, frame side, cells at the start.
SCENES = (("512²", 512, 30), ("1024²", 1024, 120), ("dense 1024²", 1024, 180))
#: Each method's options for this benchmark.
SETTINGS = {
    "classical": {"preset": "fluo-nuclei"},
    "boxtrack": {"backend": "learned", "adapt": False},
    "cap": {"preset": "fluo-nuclei"},
    "embedtrack": {},
    "cellboxify": {"model": "Fluo-N2DH-SIM+_box"},
}


def one(method: str, seq: Path, threads: int) -> dict[str, float]:
    """Track ``seq`` with ``method`` in this process: s/frame, peak MB, cells per frame."""
    celltrail.set_threads(threads)
    tracker = celltrail.load_tracker(method, **SETTINGS[method])
    images = celltrail.open_sequence(seq)
    prompts = seq.with_name(f"{seq.name}_GT") if method == "boxtrack" else None
    start = time.perf_counter()
    result = tracker.track(images, prompts)
    seconds = (time.perf_counter() - start) / len(images)
    cells = np.mean([len(np.unique(m)) - 1 for m in result.masks])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"s_per_frame": seconds, "peak_mb": peak, "cells": float(cells)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                        help="the methods to time (default: all)")
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "SEQ"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], Path(args.one[1]), args.threads)))
        return
    print("| scene | GT cells/frame (min-max) | method | s/frame | peak MB | cells/frame found |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, size, cells in SCENES:
            seq = simulate(Path(tmp) / name.replace("²", "").replace(" ", "-"),
                           SimParams(frames=args.frames, size=size, cells=cells), seed=0)
            counts = [len(np.unique(m)) - 1 for m in read_tracking_gt(
                seq.with_name(f"{seq.name}_GT")).masks]
            for method in args.methods:
                out = subprocess.run([sys.executable, __file__, "--one", method, str(seq),
                                      "--threads", str(args.threads)],
                                     capture_output=True, text=True, check=False)
                if out.returncode:
                    row = f"failed: {out.stderr.strip().splitlines()[-1]}"
                    print(f"| {name} | {min(counts)}-{max(counts)} | {method} | {row} | | |")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"| {name} | {min(counts)}-{max(counts)} | {method} | "
                      f"{r['s_per_frame']:.3f} | {r['peak_mb']:.0f} | {r['cells']:.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
