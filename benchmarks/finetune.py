"""Fine-tuning BoxTrack's prompt segmenter from a few annotated frames: the curve.

For each shared sequence X the start is the shipped model that never saw X (``without-X``:
the other two sequences and simulated data). It is fine-tuned (``FINE_TUNE_STEPS`` steps at
``FINE_TUNE_LR``, one thread, seed 0: what ``celltrail train prompt-segmenter --from`` does) on
the first N annotated frames of X's sequence ``01`` (masks from ``01_GT/SEG``, else the silver
truth) and scored on frames it did not learn from: the last 30% of the frames with a
ground-truth mask (``01_GT/SEG`` only, at most five, evenly spaced), every training frame lying
before the first of them. The score is SEG from prompts: each true cell prompted with its own
box (:mod:`celltrail.methods.boxtrack.heldout`). N = 0 is the start model; "all" is every
annotated frame before the held-out ones, with the same step budget.

    python benchmarks/finetune.py [--only NAME] [--counts 1 2 5 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import SEQUENCES, SHARED

from celltrail.core.sequence import open_sequence, read_tiff
from celltrail.io.ctc import numbered_files
from celltrail.methods.boxtrack.heldout import prompted_seg
from celltrail.methods.boxtrack.learned import LearnedPromptSegmenter
from celltrail.models.zoo import model_path
from celltrail.training.prompt_segmenter import (
    FINE_TUNE_LR,
    FINE_TUNE_STEPS,
    TrainParams,
    annotated_frames,
    load_sequence,
    train,
)

#: Share of the ground-truth-masked frames held out (the last ones), and at most how many scored.
HELD_OUT, SCORED = 0.3, 5


def held_out(seq: Path) -> dict[int, Path]:
    """The scored frames: the last 30% of those with a GT mask, at most five, evenly spaced."""
    files = numbered_files(seq.with_name(f"{seq.name}_GT") / "SEG", "man_seg")
    frames = sorted(files)[-max(1, round(HELD_OUT * len(files))):]
    keep = sorted({frames[i] for i in np.linspace(0, len(frames) - 1, SCORED).round().astype(int)})
    return {t: files[t] for t in keep}


def score(model: str | Path, seq: Path, scored: dict[int, Path]) -> float:
    """Mean SEG from prompts of ``model`` over the scored frames."""
    segmenter = LearnedPromptSegmenter.load(model)
    images = open_sequence(seq)
    return float(np.mean([prompted_seg(segmenter, images[t], read_tiff(path))
                          for t, path in scored.items()]))


def curve(name: str, counts: list[int], work: Path) -> None:
    """The table rows of one sequence."""
    seq = SHARED / name / "01"
    scored = held_out(seq)
    usable = [t for t in annotated_frames(seq) if t < min(scored)]
    start = model_path("prompt_segmenter", f"without-{name}")
    print(f"| **{name}**: scored on frames {', '.join(map(str, scored))}; start "
          f"without-{name} | | | |", flush=True)
    print(f"| 0 | – | {score(start, seq, scored):.3f} | – |", flush=True)
    for count in [*(c for c in counts if c < len(usable)), len(usable)]:
        frames = usable[:count]
        out = work / f"{name}-{count}.pt"
        began = time.perf_counter()
        train([load_sequence(seq, frames)], out,
              TrainParams(steps=FINE_TUNE_STEPS, lr=FINE_TUNE_LR, seed=0), resume=start)
        seconds = time.perf_counter() - began
        label = "all" if count == len(usable) else str(count)
        print(f"| {label} ({count}: frames {frames[0]}–{frames[-1]}) | {FINE_TUNE_STEPS} | "
              f"{score(out, seq, scored):.3f} | {seconds:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(SEQUENCES), action="append")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 5, 10])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| annotated frames | steps | SEG from prompts, held-out frames | training s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or SEQUENCES:
            curve(name, args.counts, Path(tmp))


if __name__ == "__main__":
    main()
