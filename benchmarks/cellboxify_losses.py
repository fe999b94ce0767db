"""Does CellBoxify's box-only loss see cell shapes? Its pairwise terms on the reference masks
against the ellipses inscribed in the cells' boxes, and the AP such ellipses would score.

Box-only training can only teach a shape that its losses score lower than what a box alone
suggests. For every cell of every ``--every``-th training frame (the first 90% of sequence
``01``, the frames the shipped models trained on), on the grid a polygon is trained on (the
cell's box with ``POLYGON_MARGIN`` grid pixels of context), this sums the local and global
pairwise terms of the reference mask, of the ellipse inscribed in the box and of the filled box,
for each guide image. The unary term is left out: all three span the box. Then the shipped
box-only model's detections on the evaluation frames (the last 10%) are scored as in
``benchmarks/cellboxify.py`` and again with each mask replaced by its box's ellipse.

    python benchmarks/cellboxify_losses.py [--every 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from cellboxify import detect_all
from common import SHARED

from celltrail.core.sequence import open_sequence
from celltrail.io.coco import ctc_to_coco, read_coco
from celltrail.methods.cellboxify import SHIPPED, CellBoxifySegmenter
from celltrail.metrics.coco import coco_ap
from celltrail.models.cellboxify import MASK_SIZE, Detections, prepare
from celltrail.models.ops import roi_align
from celltrail.training.cellboxify.loop import (
    POLYGON_MARGIN,
    guide_image,
    in_frame,
    polygon_frames,
)
from celltrail.training.cellboxify.losses import GUIDES, box_mask_terms, box_region
from celltrail.training.embedtrack.data import split_index

#: The reference masks the shipped models were trained and scored on (as
#: ``benchmarks/cellboxify.py`` finds them: the GT where it segments the frames, else the
#: silver truth).
REFERENCE = {"Fluo-N2DH-SIM+": "gt", "DIC-C2DH-HeLa": "st"}
SHAPES = ("reference", "ellipse", "box")


def ellipses(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(N, size, size) 1 inside the ellipse inscribed in each box (grid coordinates)."""
    centres = torch.arange(size, dtype=boxes.dtype) + 0.5
    middle, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2
    x = (centres[None, None, :] - middle[:, 0, None, None]) / half[:, 0, None, None]
    y = (centres[None, :, None] - middle[:, 1, None, None]) / half[:, 1, None, None]
    return (x**2 + y**2 <= 1).to(boxes.dtype)


def pairwise(name: str, every: int) -> dict[str, dict[str, np.ndarray]]:
    """Per guide and shape, the local + global pairwise terms of every cell (N,)."""
    seq = SHARED / name / "01"
    n = len(open_sequence(seq))
    size = MASK_SIZE + 2 * POLYGON_MARGIN
    scores: dict[str, dict[str, list]] = {g: {s: [] for s in SHAPES} for g in GUIDES}
    with tempfile.TemporaryDirectory() as tmp:
        coco = ctc_to_coco(seq, Path(tmp) / "train.json", REFERENCE[name],
                           range(0, split_index(n), every))
        for entry in read_coco(coco, seq):
            gt = torch.from_numpy(entry.boxes)
            if not len(gt):
                continue
            image = torch.from_numpy(prepare(entry.load()))[None, None]
            frames = polygon_frames(gt)
            boxes = in_frame(gt, frames, size)
            masks = torch.from_numpy(entry.masks).float()[:, None]
            reference = roi_align(masks, frames, torch.arange(len(gt)), size)[:, 0] >= 0.5
            shapes = {"reference": reference.float(), "ellipse": ellipses(boxes, size),
                      "box": box_region(boxes, size)}
            for guide in GUIDES:
                crops = roi_align(guide_image(image, gt, guide), frames,
                                  torch.zeros(len(gt), dtype=torch.long), size)[:, 0]
                for shape, m in shapes.items():
                    terms = box_mask_terms(m, crops, boxes)
                    scores[guide][shape].append((terms["local"] + terms["global"]).numpy())
    return {g: {s: np.concatenate(v) for s, v in by.items()} for g, by in scores.items()}


class EllipseSegmenter(CellBoxifySegmenter):
    """The model's detections with each mask replaced by the ellipse inscribed in its box."""

    def detect(self, image: np.ndarray, min_score: float = 0.05) -> Detections:
        found = super().detect(image, min_score)
        grid = torch.tensor([[0.0, 0.0, MASK_SIZE, MASK_SIZE]]).expand(len(found.boxes), 4)
        return Detections(found.boxes, found.scores, ellipses(grid, MASK_SIZE))


def ellipse_ap(name: str) -> dict[str, dict[str, float | None]]:
    """Mask AP of the shipped box-only model's detections, as they are and as ellipses."""
    seq = SHARED / name / "01"
    n = len(open_sequence(seq))
    model = SHIPPED.path(f"{name}_box")
    with tempfile.TemporaryDirectory() as tmp:
        gt_json = ctc_to_coco(seq, Path(tmp) / "eval.json", REFERENCE[name],
                              range(split_index(n), n))
        return {label: coco_ap(gt_json, detect_all(segmenter, gt_json, seq)[0], "segm")
                for label, segmenter in (("model's masks", CellBoxifySegmenter(model)),
                                         ("inscribed ellipses", EllipseSegmenter(model)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=8, help="every this many training frames")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("Pairwise terms (local + global; lower is preferred), mean over cells:\n")
    print("| sequence | guide | cells | reference | ellipse | box "
          "| reference below its ellipse |")
    print("|---|---|---|---|---|---|---|")
    for name in REFERENCE:
        for guide, by in pairwise(name, args.every).items():
            print(f"| {name} | {guide} | {len(by['reference'])} "
                  + "".join(f"| {by[s].mean():.3f} " for s in SHAPES)
                  + f"| {np.mean(by['reference'] < by['ellipse']):.0%} |", flush=True)
    print("\nShipped box-only model, mask AP on the evaluation frames:\n")
    print("| sequence | masks | AP | AP50 | AP75 |")
    print("|---|---|---|---|---|")
    for name in REFERENCE:
        for label, ap in ellipse_ap(name).items():
            print(f"| {name} | {label} | " + " | ".join(f"{ap[k]:.3f}" for k in
                                                         ("AP", "AP50", "AP75")) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
