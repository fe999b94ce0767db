"""CellBoxify on the shared sequences: box-only against full-mask training (docs/benchmarks.md).

Each shipped model was trained on the first 90% of frames of its sequence ``01``
(``tools/train_cellboxify.py``, both supervisions with the same frames, cells and steps); here
it segments the last 10%. Mask and box AP, AP50, AP75 use COCO's protocol with LIVECell's limits
(``celltrail.metrics.coco``); SEG, DET and TRA come from py-ctcmetrics after the classical
linker tracked the masks. The reference is the GT segmentation where it covers those frames,
else the silver truth (``01_ST``), as for DIC-C2DH-HeLa. The last row per sequence is the ratio
box-only / full-mask (the paper: 0.834 on LIVECell). ``usiigaci-phase`` repeats the paper's
protocol on phase contrast (``../shared/data/seg/usiigaci-phase``): models trained on its train
split (45 images) and scored on its val split (5 images), mask AP only (no tracks). A last
table scores the mask AP of the same detections painted as label images paint them (no pixel in
two cells).

``--box-variant V`` scores the box-only model ``.cache/cellboxify/NAME_box-V.pt`` that
``tools/train_cellboxify.py`` left (``mask``, ``polygon``, ``polygon-texture``, ``selftrain2``,
…) instead of the shipped one; ``--mask-variant V`` likewise the full-mask model
``NAME_mask-V.pt``.

    python benchmarks/cellboxify.py [--only NAME] [--threads 2] [--box-variant V] [--mask-variant V]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from common import SHARED, tail

from celltrail.core.sequence import open_sequence
from celltrail.io.coco import ctc_to_coco, pairs_to_coco, read_coco
from celltrail.linking import link
from celltrail.methods.cellboxify import (
    CellBoxifySegmenter,
    coco_results,
    paint,
    paint_scored,
)
from celltrail.metrics import evaluate_result
from celltrail.metrics.coco import coco_ap, segmentation_scores
from celltrail.models.cellboxify import CellBoxifyConfig, load_checkpoint
from celltrail.models.zoo import model_path
from celltrail.training.embedtrack.data import split_index

PHASE = SHARED.parent / "seg/usiigaci-phase"
DATASETS = ("Fluo-N2DH-SIM+", "DIC-C2DH-HeLa", PHASE.name)


def detect_all(segmenter: CellBoxifySegmenter, gt_json: Path, images_dir: Path
               ) -> tuple[list[dict], list[np.ndarray], float, dict[str, float | None]]:
    """Every detection (scored, overlapping) on the images of ``gt_json`` as COCO results,
    their label images in image order, the mean seconds per image of detection (from the raw
    image to masks on their boxes), and the mask AP of the same detections painted as a label
    image paints them (duplicates dropped, no pixel in two cells)."""
    results, labels, seconds, cells, cell_scores = [], [], [], {}, {}
    for entry in read_coco(gt_json, images_dir):
        image = entry.load()
        start = time.perf_counter()
        found = segmenter.detect(image)
        seconds.append(time.perf_counter() - start)
        labels.append(paint(found, image.shape))
        cells[entry.image_id], scores = paint_scored(found, image.shape, min_score=0.0)
        cell_scores[entry.image_id] = dict(enumerate(scores.tolist(), start=1))
        results += coco_results(found, entry.image_id, image.shape)
    painted = segmentation_scores(gt_json, cells, cell_scores)["segm"]
    return results, labels, float(np.mean(seconds)), painted


def model_of(name: str, supervision: str, variant: str | None) -> Path:
    """The shipped model of a dataset and supervision, or the cache's ``variant``."""
    return (Path(".cache/cellboxify") / f"{name}_{supervision}-{variant}.pt" if variant
            else model_path("cellboxify", f"{name}_{supervision}"))


def describe(model: Path, supervision: str, steps_and_time: bool = True) -> dict[str, object]:
    """How a model was trained: its head and supervision, steps and minutes."""
    state = load_checkpoint(model)
    head = CellBoxifyConfig.from_dict(state["config"]).head
    params = state["params"] if supervision == "box" else {}
    # a self-trained model learnt its teacher's masks; the pairwise terms are the teacher's
    how = (", self-trained" if params.get("teacher")
           else ", texture guide" * (params.get("guide") == "texture"))
    return {"supervision": f"{supervision} ({head} head{how})",
            "minutes": float(state["seconds"]) / 60, "steps": int(state["step"])}


