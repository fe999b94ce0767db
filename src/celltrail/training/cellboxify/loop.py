"""CellBoxify's training loop: Mask R-CNN's RPN and box-head losses plus a mask loss that learns
from full masks or, the point of the method, from boxes only; Adam, one image per step,
resumable."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from celltrail.models.cellboxify import (
    BOX_WEIGHTS,
    MASK_SIZE,
    RPN_WEIGHTS,
    CellBoxifyConfig,
    CellBoxifyNet,
    anchors,
    encode,
    load_checkpoint,
    polygon_box,
    rasterise,
    reframe,
    vertices,
)
from celltrail.models.ops import box_iou, roi_align
from celltrail.training.cellboxify.data import Sample, Sampler, TrainImage
from celltrail.training.cellboxify.losses import (
    GUIDES,
    JOINT_WEIGHTS,
    box_mask_loss,
    full_mask_loss,
    pairwise_warmup,
    texture,
)
from celltrail.training.steps import resume_run, run_steps

#: Checkpoint every this many steps.
CHECKPOINT_EVERY = 100
#: Anchors sampled per image for the RPN loss, at most half positive (Faster R-CNN).
RPN_BATCH = 256
#: RoIs sampled per image for the box head, at most a quarter positive (Mask R-CNN).
ROI_BATCH, ROI_POSITIVE = 512, 0.25
#: Positive RoIs per image that train the mask head (bounds the mask head's cost on a CPU).
MASK_ROIS = 64
#: Grid pixels of context on each side of a ground-truth box when a polygon's box-only losses
#: are computed (the box itself spans MASK_SIZE pixels).
POLYGON_MARGIN = 4


@dataclass(frozen=True)
class TrainParams:
    """Optimisation settings. The paper fine-tunes a pretrained ResNet-50 with Adam at 1e-4; our
    smaller network starts from scratch, so it warms up to a higher rate and anneals."""

    steps: int = 1600
    lr: float = 1e-3
    #: what the images were annotated with: "box" (the box-only losses, or the mask loss on a
    #: box-only teacher's masks) or "mask" (full masks)
    supervision: str = "box"
    loss_weights: tuple[float, float, float] = JOINT_WEIGHTS  #: α, β, γ of the joint loss
    guide: str = "intensity"  #: the pairwise terms' image: "intensity" or "texture" (DIC)
    #: box supervision: the box-only model whose masks the images carry (self-training), if any
    teacher: str = ""
    seed: int = 0


def _sample(labels: torch.Tensor, count: int, positive: float) -> tuple[torch.Tensor, ...]:
    """Random positives (label 1) up to ``positive · count``, negatives (label 0) for the rest."""
    pos = torch.nonzero(labels == 1).flatten()
    neg = torch.nonzero(labels == 0).flatten()
    pos = pos[torch.randperm(len(pos))[:int(count * positive)]]
    neg = neg[torch.randperm(len(neg))[:count - len(pos)]]
    return pos, neg


def _rpn_losses(net: CellBoxifyNet, levels: list[torch.Tensor], logits: list[torch.Tensor],
                deltas: list[torch.Tensor], gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Objectness and box regression of sampled anchors: positive at IoU ≥ 0.7 with a cell (or
    a cell's best anchor), negative below 0.3."""
    grid = torch.cat([anchors(level, p.shape[-2:]) for level, p in enumerate(levels)])
    logit, delta = torch.cat(logits), torch.cat(deltas)
    iou = box_iou(grid, gt)
    best, match = iou.max(dim=1)
    labels = torch.full_like(best, -1)
    labels[best < 0.3] = 0
    labels[best >= 0.7] = 1
    best_for_cell = iou.max(dim=0).values
    labels[((iou == best_for_cell[None]) & (best_for_cell[None] > 0)).any(dim=1)] = 1
    pos, neg = _sample(labels, RPN_BATCH, 0.5)
    chosen = torch.cat([pos, neg])
    target = encode(gt[match[pos]], grid[pos], RPN_WEIGHTS)
    return {"rpn_class": F.binary_cross_entropy_with_logits(logit[chosen], labels[chosen]),
            "rpn_box": F.smooth_l1_loss(delta[pos], target, beta=1 / 9, reduction="sum")
            / max(len(chosen), 1)}


