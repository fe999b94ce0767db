"""Does CellBoxify's box-only loss see cell shapes? Its pairwise terms on the reference masks
against the ellipses inscribed in the cells' boxes, and the AP such ellipses would score.

Box-only training can only teach a shape that its losses score lower than what a box alone
suggests. For every cell of every ``--every``-th training frame (the first 90% of sequence
``01``, the frames the shipped models trained on), on the grid a polygon is trained on (the
cell's box with ``POLYGON_MARGIN`` grid pixels of context), this sums the local and global
pairwise terms of the reference mask, of the ellipse inscribed in the box and of the filled box,
for each guide image. The unary term is left out: all three span the box. Then the shipped
box-only model's detections on the evaluation frames (the last 10%) are scored as in
``benchmarks/cellboxify.py`` and again with each mask replaced by its box's ellipse. Last, both
shipped models' mask heads draw the masks in the reference cells' own boxes, which scores the
shapes apart from the detector, next to what the boxes give with the reference's foreground.

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
from celltrail.methods.cellboxify import CellBoxifySegmenter, instance_masks
from celltrail.metrics.coco import coco_ap
from celltrail.models.cellboxify import MASK_SIZE, Detections, prepare
from celltrail.models.ops import roi_align
from celltrail.models.zoo import model_path
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
#: COCO's IoU thresholds.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def ellipses(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(N, size, size) 1 inside the ellipse inscribed in each box (grid coordinates)."""
    depth = ellipse_depth(boxes.double().numpy(), (size, size))
    return torch.from_numpy(depth <= 1).to(boxes.dtype)


def ellipse_depth(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, H, W) each pixel's distance from each box's centre in units of the inscribed
    ellipse's radius in that direction (1 on the ellipse), infinite outside the (closed) box."""
    y, x = np.mgrid[: shape[0], : shape[1]] + 0.5
    depth = np.full((len(boxes), *shape), np.inf)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        dx, dy = (x - (x0 + x1) / 2) / ((x1 - x0) / 2), (y - (y0 + y1) / 2) / ((y1 - y0) / 2)
        depth[k][inside] = np.hypot(dx, dy)[inside]
    return depth


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


def with_ellipses(found: Detections) -> Detections:
    """The detections with each mask replaced by the ellipse inscribed in its box."""
    grid = torch.tensor([[0.0, 0.0, MASK_SIZE, MASK_SIZE]]).expand(len(found.boxes), 4)
    return Detections(found.boxes, found.scores, ellipses(grid, MASK_SIZE))


class EllipseSegmenter(CellBoxifySegmenter):
    """The model's detections with ellipses for masks (:func:`with_ellipses`)."""

    def detect(self, image: np.ndarray, min_score: float = 0.05) -> Detections:
        return with_ellipses(super().detect(image, min_score))


def evaluation_truth(name: str, folder: Path) -> tuple[Path, Path]:
    """The sequence and the COCO file of its evaluation frames (the last 10%), in ``folder``."""
    seq = SHARED / name / "01"
    n = len(open_sequence(seq))
    return seq, ctc_to_coco(seq, folder / "eval.json", REFERENCE[name], range(split_index(n), n))


def ellipse_ap(name: str) -> dict[str, dict[str, float | None]]:
    """Mask AP of the shipped box-only model's detections, as they are and as ellipses."""
    model = model_path("cellboxify", f"{name}_box")
    with tempfile.TemporaryDirectory() as tmp:
        seq, gt_json = evaluation_truth(name, Path(tmp))
        return {label: coco_ap(gt_json, detect_all(segmenter, gt_json, seq)[0], "segm")
                for label, segmenter in (("model's masks", CellBoxifySegmenter(model)),
                                         ("inscribed ellipses", EllipseSegmenter(model)))}


def true_box_recall(name: str) -> dict[str, np.ndarray]:
    """Each reference cell's IoU (N,) with the mask drawn in its own box, on the evaluation
    frames: by both shipped models' mask heads, and as the inscribed ellipse. With the
    detector out of the way (one mask per cell, no scores to rank), this scores the shapes
    alone. Two rows at full resolution follow, from the boxes and the reference alone: the
    ellipses made exclusive (a pixel in several boxes goes to the one it lies deepest in), and
    the reference's foreground split the same way among the boxes: what a perfect foreground
    would give without any shape."""
    models = {f"{label} model": CellBoxifySegmenter(model_path("cellboxify", f"{name}_{s}"))
              for label, s in (("full-mask", "mask"), ("box-only", "box"))}
    ious: dict[str, list[float]] = {label: [] for label in (*models, "inscribed ellipses")}
    with tempfile.TemporaryDirectory() as tmp:
        seq, gt_json = evaluation_truth(name, Path(tmp))
        for entry in read_coco(gt_json, seq):
            image, truth = entry.load(), entry.masks
            for label, model in models.items():
                found = model.segment_boxes(image, entry.boxes)
                ious[label] += _own_ious(found, truth)
            # the last model's detections are the given boxes, as every model's are
            ious["inscribed ellipses"] += _own_ious(with_ellipses(found), truth)
            depth = ellipse_depth(entry.boxes, truth.shape[1:])
            nearest = depth.argmin(0) == np.arange(len(depth))[:, None, None]
            foreground = truth.any(0)
            for label, masks in (("ellipses made exclusive", nearest & (depth <= 1)),
                                 ("reference foreground split by ellipse depth",
                                  nearest & np.isfinite(depth) & foreground)):
                ious.setdefault(label, []).extend(
                    float((m & c).sum() / (m | c).sum()) for m, c in zip(masks, truth, strict=True))
    return {label: np.array(v) for label, v in ious.items()}


def _own_ious(found: Detections, truth: np.ndarray) -> list[float]:
    """IoU of each detection's mask with the reference mask (N, H, W) of the same index."""
    masks = instance_masks(found, truth.shape[1:])
    return [float((mask & cell).sum() / (mask | cell).sum())
            for (_, mask), cell in zip(masks, truth, strict=True)]


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
            print(_ap_row(name, label, ap), flush=True)
    print("\nMasks drawn in the reference cells' own boxes, on the evaluation frames "
          "(AR: the share of cells with IoU ≥ t, averaged over t = 0.50:0.05:0.95):\n")
    print("| sequence | masks | cells | mean IoU | IoU ≥ 0.5 | IoU ≥ 0.75 | AR |")
    print("|---|---|---|---|---|---|---|")
    for name in REFERENCE:
        for label, iou in true_box_recall(name).items():
            print(f"| {name} | {label} | {len(iou)} | {iou.mean():.3f} | "
                  f"{np.mean(iou >= 0.5):.3f} | {np.mean(iou >= 0.75):.3f} | "
                  f"{np.mean([np.mean(iou >= t) for t in IOU_THRESHOLDS]):.3f} |", flush=True)


def _ap_row(name: str, label: str, ap: dict[str, float | None]) -> str:
    return f"| {name} | {label} | " + " | ".join(f"{ap[k]:.3f}" for k in
                                                 ("AP", "AP50", "AP75")) + " |"


if __name__ == "__main__":
    main()
