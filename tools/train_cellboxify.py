"""Train the CellBoxify weights that ship with celltrail: one model per shared sequence and
supervision, on the first 90% of frames of its sequence ``01``, or on the train split of
``../shared/data/seg/usiigaci-phase`` (phase contrast, the kind of data of the paper's LIVECell).

Box-only and full-mask models see the same frames and cells (GT masks, or the silver truth where
the GT segments only a few frames, as for DIC-C2DH-HeLa) and the same number of steps; the
box-only one reads only the boxes. ``benchmarks/cellboxify.py`` scores them on the last 10%.
Each run is saved as ``.cache/cellboxify/<name>-<head>[-texture].pt``; ``--ship`` also copies it
into the package as the shipped ``<name>.pt``. ``--teacher MODEL --rounds R`` self-trains from
boxes instead: the mask head learns the masks that the box-only ``MODEL`` draws in the boxes,
and each round's model (``<name>-selftrain<r>.pt``) teaches the next. Run from the repo
root:

    python tools/train_cellboxify.py --dataset Fluo-N2DH-SIM+ --supervision box [--steps 1600]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch

from celltrail.core.sequence import open_sequence
from celltrail.io.coco import ctc_to_coco, pairs_to_coco
from celltrail.models.cellboxify import HEADS, CellBoxifyConfig
from celltrail.models.zoo import PACKAGE
from celltrail.training.cellboxify import (
    TrainParams,
    box_only_teacher,
    train,
    training_images,
)
from celltrail.training.cellboxify.losses import GUIDES
from celltrail.training.embedtrack.data import split_index

SHARED = Path("../shared/data/ctc")
SEQUENCES = ("DIC-C2DH-HeLa", "Fluo-N2DH-SIM+", "Fluo-N2DH-GOWT1")
PHASE = Path("../shared/data/seg/usiigaci-phase")


def truth_of(seq: Path, frames: int) -> str:
    """The reference masks: the GT where it segments at least half the ``frames``, else the
    silver truth."""
    gt = list((seq.with_name(f"{seq.name}_GT") / "SEG").glob("man_seg*.tif"))
    return "gt" if len(gt) >= frames / 2 else "st"


def training_coco(seq: Path, frames: int, out: Path) -> Path:
    """The COCO file of a sequence's first 90% of ``frames`` (written once)."""
    if not out.exists():
        ctc_to_coco(seq, out, truth_of(seq, frames), range(split_index(frames)))
    return out


def image_pairs(folder: Path) -> list[tuple[Path, Path]]:
    """The ``(setN_image.tif, setN_masks.tif)`` pairs of a split of the Usiigaci set."""
    return [(image, image.with_name(image.name.replace("_image", "_masks")))
            for image in sorted(folder.glob("set*_image.tif"))]


def training_set(dataset: str, cache: Path) -> tuple[Path, Path, str]:
    """The COCO file (written once), its images' folder and what the model is trained on."""
    coco = cache / f"{dataset}-train.json"
    if dataset == PHASE.name:
        if not coco.exists():
            pairs_to_coco(image_pairs(PHASE / "train"), coco)
        return coco, PHASE / "train", f"{dataset} train split (45 images)"
    seq = SHARED / dataset / "01"
    frames = len(open_sequence(seq))
    split = split_index(frames)
    return (training_coco(seq, frames, coco), seq, f"{dataset}/01 frames 0-{split - 1}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=(*SEQUENCES, PHASE.name), required=True)
    parser.add_argument("--supervision", choices=("box", "mask"), required=True)
    parser.add_argument("--steps", type=int, default=1600)
    parser.add_argument("--head", choices=HEADS, default="mask")
    parser.add_argument("--guide", choices=GUIDES, default="intensity",
                        help="the pairwise terms' image (texture for DIC)")
    parser.add_argument("--teacher", type=Path,
                        help="self-training: the box-only model whose masks the first round learns")
    parser.add_argument("--rounds", type=int, default=1, help="self-training rounds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--ship", action="store_true",
                        help="copy the model into the package as the shipped one")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = Path(".cache/cellboxify")
    cache.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    coco, images_dir, trained_on = training_set(args.dataset, cache)
    name = f"{args.dataset}_{args.supervision}"

    def report(step: int, loss: float) -> None:
        if step % 50 == 0:
            print(f"{name} step {step} loss {loss:.3f} {time.perf_counter() - start:.0f} s",
                  flush=True)

    rounds, teacher = (args.rounds if args.teacher else 1), args.teacher
    for round_ in range(1, rounds + 1):
        drawer = None if teacher is None else box_only_teacher(teacher)
        images = training_images(coco, images_dir, args.supervision, drawer)
        variant = (f"selftrain{round_}" if args.teacher
                   else f"{args.head}{'-texture' * (args.guide == 'texture')}")
        out = cache / f"{name}-{variant}.pt"
        params = TrainParams(steps=args.steps, supervision=args.supervision, guide=args.guide,
                             teacher="" if teacher is None else teacher.name)
        train(images, out, params, resume=out if args.resume and out.exists() else None,
              progress=report, config=CellBoxifyConfig(head=args.head),
              trained_on=[trained_on])
        teacher = out
    if args.ship:
        (PACKAGE / "cellboxify").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, PACKAGE / "cellboxify" / f"{name}.pt")
    print(f"{name}: {len(images)} images, {rounds} x {args.steps} steps, "
          f"{time.perf_counter() - start:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