def in_frame(boxes: torch.Tensor, frames: torch.Tensor, size: int = MASK_SIZE) -> torch.Tensor:
    """Image-pixel ``boxes`` in the coordinates of a ``size`` x ``size`` grid over ``frames``."""
    origin = frames[:, :2].repeat(1, 2)
    extent = (frames[:, 2:] - frames[:, :2]).repeat(1, 2)
    return (boxes - origin) / extent * size


def polygon_frames(gt: torch.Tensor) -> torch.Tensor:
    """The frames (N, 4) a polygon's box-only losses are computed on: the ground-truth boxes
    (image pixels) widened by :data:`POLYGON_MARGIN` grid pixels on each side."""
    margin = (gt[:, 2:] - gt[:, :2]) * POLYGON_MARGIN / MASK_SIZE
    return torch.cat([gt[:, :2] - margin, gt[:, 2:] + margin], dim=1)


def guide_image(image: torch.Tensor, gt: torch.Tensor, guide: str) -> torch.Tensor:
    """The pairwise terms' image of a (1, 1, H, W) image with cells ``gt``: the image itself, or
    its texture measured over about one grid pixel of a typical box."""
    if guide != "texture":
        return image
    sides = (gt[:, 2:] - gt[:, :2]).min(dim=1).values
    return texture(image, float(sides.median()) / MASK_SIZE)


def _box_only_losses(net: CellBoxifyNet, levels: list[torch.Tensor], image: torch.Tensor,
                     rois: torch.Tensor, gt: torch.Tensor, params: TrainParams, warmup: float
                     ) -> dict[str, torch.Tensor]:
    """The box-only shape loss of RoIs matched to ground-truth boxes ``gt`` (image pixels).

    A mask head's masks are scored on the RoI's grid. A polygon is rasterised onto a frame of
    the ground-truth box widened by :data:`POLYGON_MARGIN` on each side, so a polygon that fills
    its box pays for its whole outline in the local term, where a grid ending at the box would
    hide it; the unary term takes the box of its vertices."""
    if net.config.head == "polygon":
        size = MASK_SIZE + 2 * POLYGON_MARGIN
        frames = polygon_frames(gt)
        centres, radii = net.polygons(levels, rois)
        corners = reframe(vertices(centres, radii), rois, frames)
        masks = torch.sigmoid(rasterise(reframe(centres, rois, frames), corners, size))
        spans = polygon_box(corners, size)
    else:
        size, frames, spans = MASK_SIZE, rois, None
        masks = torch.sigmoid(net.mask_head(levels, rois))
    crops = roi_align(guide_image(image, gt, params.guide), frames,
                      torch.zeros(len(frames), dtype=torch.long), size)[:, 0]
    terms = box_mask_loss(masks, crops, in_frame(gt, frames, size), params.loss_weights, spans,
                          warmup)
    return {"mask": terms.pop("mask"), **{f"mask_{k}": v for k, v in terms.items()}}


