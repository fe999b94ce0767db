"""Train the EmbedTrack weights that ship with celltrail, one model per shared sequence.

Each model trains on the first 90% of frames of its sequence ``01`` (the last 10% are for the
evaluation in ``benchmarks/embedtrack.py``). Run from the repo root:

    python tools/train_embedtrack.py --only Fluo-N2DH-SIM+ [--steps 1500] [--threads 1]

Checkpoints go to ``.cache/embedtrack`` (``--resume`` goes on from there); the finished
half-precision model is copied to ``src/celltrail/weights/embedtrack/<sequence>.pt``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch

from celltrail.models.zoo import PACKAGE
from celltrail.training.embedtrack import TrainParams, load_sequence, train

SHARED = Path("../shared/data/ctc")
SEQUENCES = ("DIC-C2DH-HeLa", "Fluo-N2DH-GOWT1", "Fluo-N2DH-SIM+")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=SEQUENCES, action="append")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = Path(".cache/embedtrack")
    cache.mkdir(parents=True, exist_ok=True)
    (PACKAGE / "embedtrack").mkdir(parents=True, exist_ok=True)
    for name in args.only or SEQUENCES:
        start = time.perf_counter()
        sequence = load_sequence(SHARED / name / "01")
        loaded = time.perf_counter() - start

        def report(step: int, loss: float, name: str = name, start: float = start) -> None:
            if step % 50 == 0:
                print(f"{name} step {step} loss {loss:.3f} "
                      f"{time.perf_counter() - start:.0f} s", flush=True)

        out = cache / f"{name}.pt"
        train([sequence], out, TrainParams(steps=args.steps),
              resume=out if args.resume and out.exists() else None, progress=report)
        shutil.copyfile(out, PACKAGE / "embedtrack" / f"{name}.pt")
        print(f"{name}: loaded in {loaded:.0f} s, {args.steps} steps, "
              f"{time.perf_counter() - start:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
