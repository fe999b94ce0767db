"""Defaults on simulated stand-ins for the kinds of data none of the shared sets shows.

Issue 26 names two kinds the team has no real sequence of: fluorescent cell bodies of about
75 px, dim, with thin protrusions, and phase contrast at low magnification, small cells of
about 15 px, about 70 per frame. The simulator's ``fluo-cells`` and ``phase`` kinds stand in
for them (30 frames of 512², seed 11, a seed no model or test uses), with ``phase-bright``
(cells brighter than the background, as the issue describes them), DIC and bright field
beside them. Each is run exactly as a user would, with no option beyond the input:

- ``celltrail track SEQ --out RES``;
- ``celltrail track SEQ --out RES --method boxtrack --boxes-from-gt SEQ_GT`` (the first
  frame's boxes from the ground truth; backend ``auto`` with adaptation, preset ``auto``);
- ``celltrail track SEQ --out RES --method cap`` (the default model, queries from the
  detector with preset ``auto``);
- ``celltrail track SEQ --out RES --method embedtrack`` (the generalist ``general``, at the
  cell size it measures itself).

The table gives what each run says (preset, diameter, backend), cells per frame against the
reference, and DET, TRA and MOTA. No constant of the package was chosen on these sequences.

    python benchmarks/unseen_kinds.py [--frames 30] [--only KIND ...] [--method METHOD ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from celltrail.cli import app
from celltrail.io.ctc import read_result, read_tracking_gt
from celltrail.metrics import evaluate
from celltrail.simulate import SimParams, simulate

#: (modality, cell diameter px, cells at the start) on 512² frames.
KINDS = (("fluo-cells", 75.0, 12), ("phase", 15.0, 70), ("phase-bright", 15.0, 70),
         ("dic", 40.0, 40), ("brightfield", 30.0, 50))
#: method: (row label, options beyond the input and --out)
RUNS = {"classical": ("track, no option", ()),
        "boxtrack": ("boxtrack, GT first-frame boxes", ("--method", "boxtrack")),
        "cap": ("cap, no other option", ("--method", "cap")),
        "embedtrack": ("embedtrack, no other option", ("--method", "embedtrack"))}
SAID = ("preset:", "diameter:", "backend:", "warning:", "detector preset:", "detector diameter:")


def counts(masks: list[np.ndarray]) -> np.ndarray:
    """Objects per label image."""
    return np.array([len(np.unique(m)) - 1 for m in masks])


def stats(values: np.ndarray) -> str:
    return f"{values.min()} / {np.median(values):g} / {values.max()}"


def run(seq: Path, out: Path, options: tuple[str, ...]) -> list[str]:
    """A row's cells: what the run said, cells per frame, empty frames, scores, seconds."""
    gt = seq.with_name(f"{seq.name}_GT")
    if "boxtrack" in options:
        options = (*options, "--boxes-from-gt", str(gt))
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["track", str(seq), "--out", str(out), *options])
    seconds = time.perf_counter() - start
    lines = result.stderr.splitlines()
    if result.exit_code != 0:
        return [lines[-1] if lines else "failed", *"–" * 5, f"{seconds:.0f}"]
    summary = lines[next(i for i, line in enumerate(lines) if line.startswith("cells per")):]
    said = "; ".join(line.split(" (")[0] if not line.startswith("backend:") else
                     line.removesuffix(" (prompt check)")
                     for line in summary if line.startswith(SAID))
    found = counts(list(read_result(out).masks))
    scores = evaluate(gt, out, threads=1)
    return [said, stats(found), str(int(np.sum(found == 0))),
            *(f"{scores[k]:.3f}" for k in ("DET", "TRA", "MOTA")), f"{seconds:.0f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--only", choices=[kind for kind, _, _ in KINDS], action="append",
                        help="run these kinds only (default: all)")
    parser.add_argument("--method", choices=list(RUNS), action="append",
                        help="run these methods only (default: all)")
    args = parser.parse_args()
    print("| kind | run | run says | cells per frame min / median / max | reference | "
          "empty frames | DET | TRA | MOTA | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for modality, diameter, cells in KINDS:
            if args.only and modality not in args.only:
                continue
            params = SimParams(frames=args.frames, size=512, cells=cells, modality=modality,
                               cell_diameter=diameter)
            seq = simulate(Path(tmp) / f"{modality}-{diameter:g}", params, seed=11)
            reference = stats(counts(list(read_tracking_gt(seq.with_name("01_GT")).masks)))
            for method, (label, options) in RUNS.items():
                if args.method and method not in args.method:
                    continue
                out = Path(tmp) / f"{modality}-{label.split(',')[0]}"
                cells = run(seq, out, options)
                cells.insert(2, reference)
                print(f"| {modality}, {diameter:g} px | {label} | " + " | ".join(cells) + " |",
                      flush=True)


if __name__ == "__main__":
    main()