def detector_losses(net: CellBoxifyNet, sample: Sample, params: TrainParams,
                    warmup: float = 1.0) -> dict[str, torch.Tensor]:
    """All losses of one image; their sum is ``"total"``. ``warmup`` (0–1) scales the box-only
    pairwise terms."""
    image, gt = sample.image, sample.boxes
    size = tuple(image.shape[-2:])
    levels = net.pyramid(image)
    logits, deltas = net.rpn(levels)
    result = _rpn_losses(net, levels, logits, deltas, gt)
    with torch.no_grad():
        rois = net.proposals(levels, [v.detach() for v in logits],
                             [v.detach() for v in deltas], size, 2000, 1000)
    rois = torch.cat([rois, gt])
    best, match = box_iou(rois, gt).max(dim=1)
    pos, neg = _sample((best >= 0.5).float(), ROI_BATCH, ROI_POSITIVE)
    chosen = torch.cat([pos, neg])
    logit, delta = net.box_head(levels, rois[chosen])
    labels = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
    result["box_class"] = F.binary_cross_entropy_with_logits(logit, labels)
    target = encode(gt[match[pos]], rois[pos], BOX_WEIGHTS)
    result["box"] = F.smooth_l1_loss(delta[:len(pos)], target, beta=0.0,
                                     reduction="sum") / len(chosen)
    masked = pos[torch.randperm(len(pos))[:MASK_ROIS]]
    boxes, cells = rois[masked], match[masked]
    if sample.masks is not None:  # full masks, or a box-only teacher's (self-training)
        targets = roi_align(sample.masks, boxes, cells, MASK_SIZE, stride=sample.scale)[:, 0]
        result.update(full_mask_loss(net.mask_head(levels, boxes), targets))
    else:
        result.update(_box_only_losses(net, levels, image, boxes, gt[cells], params, warmup))
    result["total"] = sum(v for k, v in result.items()
                          if k in ("rpn_class", "rpn_box", "box_class", "box", "mask"))
    return result


def train(
    images: Sequence[TrainImage],
    out: str | Path,
    params: TrainParams | None = None,
    resume: str | Path | None = None,
    progress: Callable[[int, float], None] | None = None,
    config: CellBoxifyConfig | None = None,
    trained_on: Sequence[str] = (),
) -> Path:
    """Train a :class:`CellBoxifyNet` and save it at ``out``, checkpointing as it goes.

    ``resume`` continues an interrupted run from its last checkpoint, or fine-tunes a finished
    model (such as a shipped one) for ``params.steps`` steps; either keeps its architecture
    (``config`` applies to new networks).
    """
    params = params or TrainParams()
    if params.supervision not in ("box", "mask"):
        raise ValueError(f"supervision must be 'box' or 'mask', not {params.supervision!r}")
    if params.supervision == "mask" and any(image.rles is None for image in images):
        raise ValueError("mask supervision needs every image's masks")
    if params.guide not in GUIDES:
        raise ValueError(f"guide must be one of {', '.join(GUIDES)}, not {params.guide!r}")
    torch.set_flush_denormal(True)
    torch.manual_seed(params.seed)
    if resume is not None:  # the architecture is the checkpoint's
        config = CellBoxifyConfig.from_dict(load_checkpoint(resume)["config"])
    net = CellBoxifyNet(config)
    optimiser = torch.optim.Adam(net.parameters(), lr=params.lr, betas=(0.9, 0.999))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, params.lr, total_steps=params.steps, pct_start=0.05,
        anneal_strategy="linear", cycle_momentum=False)
    run = resume_run(net, (optimiser, schedule), resume, "CellBoxify", "cellboxify",
                     params.seed)
    sampler = Sampler(list(images), np.random.default_rng([params.seed, run.start]))
    meta = {"kind": "cellboxify", "supervision": params.supervision,
            "trained_on": list(trained_on),
            "params": {"steps": params.steps, "lr": params.lr, "seed": params.seed,
                       "loss_weights": list(params.loss_weights), "guide": params.guide,
                       "teacher": params.teacher}}
    steps = itertools.count(run.start)

    def step_loss() -> torch.Tensor:
        warmup = pairwise_warmup(next(steps), params.steps)
        return detector_losses(net, sampler.sample(), params, warmup)["total"]

    return run_steps(net, (optimiser, schedule), step_loss, params.steps, run, out, meta,
                     CHECKPOINT_EVERY, progress, clip=10.0)
