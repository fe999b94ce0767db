"""Training BoxTrack's promptable segmenter on CTC-layout sequences (real or simulated).

Each step draws crops of frames rescaled to the canonical cell size, prompts the network with the
boxes of the cells in them, jittered as a Kalman prediction would be, and with each cell's mask
in the previous frame (or a jittered copy of its current mask where the previous frame has no
mask, or none, as on a first frame). Background boxes teach the objectness head. Losses: the
best of the K candidates against the cell's mask (BCE + Dice, as SAM trains its multimask
output), the predicted IoU of every candidate, objectness, and the foreground head.

Box-only training (``supervision="box"``) sees no mask shape: the candidates learn from their
cell's box with CellBoxify's unary and pairwise terms, read on the CLAHE image and with the
pairwise terms brought in over the first steps as CellBoxify trains, the previous-mask inputs are
the ellipses in the boxes, and the foreground head learns the boxes' interiors.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from skimage.transform import rescale

from celltrail.core.sequence import normalise, open_sequence, read_tiff
from celltrail.io.ctc import masked_cells, training_truth
from celltrail.linking.objects import equivalent_diameters
from celltrail.models.cellboxify import prepare
from celltrail.models.ops import box_iou, roi_align
from celltrail.models.prompt_segmenter import (
    CANONICAL_DIAMETER,
    K,
    NetConfig,
    PromptSegNet,
    crop_boxes,
)
from celltrail.training.cellboxify.losses import box_mask_terms, mask_box, pairwise_warmup
from celltrail.training.crops import crop_corner
from celltrail.training.steps import resume_run, run_steps


@dataclass
class TrainSequence:
    """Frames with instance masks at the canonical scale; labels keep identities over time."""

    name: str
    images: dict[int, np.ndarray]
    labels: dict[int, np.ndarray]
    #: Cells that are there (never taken for background) but never prompted: held out to score
    #: the model on cells it did not learn from.
    hidden: frozenset[int] = frozenset()
    #: Frames whose masks cover only some of their cells (a TRA marker without a mask): the
    #: others' extent is unknown, so these frames teach no background.
    partial: frozenset[int] = frozenset()


#: Steps between checkpoints.
CHECKPOINT_EVERY = 250


@dataclass(frozen=True)
class TrainParams:
    """Optimisation settings."""

    steps: int = 3000
    batch: int = 4
    crop: int = 128
    prompts: int = 8
    lr: float = 2e-3
    seed: int = 0
    #: "mask" learns from the cells' masks; "box" from their boxes alone, with CellBoxify's
    #: box-only losses (see the module's docstring).
    supervision: str = "mask"


#: Fine-tuning a trained model on a few annotated frames: steps and peak rate (a tenth of the
#: rate models are trained from scratch with, as for BoxTrack's adaptation).
FINE_TUNE_STEPS, FINE_TUNE_LR = 300, TrainParams.lr / 10


def load_sequence(seq_dir: str | Path, frames: Sequence[int] | None = None) -> TrainSequence:
    """Frames of a CTC sequence ``NN`` with a mask (``NN_GT/SEG``, else ``NN_ST/SEG``), labelled
    with their TRA identities and rescaled so the median cell is the canonical size; only those
    in ``frames`` when given."""
    seq_dir = Path(seq_dir)
    truth, files = training_truth(seq_dir)
    if frames is not None:
        files = {t: files[t] for t in frames}
    images = open_sequence(seq_dir)
    labels, partial = {}, set()
    for t, path in files.items():
        labels[t], bare = masked_cells(read_tiff(path), np.asarray(truth.masks[t]))
        if bare.any():
            partial.add(t)
    areas = np.concatenate([np.bincount(m.ravel())[1:] for m in labels.values()])
    diameter = float(np.median(equivalent_diameters(areas[areas > 0])))
    scale = CANONICAL_DIAMETER / diameter
    small_images, small_labels = {}, {}
    for t, mask in labels.items():
        small_images[t] = rescale(normalise(images[t]), scale, anti_aliasing=True,
                                  preserve_range=True).astype(np.float32)
        small_labels[t] = rescale(mask, scale, order=0, anti_aliasing=False,
                                  preserve_range=True).astype(np.int32)
    return TrainSequence(seq_dir.parent.name + "/" + seq_dir.name, small_images, small_labels,
                         partial=frozenset(partial))


class _Sampler:
    """Random training crops with prompts, targets and previous masks."""

    def __init__(self, sequences: Sequence[TrainSequence], params: TrainParams,
                 rng: np.random.Generator) -> None:
        self.sequences, self.p, self.rng = sequences, params, rng
        self._guides: dict[tuple[int, int], np.ndarray] = {}

    def _view(self, array: np.ndarray, place: tuple[int, int, int, int, bool], order: int
              ) -> np.ndarray:
        """The ``size`` square of ``array`` at ``(top, left)`` (zero-padded beyond its edges),
        turned ``k`` quarter turns and flipped as ``place = (top, left, size, k, flip)`` says,
        then zoomed (spline ``order``) to the crop's side."""
        top, left, size, k, flip = place
        pad = [(max(0, -top), max(0, top + size - array.shape[0])),
               (max(0, -left), max(0, left + size - array.shape[1]))]
        window = _orient(np.pad(array[max(0, top):top + size, max(0, left):left + size], pad),
                         k, flip)
        return ndi.zoom(window, self.p.crop / size, order=order)[:self.p.crop, :self.p.crop]

    def sample(self) -> dict[str, torch.Tensor]:
        p, rng = self.p, self.rng
        images, fgs, boxes, index, prev, targets, positive = [], [], [], [], [], [], []
        teaches: list[bool] = []  # whether a crop's unlabelled pixels are background
        guides: list[np.ndarray] = []
        masks = p.supervision == "mask"
        for b in range(p.batch):
            seq = self.sequences[rng.integers(len(self.sequences))]
            t = int(rng.choice(list(seq.labels)))
            image, labels = seq.images[t], seq.labels[t]
            before = seq.labels.get(t - 1)
            size = int(p.crop * np.exp(rng.uniform(-0.2, 0.2)))  # scale jitter
            top, left = crop_corner(labels.shape, size, self.rng,
                                    labels > 0 if t in seq.partial else None)
            place = (top, left, size, int(rng.integers(4)), bool(rng.integers(2)))
            img, lab = self._view(image, place, 1), self._view(labels, place, 0)
            old = self._view(before, place, 0) if before is not None else None
            img = img * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
            img = img + rng.normal(0, rng.uniform(0, 0.05), img.shape)
            images.append(img.astype(np.float32))
            fgs.append(lab > 0 if masks else _box_interiors(lab))
            teaches.append(t not in seq.partial)
            if not masks:
                guides.append(self._view(self._guide(seq, t), place, 1))
            cells = [c for c in np.unique(lab) if c and c not in seq.hidden]
            rng.shuffle(cells)
            for cell in cells[:p.prompts]:
                mask = lab == cell
                box = _box_of(mask)
                boxes.append(_jitter(box, rng))
                index.append(b)
                targets.append(mask)
                positive.append(True)
                prev.append(_previous(mask, None if old is None else old == cell, rng, masks))
            for _ in range(2 * teaches[-1]):  # background prompts: nothing to segment there
                side = CANONICAL_DIAMETER * np.exp(rng.normal(0, 0.2))
                x, y = rng.uniform(0, p.crop - side, size=2)
                box = np.array([x, y, x + side, y + side])
                window = lab[int(y):int(y + side), int(x):int(x + side)]
                if window.size and (window > 0).mean() < 0.05:
                    boxes.append(box)
                    index.append(b)
                    targets.append(np.zeros_like(lab, dtype=bool))
                    positive.append(False)
                    # a cell that was there and is gone, or a prompt on empty background
                    prev.append(_ellipse(lab.shape, box) if rng.random() < 0.6
                                else np.full(lab.shape, -1.0))
        batch = {
            "image": torch.from_numpy(np.stack(images))[:, None],
            "foreground": torch.from_numpy(np.stack(fgs)).float()[:, None],
            "boxes": torch.tensor(np.array(boxes), dtype=torch.float32),
            "index": torch.tensor(index, dtype=torch.long),
            "previous": torch.from_numpy(np.stack(prev)).float()[:, None],
            "target": torch.from_numpy(np.stack(targets)).float()[:, None],
            "positive": torch.tensor(positive),
            "background": torch.tensor(teaches, dtype=torch.float32),
        }
        if guides:
            batch["guide"] = torch.from_numpy(np.stack(guides)).float()[:, None]
        return batch

    def _guide(self, seq: TrainSequence, t: int) -> np.ndarray:
        """The box-only losses' image of a frame: CLAHE, as CellBoxify's (computed once)."""
        key = (id(seq), t)
        if key not in self._guides:
            self._guides[key] = prepare(seq.images[t])
        return self._guides[key]


