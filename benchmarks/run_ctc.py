"""Every method on every shared CTC sequence, with peers in the same run (docs/benchmarks.md).

For each sequence under ``../shared/data/ctc/*/01`` it runs the classical pipeline (celltrail's
segmentation + constraint linker), laptrack linking the same segmentation, and a peer (plain
scikit-image Otsu/LoG + watershed, linked by laptrack with splitting and gap closing, its cutoff
from the median size of its own segments), scores them with py-ctcmetrics and prints SEG, DET,
TRA, LNK, BC(0), MOTA, IDF1 and seconds per frame (reading the frames, segmenting, linking; not
the scoring). Fluorescence presets measure the cell size from the images; the DIC preset is
given the median diameter of the sequence's reference segmentation. It then times the command
line end to end (``celltrail track``, with writing the result and tables) on each sequence.

    python benchmarks/run_ctc.py [--data ../shared/data/ctc] [--out benchmarks/out]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from common import (
    SEQUENCES,
    gt_diameter,
    laptrack_result,
    median_diameter,
    peer_segmenter,
    score_result,
)

from celltrail.core.sequence import open_sequence
from celltrail.methods.classical import ClassicalTracker

COLUMNS = ("SEG", "DET", "TRA", "LNK", "BC(0)", "MOTA", "IDF1")


def run_classical(seq_dir: Path, preset: str, diameter: float | None):
    """The classical pipeline on a sequence; returns the result and seconds per frame."""
    start = time.perf_counter()
    images = open_sequence(seq_dir)
    result = ClassicalTracker(preset=preset, diameter=diameter).track(images)
    return result, (time.perf_counter() - start) / len(images)


def run_laptrack_on_ours(seq_dir: Path, preset: str, diameter: float | None):
    """celltrail's segmentation linked by laptrack (the same cutoff rule as our linker's gate)."""
    start = time.perf_counter()
    images = open_sequence(seq_dir)
    tracker = ClassicalTracker(preset=preset, diameter=diameter)
    masks = list(tracker.segment_frames(images))
    result = laptrack_result(masks, tracker.segmenter.diameter)
    return result, (time.perf_counter() - start) / len(images)


def run_peer(seq_dir: Path, preset: str, diameter: float | None):
    """scikit-image segmentation + laptrack on a sequence; the result and seconds per frame.
    The peer takes its scale from its own segments (``diameter`` is not used)."""
    start = time.perf_counter()
    images = open_sequence(seq_dir)
    segment = peer_segmenter(preset)
    masks = [segment(frame) for frame in images]
    result = laptrack_result(masks, median_diameter(masks))
    return result, (time.perf_counter() - start) / len(images)


def cli_seconds_per_frame(seq_dir: Path, preset: str, diameter: float | None,
                          out: Path) -> float:
    """Wall time per frame of ``celltrail track`` (process start, reading, writing included)."""
    start = time.perf_counter()
    size = [] if diameter is None else ["--diameter", f"{diameter:.1f}"]
    subprocess.run(["celltrail", "track", str(seq_dir), "--preset", preset, *size,
                    "--out", str(out)], check=True, capture_output=True)
    return (time.perf_counter() - start) / len(open_sequence(seq_dir))


def fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ctc"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args()
    header = ["sequence", "method", *COLUMNS, "s/frame"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    cli_rows = []
    for name, preset in SEQUENCES.items():
        seq_dir = args.data / name / "01"
        gt_dir = seq_dir.with_name("01_GT")
        # Fluorescence measures its own cell size; texture presets take the median diameter of
        # the reference segmentation (a data statistic; `--diameter` on the command line).
        diameter = None if preset == "fluo-nuclei" else gt_diameter(gt_dir)
        for method, run in (("celltrail classical", run_classical),
                            ("celltrail segmentation + laptrack", run_laptrack_on_ours),
                            ("peer: skimage + laptrack", run_peer)):
            result, seconds = run(seq_dir, preset, diameter)
            scores = score_result(result, gt_dir)
            cells = [name, method, *(fmt(scores[c]) for c in COLUMNS), f"{seconds:.3f}"]
            print("| " + " | ".join(cells) + " |", flush=True)
        out = args.out / name / "01_RES"
        frame_shape = open_sequence(seq_dir).shape
        cli_rows.append((name, frame_shape, cli_seconds_per_frame(seq_dir, preset, diameter, out)))
    print("\n| sequence | frame size | `celltrail track` s/frame | frames/s |\n|---|---|---|---|")
    for name, shape, seconds in cli_rows:
        print(f"| {name} | {shape[1]}×{shape[0]} | {seconds:.3f} | {1 / seconds:.1f} |")


if __name__ == "__main__":
    main()
