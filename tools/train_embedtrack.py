"""Train the EmbedTrack weights that ship with celltrail, one model per shared sequence.

Each model trains on the first 90% of frames of its sequence ``01`` (the last 10% are for the
evaluation in ``benchmarks/embedtrack.py``). Run from the repo root:

    python tools/train_embedtrack.py --only Fluo-N2DH-SIM+ [--steps 1500] [--threads 1]

Checkpoints go to ``.cache/embedtrack`` (``--resume`` goes on from there); the finished
half-precision model is copied to ``src/celltrail/weights/embedtrack/<sequence>.pt``.

``--general [--holdout NAME]`` trains one scale-normalised generalist instead: on the first 90%
of frames of every shared sequence but the held-out one, plus the simulated sequences of every
modality, each rescaled so its median cell is ``CANONICAL_DIAMETER`` pixels wide, with the
appearance augmentations on. It stays in ``.cache/embedtrack/general[-without-NAME].pt``:

    python tools/train_embedtrack.py --general --holdout Fluo-N2DH-GOWT1 --steps 3000 --batch 4 \
        --lr 1e-3 --threads 1

``--seg`` adds the single annotated images of ``../shared/data/seg`` that are not kept for
scoring (the Usiigaci train split and the first 90% of the bacteria frames; the StarDist image
is kept out), as still pairs; the model is then named ``general-seg[-without-NAME]``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile
import torch

from celltrail.models.prompt_segmenter import CANONICAL_DIAMETER
from celltrail.models.zoo import PACKAGE
from celltrail.training.embedtrack import SampleParams, TrainParams, load_sequence, train
from celltrail.training.embedtrack.data import TrainingSequence, load_stills, split_index
from celltrail.training.simulated import simulated_sequences

SHARED = Path("../shared/data/ctc")
SEG = Path("../shared/data/seg")
SEQUENCES = ("DIC-C2DH-HeLa", "Fluo-N2DH-GOWT1", "Fluo-N2DH-SIM+")
CACHE = Path(".cache/embedtrack")


def reporter(name: str, start: float) -> Callable[[int, float], None]:
    """Progress every 50 steps: step, loss, seconds since ``start``."""

    def report(step: int, loss: float) -> None:
        if step % 50 == 0:
            print(f"{name} step {step} loss {loss:.3f} {time.perf_counter() - start:.0f} s",
                  flush=True)

    return report


def general_name(holdout: str | None, seg: bool = False) -> str:
    """The generalist's model name: ``general[-seg]``, or ``general[-seg]-without-<sequence>``."""
    name = "general-seg" if seg else "general"
    return name if holdout is None else f"{name}-without-{holdout}"


def seg_stills() -> list[TrainingSequence]:
    """The training images of the seg sets (see the module docstring) as still sequences."""
    phase = sorted((SEG / "usiigaci-phase" / "train").glob("set*_image.tif"))
    bacteria = [tifffile.imread(SEG / "bacteria-trpL" / f) for f in ("images.tif", "masks.tif")]
    keep = split_index(len(bacteria[0]))
    return [load_stills("usiigaci-phase/train", [tifffile.imread(p) for p in phase],
                        [tifffile.imread(str(p).replace("_image", "_masks")) for p in phase]),
            load_stills("bacteria-trpL/first-90%", list(bacteria[0][:keep]),
                        list(np.asarray(bacteria[1][:keep])))]


def train_general(holdout: str | None, params: TrainParams, resume: bool, seg: bool) -> None:
    """Train the scale-normalised generalist without ``holdout`` (see the module docstring)."""
    name, start = general_name(holdout, seg), time.perf_counter()
    folders = [SHARED / s / "01" for s in SEQUENCES if s != holdout]
    folders += simulated_sequences(CACHE.parent / "simulated")
    sequences = [load_sequence(folder) for folder in folders] + (seg_stills() if seg else [])
    loaded = time.perf_counter() - start
    print(f"{name}: {len(sequences)} sequences ({', '.join(s.name for s in sequences)}) "
          f"loaded in {loaded:.0f} s", flush=True)
    out = CACHE / f"{name}.pt"
    train(sequences, out, params, resume=out if resume and out.exists() else None,
          progress=reporter(name, start))
    print(f"{name}: {params.steps} steps of batch {params.batch}, "
          f"threads {torch.get_num_threads()}, "
          f"{time.perf_counter() - start:.0f} s in all (loading {loaded:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=SEQUENCES, action="append")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--general", action="store_true",
                        help="train the scale-normalised generalist")
    parser.add_argument("--holdout", choices=SEQUENCES,
                        help="with --general: the shared sequence it never sees")
    parser.add_argument("--seg", action="store_true",
                        help="with --general: also the seg sets' training images")
    parser.add_argument("--crop", type=int, default=128, help="with --general: crop side")
    parser.add_argument("--batch", type=int, default=2, help="with --general: batch size")
    parser.add_argument("--lr", type=float, default=5e-4, help="with --general: peak rate")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.general:
        sample = SampleParams(crop=args.crop, appearance=True)
        train_general(args.holdout, TrainParams(steps=args.steps, batch=args.batch, lr=args.lr,
                                                sample=sample,
                                                canonical_diameter=CANONICAL_DIAMETER),
                      args.resume, args.seg)
        return
    (PACKAGE / "embedtrack").mkdir(parents=True, exist_ok=True)
    for name in args.only or SEQUENCES:
        start = time.perf_counter()
        sequence = load_sequence(SHARED / name / "01")
        loaded = time.perf_counter() - start
        out = CACHE / f"{name}.pt"
        train([sequence], out, TrainParams(steps=args.steps),
              resume=out if args.resume and out.exists() else None,
              progress=reporter(name, start))
        shutil.copyfile(out, PACKAGE / "embedtrack" / f"{name}.pt")
        print(f"{name}: loaded in {loaded:.0f} s, {args.steps} steps, "
              f"{time.perf_counter() - start:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
