"""CellBoxify's training images: COCO datasets read once (CLAHE applied), then drawn at a random
short side of 440–620 pixels with random horizontal flips (section 5 of the paper)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_util

from celltrail.core.errors import InputError
from celltrail.io.coco import read_coco
from celltrail.methods.cellboxify import CellBoxifySegmenter, box_labels
from celltrail.models.cellboxify import TRAIN_SIDES, load_checkpoint, prepare
from celltrail.models.zoo import model_path


@dataclass
class TrainImage:
    """One annotated image, prepared for the network at its own resolution."""

    name: str
    image: np.ndarray  #: (H, W) float32, CLAHE and standardised
    boxes: np.ndarray  #: (M, 4) float32 x0, y0, x1, y1
    rles: list[dict] | None  #: the cells' masks as COCO RLE, None for box-only annotation

    @property
    def masks(self) -> np.ndarray | None:
        """The cells' masks (M, H, W) bool, decoded anew: a dataset's masks would not all fit
        in memory."""
        if self.rles is None:
            return None
        return np.moveaxis(mask_util.decode(self.rles), -1, 0).astype(bool)


@dataclass
class Sample:
    """A training image at its drawn scale."""

    image: torch.Tensor  #: (1, 1, h, w)
    boxes: torch.Tensor  #: (M, 4) at the drawn scale
    masks: torch.Tensor | None  #: (M, 1, H, W) float at the original resolution
    scale: float  #: drawn size / original size


def training_images(json_path: str | Path, images_dir: str | Path, supervision: str,
                    teacher: CellBoxifySegmenter | None = None,
                    exclude: Collection[int] = ()) -> list[TrainImage]:
    """The annotated images of a COCO dataset; ``supervision="mask"`` needs its masks,
    ``"box"`` reads only the boxes (even where masks exist). With a ``teacher`` (box
    supervision only; see :func:`box_only_teacher`), each cell's mask is the teacher's mask in
    its box, made exclusive (:func:`~celltrail.methods.cellboxify.box_labels`): self-training,
    still from the boxes alone. Images whose id is in ``exclude`` are left out (held out)."""
    entries = [e for e in read_coco(json_path, images_dir) if e.image_id not in exclude]
    if supervision == "mask" and any(e.rles is None for e in entries):
        raise InputError(json_path, "--supervision mask needs a segmentation for every "
                                    "annotation; this dataset has boxes only")
    if teacher is not None and supervision != "box":
        raise InputError(None, "--teacher applies to --supervision box only")
    images = []
    for entry in entries:
        if len(entry.boxes) == 0:
            continue  # an image without cells teaches the box head little; skip it
        pixels = entry.load()
        rles = entry.rles if supervision == "mask" else None
        if teacher is not None:  # boxes may pass the image's edge by float rounding
            height, width = pixels.shape[:2]
            inside = np.clip(entry.boxes, 0, [width, height, width, height])
            rles = _label_rles(box_labels(teacher.segment_boxes(pixels, inside),
                                          (height, width)), len(entry.boxes))
        images.append(TrainImage(entry.path.name, prepare(pixels),
                                 entry.boxes.astype(np.float32), rles))
    if not images:
        raise InputError(json_path, "no annotated cells to train on")
    return images


def box_only_teacher(model: str | Path) -> CellBoxifySegmenter:
    """A CellBoxify model (a shipped name or a file) to draw self-training's masks, checked to
    have learnt from boxes alone, so that its student does too."""
    path = model_path("cellboxify", model)
    if load_checkpoint(path)["supervision"] != "box":
        raise InputError(path, "the teacher was trained with masks; self-training from boxes "
                               "needs a model trained with --supervision box")
    return CellBoxifySegmenter(path)


def _label_rles(labels: np.ndarray, count: int) -> list[dict]:
    """COCO RLEs of labels ``1 .. count`` of a label image, in order (empty where absent)."""
    rles = []
    for label in range(1, count + 1):
        rle = mask_util.encode(np.asfortranarray(labels == label, dtype=np.uint8))
        rle["counts"] = rle["counts"].decode("ascii")
        rles.append(rle)
    return rles


class Sampler:
    """Random images at a random training short side, flipped half of the time."""

    def __init__(self, images: list[TrainImage], rng: np.random.Generator) -> None:
        self.images, self.rng = images, rng

    def sample(self) -> Sample:
        item = self.images[int(self.rng.integers(len(self.images)))]
        height, width = item.image.shape
        scale = float(self.rng.choice(TRAIN_SIDES)) / min(height, width)
        size = (round(height * scale), round(width * scale))
        image = torch.from_numpy(item.image)[None, None]
        boxes = torch.from_numpy(item.boxes) * torch.tensor(
            [size[1] / width, size[0] / height] * 2)
        decoded = item.masks
        masks = None if decoded is None else torch.from_numpy(decoded)[:, None].float()
        if self.rng.random() < 0.5:
            image = image.flip(-1)
            boxes = torch.stack([size[1] - boxes[:, 2], boxes[:, 1], size[1] - boxes[:, 0],
                                 boxes[:, 3]], dim=1)
            masks = None if masks is None else masks.flip(-1)
        image = F.interpolate(image, size=size, mode="bilinear", antialias=True,
                              align_corners=False)
        return Sample(image, boxes, masks, scale)
