"""Segmenting frames with a CellBoxify model: detections in, label images and instance masks
out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_util
from skimage.segmentation import relabel_sequential

from celltrail.core.errors import InputError
from celltrail.methods.cellboxify.options import CellBoxifyOptions
from celltrail.methods.shared_options import DEFAULT_DEVICE
from celltrail.models.cellboxify import (
    MASK_SIZE,
    TEST_SIDE,
    Detections,
    load_checkpoint,
    network_from,
    prepare,
)
from celltrail.models.device import resolve_device
from celltrail.models.zoo import model_path

#: Detections at least this confident become cells in label images (CellBoxify's option).
MIN_SCORE: float = CellBoxifyOptions.min_score
#: A cell that keeps less than this share of its mask after better cells took theirs is dropped.
MIN_KEPT = 0.5


class CellBoxifySegmenter:
    """``CellBoxifySegmenter(model)(frame)`` is the frame's int32 label image. The network
    runs on ``device`` (a name, :func:`~celltrail.models.device.resolve_device`); what it
    returns is on the CPU."""

    def __init__(self, model: str | Path, min_score: float = MIN_SCORE,
                 device: str = DEFAULT_DEVICE) -> None:
        self.device = resolve_device(device)
        self.net = network_from(load_checkpoint(model_path("cellboxify", model))).to(self.device)
        self.min_score = min_score

    def detect(self, image: np.ndarray, min_score: float = 0.05) -> Detections:
        """Cells of a 2D image scored at least ``min_score``, boxes in its pixels; the network
        sees it at a short side of :data:`TEST_SIDE` pixels."""
        x, factor = _network_input(image, self.device)
        found = self.net.detect(x, min_score)
        return Detections(found.boxes.cpu() * factor, found.scores.cpu(), found.masks.cpu())

    @torch.no_grad()
    def segment_boxes(self, image: np.ndarray, boxes: np.ndarray) -> Detections:
        """The mask head's masks of given cells' boxes (N, 4) (x0, y0, x1, y1 in the image's
        pixels), scored 1: masks from boxes a user drew, and the masks alone scored apart from
        the detector."""
        x, factor = _network_input(image, self.device)
        given = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
        height, width = image.shape
        for k, (x0, y0, x1, y1) in enumerate(given.tolist()):  # worded as read_boxes words it
            what = f"box {k} (x0={x0:g} y0={y0:g} x1={x1:g} y1={y1:g})"
            if x1 <= x0 or y1 <= y0:
                raise InputError(None, f"{what} has no area")
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                raise InputError(None, f"{what} lies outside the {width}x{height} image")
        masks = torch.sigmoid(self.net.mask_head(self.net.pyramid(x),
                                                 (given / factor).to(self.device))).cpu() \
            if len(given) else torch.zeros((0, MASK_SIZE, MASK_SIZE))
        return Detections(given, torch.ones(len(given)), masks)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        # the mask head runs only on the cells that will be painted
        return paint(self.detect(image, self.min_score), image.shape, self.min_score)


def _network_input(image: np.ndarray, device: torch.device | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2D image prepared and resized to a short side of :data:`TEST_SIDE` (1, 1, h, w) on
    ``device``, and the factors (4,) that take boxes on it back to the image's pixels."""
    if image.ndim != 2:
        raise InputError(None, f"CellBoxify segments 2D frames, not shape {image.shape}")
    scale = TEST_SIDE / min(image.shape)
    x = torch.from_numpy(prepare(image))[None, None].to(device)
    size = (round(image.shape[0] * scale), round(image.shape[1] * scale))
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x, torch.tensor([image.shape[1] / size[1], image.shape[0] / size[0]] * 2)


