"""Train the prompt-segmenter weights that ship with celltrail (BoxTrack's learned backend).

Four models: one on all three shared sequences plus simulated ones (the default), and, for the
zero-shot benchmark, three that each leave one shared sequence out. Run from the repo root:

    python tools/train_prompt_segmenter.py [--steps 3000] [--only NAME] [--supervision box]

Simulated training sequences are written to ``.cache/sim-train`` (seeded, so rerunning gives the
same data); weights go to ``src/celltrail/weights/prompt_segmenter``. ``--supervision box``
trains the same models from the cells' boxes alone (CellBoxify's losses) into
``.cache/prompt_segmenter/<name>_box.pt`` instead, for ``benchmarks/boxtrack.py --part box-only``;
they are not shipped.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

from celltrail.methods.boxtrack.learned import WEIGHTS, model_name
from celltrail.training.prompt_segmenter import (
    TrainParams,
    load_sequence,
    train,
)
from celltrail.training.simulated import simulated_sequences

SHARED = Path("../shared/data/ctc")
SEQUENCES = ("DIC-C2DH-HeLa", "Fluo-N2DH-GOWT1", "Fluo-N2DH-SIM+")
#: Where the box-only models go.
BOX_ONLY = Path(".cache/prompt_segmenter")


def report(name: str, start: float, step: int, loss: float) -> None:
    """Print the loss every 250 steps."""
    if step % 250 == 0:
        print(f"{name} step {step} loss {loss:.3f} {time.perf_counter() - start:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--only", help="train only the model of this name")
    parser.add_argument("--supervision", choices=["mask", "box"], default="mask")
    args = parser.parse_args()
    box = args.supervision == "box"
    folder = BOX_ONLY if box else WEIGHTS
    sim = [load_sequence(path) for path in simulated_sequences(Path(".cache/sim-train"))]
    real = {name: load_sequence(SHARED / name / "01") for name in SEQUENCES}
    plans = [list(SEQUENCES)] + [[s for s in SEQUENCES if s != left] for left in SEQUENCES]
    folder.mkdir(parents=True, exist_ok=True)
    for names in plans:
        name = model_name(names, SEQUENCES)
        if args.only and name != args.only:
            continue
        start = time.perf_counter()
        params = TrainParams(steps=args.steps, batch=6, supervision=args.supervision)
        out = folder / (f"{name}_box.pt" if box else f"{name}.pt")
        train([real[n] for n in names] + sim, out, params,
              progress=partial(report, name, start))
        print(f"{name}: {args.steps} steps in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
