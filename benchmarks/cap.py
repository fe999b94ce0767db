"""CAP on the shared sequences: leave-one-sequence-out scores, ablations and speed.

Each shipped CAP model was trained on two shared sequences plus simulated ones
(``tools/train_cap.py``); here it tracks the whole sequence ``01`` of the third. Queries come
from the first frame's TRA markers (the paper's protocol) or from the classical detector (fully
automatic); in both, the detector adds the cells that appear later. The ablation models (no AEG
sampling; time attention only) leave out Fluo-N2DH-GOWT1 and were trained with the same budget
as the shipped model they are compared with; they track without the detector's new cells, so
the rows differ by the model alone. Speed: whole-sequence inference of CAP and EmbedTrack (the
shipped model of that sequence) in the same run, on an idle machine.

    python benchmarks/cap.py [--part all|loso|ablation|speed] [--threads 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from common import SEQUENCES, gt_diameter

from celltrail.core.sequence import ArraySequence, open_sequence
from celltrail.methods.cap import CAPTracker
from celltrail.methods.embedtrack import EmbedTracker
from celltrail.metrics import evaluate_result

SHARED = Path("../shared/data/ctc")
COLUMNS = ("DET", "TRA", "MOTA", "IDF1", "BC(0)")
#: File stems of the ablation models in .cache/cap (as tools/train_cap.py names them); the
#: first is the shipped model.
ABLATIONS = {"AEG sampling, joint attention": "", "without AEG sampling": "-no-aeg",
             "time attention only": "-time-only"}


def trained_without(name: str) -> str:
    """The shipped model that leaves ``name`` out."""
    return "+".join(sorted(n for n in SEQUENCES if n != name))


def _scores(tracker: CAPTracker, name: str, queries: Path | None = None) -> str:
    seq = SHARED / name / "01"
    result = tracker.track(open_sequence(seq), queries)
    scores = evaluate_result(result, seq.with_name("01_GT"), threads=1)
    cells = " | ".join("n/a" if scores.get(c) is None else f"{scores[c]:.3f}"
                      for c in COLUMNS)
    return f"{cells} | {len(result.lineage.divisions())}"


def _diameter(name: str) -> float | None:
    """The cell diameter the dic preset needs (it cannot measure it), from the reference
    segmentation; the fluorescence preset measures it itself."""
    return gt_diameter(SHARED / name / "01_GT") if SEQUENCES[name] == "dic" else None


def loso() -> None:
    """Each held-out sequence: GT queries and detector queries, with the detector's new
    cells, and GT queries with the model alone."""
    print("| held out | model (trained on, + simulated) | queries | " + " | ".join(COLUMNS)
          + " | divisions found |")
    print("|---|---|---|" + "---|" * (len(COLUMNS) + 1))
    for name, preset in SEQUENCES.items():
        model = trained_without(name)
        gt = SHARED / name / "01_GT"
        detector = {"preset": preset, "diameter": _diameter(name)}
        for queries, tracker, prompts in (
                ("GT markers", CAPTracker(model=model, **detector), gt),
                (f"detector ({preset})", CAPTracker(model=model, **detector), None),
                ("GT markers, no new cells", CAPTracker(model=model, new_cells=False), gt)):
            print(f"| {name} | {model} | {queries} | {_scores(tracker, name, prompts)} |",
                  flush=True)


def ablation(limit: float = 150.0) -> None:
    """Fluo-N2DH-GOWT1 held out: AEG and joint attention, without AEG, time attention only;
    each row in its own process, given up after ``limit`` seconds."""
    print("| model | " + " | ".join(COLUMNS) + " | divisions found |")
    print("|---|" + "---|" * (len(COLUMNS) + 1))
    for label in ABLATIONS:
        try:
            row = subprocess.run([sys.executable, __file__, "--row", label], timeout=limit,
                                 capture_output=True, text=True, check=True).stdout.strip()
        except subprocess.TimeoutExpired:
            row = f"| {label} | did not finish in {limit:.0f} s |"
        print(row, flush=True)


def ablation_row(label: str) -> None:
    """One row of the ablation table."""
    name = "Fluo-N2DH-GOWT1"
    path = Path(".cache/cap") / f"{trained_without(name)}{ABLATIONS[label]}.pt"
    tracker = CAPTracker(model=str(path), new_cells=False)
    print(f"| {label} | {_scores(tracker, name, SHARED / name / '01_GT')} |", flush=True)


def speed(names: tuple[str, ...] = ("DIC-C2DH-HeLa", "Fluo-N2DH-GOWT1")) -> None:
    """Seconds for a whole sequence: CAP (detector queries included) and EmbedTrack."""
    print("| sequence | frames | EmbedTrack s | CAP s (GT queries) | CAP s (detector) | "
          "EmbedTrack / CAP (detector) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        images = open_sequence(SHARED / name / "01")
        frames = ArraySequence(np.stack([np.asarray(image) for image in images]))
        timings = []
        gt = SHARED / name / "01_GT"
        for tracker, queries in ((EmbedTracker(model=name), None),
                                 (CAPTracker(model=trained_without(name)), gt),
                                 (CAPTracker(model=trained_without(name), preset=SEQUENCES[name],
                                             diameter=_diameter(name)), None)):
            start = time.perf_counter()
            tracker.track(frames, queries)
            timings.append(time.perf_counter() - start)
        print(f"| {name} | {len(frames)} | {timings[0]:.1f} | {timings[1]:.1f} | "
              f"{timings[2]:.1f} | {timings[0] / timings[2]:.1f}x |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "loso", "ablation", "speed"), default="all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--row", choices=list(ABLATIONS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # py-ctcmetrics warns for every frame without a cell (tracks lost on DIC-C2DH-HeLa)
    warnings.filterwarnings("ignore", message="Empty frame")
    if args.row:
        ablation_row(args.row)
        return
    if args.part in ("all", "loso"):
        loso()
    if args.part in ("all", "ablation"):
        ablation()
    if args.part in ("all", "speed"):
        speed()


if __name__ == "__main__":
    main()