def _paste(mask: torch.Tensor, box: torch.Tensor, shape: tuple[int, int]
           ) -> tuple[tuple[slice, slice], np.ndarray]:
    """A box's mask probabilities resampled onto the image pixels it covers: (window, values)."""
    x0, y0, x1, y1 = box.tolist()
    rows = slice(max(0, int(np.floor(y0))), min(shape[0], int(np.ceil(y1))))
    cols = slice(max(0, int(np.floor(x0))), min(shape[1], int(np.ceil(x1))))
    ys = (torch.arange(rows.start, rows.stop) + 0.5 - y0) / max(y1 - y0, 1e-6) * 2 - 1
    xs = (torch.arange(cols.start, cols.stop) + 0.5 - x0) / max(x1 - x0, 1e-6) * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None].float()
    values = F.grid_sample(mask[None, None].float(), grid, mode="bilinear",
                           padding_mode="border", align_corners=False)
    return (rows, cols), values[0, 0].numpy()


def instance_masks(found: Detections, shape: tuple[int, int]
                   ) -> Iterator[tuple[float, np.ndarray]]:
    """Each detection's score and binary mask (probability ≥ 0.5) on the whole image."""
    for box, score, mask in zip(found.boxes, found.scores, found.masks, strict=True):
        window, values = _paste(mask, box, shape)
        full = np.zeros(shape, dtype=bool)
        full[window] = values >= 0.5
        yield float(score), full


def coco_results(found: Detections, image_id: int, shape: tuple[int, int]) -> list[dict]:
    """The detections of one image as COCO result dicts (score, box, mask as RLE), every one
    whatever its score, as COCO's AP ranks them."""
    results = []
    for (score, mask), box in zip(instance_masks(found, shape), found.boxes, strict=True):
        rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode()
        x0, y0, x1, y1 = box.tolist()
        results.append({"image_id": image_id, "category_id": 1, "score": score,
                        "segmentation": rle, "bbox": [x0, y0, x1 - x0, y1 - y0]})
    return results


def paint(found: Detections, shape: tuple[int, int], min_score: float = MIN_SCORE
          ) -> np.ndarray:
    """A label image of the detections scored at least ``min_score`` (:func:`paint_scored`)."""
    return paint_scored(found, shape, min_score)[0]


def paint_scored(found: Detections, shape: tuple[int, int], min_score: float = MIN_SCORE
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A label image of the detections scored at least ``min_score``, and each label's score
    (label ``k``'s at index ``k - 1``). Taken by score, a cell left with less than
    :data:`MIN_KEPT` of its mask by better cells is dropped (a duplicate); among the cells kept,
    a contested pixel goes to the mask surest of it, so that touching cells part where their
    masks do rather than where the better-scored one ends."""
    taken = np.zeros(shape, dtype=bool)
    kept, scores = [], []
    for box, score, mask in zip(found.boxes, found.scores, found.masks, strict=True):
        if score < min_score:
            continue
        window, values = _paste(mask, box, shape)
        mine = values >= 0.5
        if mine.any() and (mine & ~taken[window]).sum() >= MIN_KEPT * mine.sum():
            taken[window] |= mine
            kept.append((window, values))
            scores.append(float(score))
    labels = _claim(kept, shape)
    # a cell whose every pixel went to surer masks leaves no label
    present = np.unique(labels[labels > 0])
    return relabel_sequential(labels)[0], np.array(scores, dtype=np.float32)[present - 1]


def box_labels(found: Detections, shape: tuple[int, int]) -> np.ndarray:
    """A label image of every detection, label ``k + 1`` for detection ``k``: a contested pixel
    goes to the mask surest of it, as :func:`paint_scored` parts touching cells, but nothing is
    dropped, so a label can be missing where its mask lost every pixel. With the masks drawn in
    a training set's boxes by a box-only model, these are self-training's pseudo masks."""
    return _claim([_paste(mask, box, shape) for box, mask in
                   zip(found.boxes, found.masks, strict=True)], shape)


def _claim(pasted: list[tuple[tuple[slice, slice], np.ndarray]], shape: tuple[int, int]
           ) -> np.ndarray:
    """The int32 label image of pasted masks (window, probabilities), label ``k + 1`` where
    mask ``k`` holds a pixel (probability ≥ 0.5) and is the surest of it."""
    labels = np.zeros(shape, dtype=np.int32)
    surest = np.zeros(shape, dtype=np.float32)
    for label, (window, values) in enumerate(pasted, start=1):
        surer = (values >= 0.5) & (values > surest[window])
        labels[window][surer] = label
        surest[window][surer] = values[surer]
    return labels