def _box_interiors(labels: np.ndarray) -> np.ndarray:
    """Where some cell's bounding box lies: the foreground that box annotation gives."""
    inside = np.zeros(labels.shape, dtype=bool)
    for box in ndi.find_objects(labels):
        if box is not None:
            inside[box] = True
    return inside


def _box_of(mask: np.ndarray) -> np.ndarray:
    """The box ``(x0, y0, x1, y1)`` of a non-empty mask, in pixels."""
    rows, cols = np.nonzero(mask)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], float)


def _orient(array: np.ndarray, k: int, flip: bool) -> np.ndarray:
    array = np.rot90(array, k)
    return np.ascontiguousarray(array[:, ::-1] if flip else array)


def _jitter(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A box moved and resized as a Kalman prediction might be (s.d. 15% of its size in
    position, 20% in size), so the network learns to segment the whole cell, not the box."""
    centre, size = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
    centre = centre + rng.normal(0, 0.15, 2) * size
    size = size * np.exp(rng.normal(0, 0.2, 2))
    return np.concatenate([centre - size / 2, centre + size / 2])


def _ellipse(shape: tuple[int, int], box: np.ndarray) -> np.ndarray:
    """The ellipse inscribed in ``box``, as a 0/1 image."""
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    centre, half = (box[:2] + box[2:]) / 2, np.maximum((box[2:] - box[:2]) / 2, 1)
    inside = ((xx - centre[0]) / half[0]) ** 2 + ((yy - centre[1]) / half[1]) ** 2 <= 1
    return inside.astype(np.float64)


def _previous(mask: np.ndarray, before: np.ndarray | None, rng: np.random.Generator,
              masks: bool = True) -> np.ndarray:
    """A prompt's previous-mask input: none (as on a first frame), the cell's mask ``before``
    (in the frame before), or a jittered copy of its ``mask``. Without ``masks`` (box-only
    training) the ellipses in those masks' boxes, so that no input carries a mask's shape."""
    draw = rng.random()
    if draw < 0.25:
        return np.full(mask.shape, -1.0)
    if before is not None and before.any() and draw < 0.8:
        return before.astype(np.float64) if masks else _ellipse(mask.shape, _box_of(before))
    return _jitter_mask(mask, rng) if masks else _ellipse(mask.shape, _jitter(_box_of(mask), rng))


def _jitter_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The mask shifted by a few pixels and grown or shrunk: a stand-in previous mask."""
    shift = rng.normal(0, 0.1 * CANONICAL_DIAMETER, 2)
    moved = ndi.shift(mask.astype(np.float64), shift, order=0) > 0.5
    grow = int(rng.integers(-2, 3))
    if grow > 0:
        moved = ndi.binary_dilation(moved, iterations=grow)
    elif grow < 0:
        moved = ndi.binary_erosion(moved, iterations=-grow)
    return moved.astype(np.float64)


def losses(net: PromptSegNet, batch: dict[str, torch.Tensor], supervision: str = "mask",
           warmup: float = 1.0) -> dict[str, torch.Tensor]:
    """The training losses of one batch (their sum is ``"total"``). With ``supervision="box"``
    each candidate mask learns only from its cell's box (CellBoxify's unary and pairwise terms),
    and the predicted IoU is that of the mask's box with the cell's."""
    s = net.config.mask_size
    features = net.encode(batch["image"])
    crops = crop_boxes(batch["boxes"])
    index = torch.arange(len(crops), device=crops.device)
    previous = roi_align(batch["previous"], crops, index, s)
    out = net.decode(features, batch["image"], batch["boxes"], crops, batch["index"], previous)
    target = (roi_align(batch["target"], crops, index, s) > 0.5).float()
    pos = batch["positive"]
    result = {}
    fg_target = F.avg_pool2d(batch["foreground"], 4)
    weight = batch["background"][:, None, None, None].expand_as(fg_target)  # 0: partial masks
    result["foreground"] = F.binary_cross_entropy_with_logits(net.foreground(features), fg_target,
                                                              weight=weight)
    result["objectness"] = F.binary_cross_entropy_with_logits(out.objectness, pos.float())
    if pos.any() and supervision == "box":
        logits = out.masks[pos]
        boxes = mask_box(target[pos][:, 0]).repeat_interleave(K, dim=0)
        grey = roi_align(batch["guide"], crops[pos], batch["index"][pos], s)[:, 0]
        terms = box_mask_terms(torch.sigmoid(logits.flatten(0, 1)),
                               grey.repeat_interleave(K, dim=0), boxes, warmup=warmup)
        result["mask"] = terms["mask"].reshape(-1, K).min(dim=1).values.mean()
        with torch.no_grad():
            hard = mask_box((logits.flatten(0, 1) > 0).float())
            iou = box_iou(hard, boxes).diagonal().reshape(-1, K)
        result["quality"] = F.mse_loss(out.quality[pos], iou)
    elif pos.any():
        logits, tgt = out.masks[pos], target[pos].expand(-1, K, -1, -1)
        bce = F.binary_cross_entropy_with_logits(logits, tgt, reduction="none").mean(dim=(2, 3))
        prob = torch.sigmoid(logits)
        inter = (prob * tgt).sum(dim=(2, 3))
        dice = 1 - (2 * inter + 1) / (prob.sum(dim=(2, 3)) + tgt.sum(dim=(2, 3)) + 1)
        result["mask"] = (bce + dice).min(dim=1).values.mean()
        with torch.no_grad():
            hard = (logits > 0).float()
            i = (hard * tgt).sum(dim=(2, 3))
            iou = i / ((hard + tgt).clamp(max=1).sum(dim=(2, 3)) + 1e-6)
        result["quality"] = F.mse_loss(out.quality[pos], iou)
    result["total"] = sum(result.values())
    return result


def train(
    sequences: Sequence[TrainSequence],
    out: str | Path,
    params: TrainParams | None = None,
    resume: str | Path | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Path:
    """Train a :class:`PromptSegNet` and save it at ``out`` (checkpoints there as it goes).

    ``resume`` continues an interrupted run from its last checkpoint, or fine-tunes a finished
    model (such as a shipped one) for ``params.steps`` steps.
    """
    params = params or TrainParams()
    torch.manual_seed(params.seed)
    net = PromptSegNet(NetConfig())
    optimiser = torch.optim.AdamW(net.parameters(), lr=params.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, params.lr, total_steps=params.steps)
    run = resume_run(net, (optimiser, schedule), resume, "prompt-segmenter", "prompt_segmenter",
                     params.seed)
    sampler = _Sampler(sequences, params, np.random.default_rng(
        params.seed if run.start == 0 else [params.seed, run.start]))
    meta = {"kind": "prompt_segmenter", "trained_on": [s.name for s in sequences],
            "seed": params.seed, "steps": params.steps, "supervision": params.supervision}
    steps = itertools.count(run.start)

    def step_loss() -> torch.Tensor:
        warmup = pairwise_warmup(next(steps), params.steps)
        return losses(net, sampler.sample(), params.supervision, warmup)["total"]

    return run_steps(net, (optimiser, schedule), step_loss, params.steps, run, out, meta,
                     CHECKPOINT_EVERY, progress)