def evaluate(name: str, variants: dict[str, str | None]) -> list[dict[str, object]]:
    """Scores of the box-only and full-mask models of one sequence: COCO AP of the detections,
    and the CTC metrics of their label images linked as `celltrail track` links them. The
    models are the shipped ones, or the cache's ``variants`` by supervision."""
    if name == PHASE.name:
        return evaluate_phase(variants)
    seq = SHARED / name / "01"
    frames = open_sequence(seq)
    n = len(frames)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        images_dir, truth = tail(name, Path(tmp) / "tail")
        gt_json = ctc_to_coco(seq, Path(tmp) / "eval.json", truth.lower(),
                              range(split_index(n), n))
        for supervision in ("mask", "box"):
            model = model_of(name, supervision, variants.get(supervision))
            results, labels, seconds, painted = detect_all(CellBoxifySegmenter(model), gt_json, seq)
            ctc = evaluate_result(link(labels), images_dir.with_name("01_GT"), threads=1)
            rows.append({**describe(model, supervision), "truth": truth,
                         "frames": n - split_index(n), "ctc": ctc, "seconds": seconds,
                         "size": frames.shape, "painted": painted,
                         **{kind: coco_ap(gt_json, results, kind) for kind in ("segm", "bbox")}})
    return rows


def evaluate_phase(variants: dict[str, str | None]) -> list[dict[str, object]]:
    """Mask and box AP of the Usiigaci models on the set's val split (the cache's models:
    they are not shipped)."""
    pairs = [(image, image.with_name(image.name.replace("_image", "_masks")))
             for image in sorted((PHASE / "val").glob("set*_image.tif"))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        gt_json = pairs_to_coco(pairs, Path(tmp) / "val.json")
        for supervision in ("mask", "box"):
            model = model_of(PHASE.name, supervision, variants.get(supervision) or "mask")
            results, _, seconds, painted = detect_all(CellBoxifySegmenter(model), gt_json,
                                                      PHASE / "val")
            rows.append({**describe(model, supervision), "truth": "GT", "frames": len(pairs),
                         "ctc": None, "seconds": seconds,
                         "size": tifffile.imread(pairs[0][1]).shape,
                         "painted": painted,
                         **{kind: coco_ap(gt_json, results, kind) for kind in ("segm", "bbox")}})
    return rows


def _value(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or not b else f"{a / b:.3f}"


KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=DATASETS, action="append")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--box-variant", help="a box-only model of .cache/cellboxify")
    parser.add_argument("--mask-variant", help="a full-mask model of .cache/cellboxify")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = {"box": args.box_variant, "mask": args.mask_variant}
    results = {name: evaluate(name, variants) for name in args.only or DATASETS}
    print("Masks:\n")
    print("| sequence | training | AP | AP50 | AP75 | APs | APm | APl | SEG | DET | TRA "
          "| training time | s/frame |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, (full, box) in results.items():
        for row in (full, box):
            ctc = row["ctc"] or dict.fromkeys(("SEG", "DET", "TRA"))
            print(f"| {name} ({row['frames']} frames, vs {row['truth']}) | {row['supervision']} "
                  + "".join(f"| {_value(row['segm'][k])} " for k in KEYS)
                  + "".join(f"| {_value(ctc[k])} " for k in ("SEG", "DET", "TRA"))
                  + f"| {row['steps']} steps, {row['minutes']:.0f} min "
                  f"| {row['seconds']:.2f} ({row['size'][0]} x {row['size'][1]}) |")
        print(f"| {name} | **box / mask** "
              + "".join(f"| {_ratio(box['segm'][k], full['segm'][k])} " for k in KEYS)
              + f"| {_ratio(*(row['ctc'] and row['ctc']['SEG'] for row in (box, full)))} "
              "| | | | |")
    _ap_table("Boxes", "bbox", results)
    _ap_table("Masks as label images paint them (every detection, duplicates dropped, a "
              "contested pixel to the surer mask)", "painted", results)


def _ap_table(title: str, key: str, results: dict[str, list[dict[str, object]]]) -> None:
    """Print the AP table of one kind of score (``key`` of each row), with the ratio rows."""
    print(f"\n{title}:\n")
    print("| sequence | training | AP | AP50 | AP75 | APs | APm | APl |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (full, box) in results.items():
        for row in (full, box):
            print(f"| {name} | {row['supervision']} "
                  + "".join(f"| {_value(row[key][k])} " for k in KEYS) + "|")
        print(f"| {name} | **box / mask** "
              + "".join(f"| {_ratio(box[key][k], full[key][k])} " for k in KEYS) + "|")


if __name__ == "__main__":
    main()
