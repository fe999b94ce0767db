"""Train the CAP weights that ship with celltrail: the generalist and its hold-outs.

``general`` (the default model) trains on the three shared sequences ``01`` (all frames) plus
simulated sequences. With ``--holdout``, a model trains on the other two and is named after its
training data; the third sequence is left for ``benchmarks/cap.py``: these are the generalist's
leave-one-sequence-out measure. The
ablations (``--no-aeg``, ``--time-only``) and the DIC-like relief augmentation (``--relief P``)
train the same way and stay in ``.cache/cap``.
Run from the repo root:

    python tools/train_cap.py [--holdout Fluo-N2DH-GOWT1] [--steps 1500] [--threads 1]
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch

from celltrail.models.zoo import PACKAGE
from celltrail.training.cap import SampleParams, TrainParams, load_sequence, train
from celltrail.training.simulated import simulated_sequences

SHARED = Path("../shared/data/ctc")
SEQUENCES = ("DIC-C2DH-HeLa", "Fluo-N2DH-GOWT1", "Fluo-N2DH-SIM+")
#: Frames per simulated training sequence (at least a window of 24).
SIMULATED_FRAMES = 40


def variant(holdout: str | None, no_aeg: bool, time_only: bool, relief: float) -> str:
    """File stem of a run: ``general``, or the name of its training data; with the changes it
    makes."""
    name = "+".join(sorted(n for n in SEQUENCES if n != holdout)) if holdout else "general"
    return name + "-relief" * (relief > 0) + "-no-aeg" * no_aeg + "-time-only" * time_only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holdout", choices=SEQUENCES,
                        help="the shared sequence it never sees (default: none, `general`)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-aeg", action="store_true", help="P_AEG = 0 (ablation)")
    parser.add_argument("--time-only", action="store_true",
                        help="time attention only, no cross-trajectory attention (ablation)")
    parser.add_argument("--relief", type=float, default=0.0,
                        help="chance of a DIC-like relief window (an experiment)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = Path(".cache/cap")
    cache.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sequences = [load_sequence(SHARED / name / "01") for name in SEQUENCES
                 if name != args.holdout]
    sequences += [load_sequence(p) for p in
                  simulated_sequences(Path(".cache/sim-cap"), frames=SIMULATED_FRAMES)]
    loaded = time.perf_counter() - start
    params = TrainParams(steps=args.steps, sample=SampleParams(relief=args.relief))
    if args.no_aeg:
        params = replace(params, sample=replace(params.sample, aeg=0.0))
    if args.time_only:
        params = replace(params, config=replace(params.config, joint=False))
    name = variant(args.holdout, args.no_aeg, args.time_only, args.relief)

    def report(step: int, loss: float) -> None:
        if step % 50 == 0:
            print(f"{name} step {step} loss {loss:.3f} {time.perf_counter() - start:.0f} s",
                  flush=True)

    out = cache / f"{name}.pt"
    train(sequences, out, params, resume=out if args.resume and out.exists() else None,
          progress=report)
    if not (args.no_aeg or args.time_only or args.relief):
        (PACKAGE / "cap").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, PACKAGE / "cap" / f"{name}.pt")
    print(f"{name}: loaded in {loaded:.0f} s, {args.steps} steps, "
          f"{time.perf_counter() - start:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
