"""EmbedTrack on the shared sequences: the table in docs/benchmarks.md.

Each shipped model was trained on the first 90% of frames of its sequence ``01``
(``tools/train_embedtrack.py``); here it runs on the last 10%, which is cut out with its ground
truth (``subsample(..., start=split)``), and is scored with py-ctcmetrics. Where the GT has no
segmentation in those frames, SEG is measured against the silver truth (``01_ST``) and marked
so; where neither exists it is left out. Seconds per frame include normalisation, tiling,
network, clustering and linking, without and with test-time augmentation (8 symmetries), on
the 512 x 512 frames of DIC-C2DH-HeLa (measure on an idle machine).

``--part general`` scores the scale-normalised generalists left out of one shared sequence each
(``.cache/embedtrack/general-without-NAME.pt``, ``tools/train_embedtrack.py --general``) on
that sequence: on the same last 10% as the per-dataset model and the shipped generalist
``general`` (both shown beside it; both saw that sequence's first 90%), and on the whole of
``01``, which it never saw. Their cell diameter is estimated on the first frame scored; the
shipped generalist also runs at the median diameter of the sequence's reference masks (GT, else
silver truth). ``--no-holdout`` leaves the hold-outs out (to score a retrained ``general``).

    python benchmarks/embedtrack.py [--part all|accuracy|speed|general] [--only NAME]
                                    [--threads 2] [--no-holdout]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from common import SEQUENCES, SHARED, finished_model, gt_diameter, tail

from celltrail.core.sequence import ArraySequence, ImageSequence, open_sequence
from celltrail.io.ctc import read_tracking_gt
from celltrail.methods.embedtrack import EmbedTracker
from celltrail.methods.embedtrack.options import DEFAULT_MODEL
from celltrail.metrics import evaluate_result
from celltrail.models.embedtrack import load_checkpoint
from celltrail.models.zoo import model_names, model_path


def accuracy(names: list[str]) -> None:
    """SEG, DET, TRA on each sequence's last 10%, without and with test-time augmentation."""
    print("| sequence | frames | SEG | DET | TRA | TRA with TTA | training |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        state = load_checkpoint(model_path("embedtrack", name))
        with tempfile.TemporaryDirectory() as tmp:
            images_dir, truth = tail(name, Path(tmp))
            images = open_sequence(images_dir)
            gt = images_dir.with_name("01_GT")
            plain = evaluate_result(EmbedTracker(model=name).track(images), gt, threads=1)
            tta = evaluate_result(EmbedTracker(model=name, tta=True).track(images), gt, threads=1)
        seg = "n/a" if truth == "none" else f"{plain['SEG']:.3f}" + " (vs ST)" * (truth == "ST")
        minutes = float(state["seconds"]) / 60
        print(f"| {name} | {len(images)} | {seg} | {plain['DET']:.3f} | {plain['TRA']:.3f} "
              f"| {tta['TRA']:.3f} | {state['step']} steps, {minutes:.0f} min |", flush=True)


#: Where ``tools/train_embedtrack.py --general`` leaves its models.
GENERAL = Path(".cache/embedtrack")
#: The bundled sample: a crop of Fluo-N2DH-GOWT1 01 (``celltrail demo``).
SAMPLE = Path(str(files("celltrail") / "sample_data" / "Fluo-N2DH-GOWT1-crop"))


def trained_on(state: dict) -> str:
    """What a model saw: its shared sequences (first 90% of ``01``) and how many simulated."""
    names = [str(n) for n in state["trained_on"]]
    shared = [n.split("/")[0] for n in names if n.split("/")[0] in SEQUENCES]
    simulated = len(names) - len(shared)
    return ", ".join(shared) + (f" + {simulated} simulated" if simulated else "")


def general_row(model: str, images: ImageSequence, gt: Path, truth: str, label: str,
                diameter: float | None = None) -> str:
    """One table row: ``model`` scored on ``images`` against ``gt`` (a scale-normalised model
    at ``diameter``, else at the diameter it estimates)."""
    state = load_checkpoint(model_path("embedtrack", model))
    tracker = EmbedTracker(model=model, diameter=diameter)
    start = time.perf_counter()
    result = tracker.track(images)
    seconds = (time.perf_counter() - start) / len(images)
    scores = evaluate_result(result, gt, threads=1)
    seg = "n/a" if truth == "none" else f"{scores['SEG']:.3f}" + " (vs ST)" * (truth == "ST")
    found, cells = (np.array([len(np.unique(np.asarray(m))) - 1 for m in masks])
                    for masks in (result.masks, read_tracking_gt(gt).masks))
    diameter = tracker.settings().get("diameter", "native scale")
    minutes = float(state["seconds"]) / 60
    saw = "no" if Path(model).stem.startswith("general-without-") else "yes, first 90% of 01"
    return (f"| {Path(model).stem} | {trained_on(state)} | {saw} | {label} | {len(images)} "
            f"| {seg} "
            f"| {scores['DET']:.3f} | {scores['TRA']:.3f} | {found.mean():.1f} / "
            f"{cells.mean():.1f} | {diameter} | {seconds:.2f} "
            f"| {state['step']} steps, {minutes:.0f} min |")


def general(names: list[str], holdouts: bool = True) -> None:
    """Leave-one-dataset-out: each held-out sequence's generalist beside its per-dataset
    model and the shipped generalist (both saw the first 90%) on the last 10% of ``01``, then
    alone on the whole of ``01``; both on the bundled
    sample where it is a crop of that sequence (which the per-dataset model saw). Without
    ``holdouts``, only the rows of the per-dataset and shipped models."""
    print("| model | trained on (first 90% of each 01) | saw the scored sequence | scored on "
          "| frames | SEG | DET | TRA | objects / cells per frame (mean) | cell diameter "
          "| s/frame | training |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    shipped = [DEFAULT_MODEL] if DEFAULT_MODEL in model_names("embedtrack") else []
    for name in names:
        lodo = GENERAL / f"general-without-{name}.pt"
        trained = [str(lodo)] if holdouts and finished_model(lodo) else []
        with tempfile.TemporaryDirectory() as tmp:
            images_dir, truth = tail(name, Path(tmp))
            images, gt = open_sequence(images_dir), images_dir.with_name("01_GT")
            for model in (name, *shipped, *trained):
                print(general_row(model, images, gt, truth, f"{name} 01, last 10%"), flush=True)
            for model in shipped:  # at the reference cells' median diameter
                print(general_row(model, images, gt, truth, f"{name} 01, last 10%",
                                  gt_diameter(SHARED / name / "01_GT")), flush=True)
        if not holdouts:
            continue
        if not trained:
            print(f"| {lodo.stem} | not (fully) trained in {GENERAL} | no | {name} | | | | | | | "
                  "| |", flush=True)
            continue
        whole = SHARED / name / "01"
        truth = "GT" if (whole.with_name("01_GT") / "SEG").is_dir() else "none"
        print(general_row(str(lodo), open_sequence(whole), whole.with_name("01_GT"), truth,
                          f"{name} 01, all frames"), flush=True)
        crop = SAMPLE.with_name(f"{name}-crop")
        for model in (name, str(lodo)) if crop.is_dir() else ():
            print(general_row(model, open_sequence(crop / "01"), crop / "01_GT", "GT",
                              f"bundled sample ({crop.name} of 01)"), flush=True)


def speed(repeats: int = 3) -> None:
    """Seconds per 512 x 512 frame (DIC-C2DH-HeLa), everything from normalisation to linking;
    the best of ``repeats`` runs over the sequence's last 10%."""
    name = "DIC-C2DH-HeLa"
    print("| frame | TTA | s/frame |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        images = open_sequence(tail(name, Path(tmp))[0])
        frames = [np.asarray(image) for image in images]  # read once: time the method only
        for tta in (False, True):
            tracker = EmbedTracker(model=name, tta=tta)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                tracker.track(ArraySequence(np.stack(frames)))
                best = min(best, (time.perf_counter() - start) / len(frames))
            print(f"| {frames[0].shape[0]} x {frames[0].shape[1]} | {'yes' if tta else 'no'} "
                  f"| {best:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "accuracy", "speed", "general"),
                        default="all")
    parser.add_argument("--only", choices=list(SEQUENCES), action="append")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-holdout", action="store_true",
                        help="--part general: the per-dataset and shipped models only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part in ("all", "accuracy"):
        accuracy(args.only or list(SEQUENCES))
    if args.part in ("all", "speed"):
        speed()
    if args.part in ("all", "general"):
        general(args.only or list(SEQUENCES), not args.no_holdout)


if __name__ == "__main__":
    main()
