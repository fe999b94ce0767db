"""Fine-tuning a learned model from a few annotated frames: the curve.

For each shared sequence X the start is a generalist that never saw X: BoxTrack's prompt
segmenter ``without-X`` (shipped: the other two sequences and simulated data) or EmbedTrack's
``general-without-X`` (``.cache/embedtrack``, from ``tools/train_embedtrack.py --general
--holdout X``). It is fine-tuned (``FINE_TUNE_STEPS`` steps at ``FINE_TUNE_LR``, one thread,
seed 0: what ``celltrail train prompt-segmenter|embedtrack --from`` does) on the first N
annotated frames of X's sequence ``01`` (masks from ``01_GT/SEG``, else the silver truth) and
scored on frames it did not learn from: the last 30% of the frames with a ground-truth mask
(``01_GT/SEG`` only, at most five, evenly spaced), every training frame lying before the first
of them. The score is SEG: BoxTrack's from prompts, each true cell prompted with its own box
(:mod:`celltrail.methods.boxtrack.heldout`); EmbedTrack's of each scored frame segmented alone,
at the median cell diameter of the annotated frames before them
(:mod:`celltrail.methods.embedtrack.heldout`). N = 0 is the start model; "all" is every
annotated frame before the held-out ones, with the same step budget.

    python benchmarks/finetune.py [--method prompt-segmenter|embedtrack] [--only NAME]
                                  [--counts 1 2 5 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import SEQUENCES, SHARED

from celltrail.core.sequence import open_sequence, read_tiff
from celltrail.io.ctc import annotated_frames, numbered_files
from celltrail.methods.boxtrack.heldout import prompted_seg
from celltrail.methods.boxtrack.learned import LearnedPromptSegmenter
from celltrail.methods.embedtrack.heldout import held_out_seg
from celltrail.models.checkpoint import read_checkpoint
from celltrail.models.zoo import model_path
from celltrail.training import embedtrack
from celltrail.training.prompt_segmenter import (
    FINE_TUNE_LR,
    FINE_TUNE_STEPS,
    TrainParams,
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


def prompt_score(seq: Path, usable: list[int]) -> Callable[[Path, int, Path], float]:
    """SEG from prompts of a prompt-segmenter model on one frame."""
    images = open_sequence(seq)
    return lambda model, t, truth: prompted_seg(LearnedPromptSegmenter.load(model), images[t],
                                                read_tiff(truth))


def prompt_tune(seq: Path, frames: list[int], start: Path, out: Path) -> None:
    """``celltrail train prompt-segmenter --from START --frames N`` on one thread."""
    train([load_sequence(seq, frames)], out,
          TrainParams(steps=FINE_TUNE_STEPS, lr=FINE_TUNE_LR, seed=0), resume=start)


def embedtrack_score(seq: Path, usable: list[int]) -> Callable[[Path, int, Path], float]:
    """SEG of an EmbedTrack model on one frame alone, at the annotated cells' diameter."""
    images, diameter = open_sequence(seq), embedtrack.load_sequence(seq, usable).diameter
    return lambda model, t, truth: held_out_seg(model, images[t], read_tiff(truth), diameter)


def embedtrack_tune(seq: Path, frames: list[int], start: Path, out: Path) -> None:
    """``celltrail train embedtrack --from START --frames N`` on one thread."""
    embedtrack.train([embedtrack.load_sequence(seq, frames)], out,
                     embedtrack.fine_tune_params(start), resume=start)


#: Per method: the start model for a held-out sequence, the scorer and the fine-tuning.
METHODS = {
    "prompt-segmenter": (lambda name: model_path("prompt_segmenter", f"without-{name}"),
                         prompt_score, prompt_tune),
    "embedtrack": (lambda name: Path(f".cache/embedtrack/general-without-{name}.pt"),
                   embedtrack_score, embedtrack_tune),
}


def curve(method: str, name: str, counts: list[int], work: Path) -> None:
    """The table rows of one sequence."""
    seq = SHARED / name / "01"
    scored = held_out(seq)
    usable = [t for t in annotated_frames(seq) if t < min(scored)]
    starting, scorer, tune = METHODS[method]
    start, one = starting(name), scorer(seq, usable)

    def score(model: Path) -> float:
        return float(np.mean([one(model, t, truth) for t, truth in scored.items()]))

    print(f"| **{name}**: scored on frames {', '.join(map(str, scored))}; start "
          f"{start.stem} | | | |", flush=True)
    if not start.is_file():
        print(f"| not trained: {start} | | | |", flush=True)
        return
    print(f"| 0 | – | {score(start):.3f} | – |", flush=True)
    for count in [*(c for c in counts if c < len(usable)), len(usable)]:
        frames = usable[:count]
        out = work / f"{name}-{count}.pt"
        began = time.perf_counter()
        tune(seq, frames, start, out)
        seconds = time.perf_counter() - began
        label = "all" if count == len(usable) else str(count)
        steps = read_checkpoint(out, "fine-tuned model")["step"]
        print(f"| {label} ({count}: frames {frames[0]}–{frames[-1]}) | {steps} | "
              f"{score(out):.3f} | {seconds:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=list(METHODS), default="prompt-segmenter")
    parser.add_argument("--only", choices=list(SEQUENCES), action="append")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 5, 10])
    args = parser.parse_args()
    torch.set_num_threads(1)
    what = "SEG from prompts" if args.method == "prompt-segmenter" else "SEG"
    print(f"| annotated frames | steps | {what}, held-out frames | training s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or SEQUENCES:
            curve(args.method, name, args.counts, Path(tmp))


if __name__ == "__main__":
    main()
