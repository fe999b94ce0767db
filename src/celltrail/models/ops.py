"""Detection operations written in plain torch (torchvision's compiled ops do not load here)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def roi_align(features: torch.Tensor, boxes: torch.Tensor, batch_index: torch.Tensor,
              size: int, stride: float = 1.0) -> torch.Tensor:
    """Bilinear samples of ``features`` (B, C, H, W) on a ``size`` x ``size`` grid per box.

    ``boxes`` (N, 4) are ``(x0, y0, x1, y1)`` in input pixels (feature pixel = ``stride`` input
    pixels); grid points sit at the centres of the ``size`` x ``size`` bins, as RoIAlign with
    one sample per bin and ``aligned=True``. Points outside the map read zero.
    """
    _, _, h, w = features.shape
    steps = (torch.arange(size, dtype=features.dtype, device=features.device) + 0.5) / size
    x = boxes[:, 0:1] + (boxes[:, 2:3] - boxes[:, 0:1]) * steps  # (N, size) input pixels
    y = boxes[:, 1:2] + (boxes[:, 3:4] - boxes[:, 1:2]) * steps
    gx = (x / stride) / w * 2 - 1  # align_corners=False: pixel edges at -1 and 1
    gy = (y / stride) / h * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    out = features.new_zeros((len(boxes), features.shape[1], size, size))
    for b in torch.unique(batch_index).tolist():  # one call per image, all its boxes at once
        rows = torch.nonzero(batch_index == b).flatten()
        sampled = F.grid_sample(features[b:b + 1], grid[rows].reshape(1, -1, size, 2),
                                mode="bilinear", padding_mode="zeros", align_corners=False)
        out[rows] = sampled.reshape(-1, len(rows), size, size).transpose(0, 1)
    return out


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of ``(x0, y0, x1, y1)`` boxes (N, 4); empty boxes have area 0."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4).

    Written with in-place (N, M) operations: this runs over every anchor of an image."""
    width = (torch.minimum(a[:, None, 2], b[None, :, 2])
             - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp_(min=0)
    height = (torch.minimum(a[:, None, 3], b[None, :, 3])
              - torch.maximum(a[:, None, 1], b[None, :, 1])).clamp_(min=0)
    inter = width.mul_(height)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter.div_(union.clamp_(min=1e-9))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the boxes kept, best score first.

    A box is dropped when its IoU with a better-scoring kept box exceeds ``iou``.
    """
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    boxes = boxes[order]
    overlaps = (box_iou(boxes, boxes) > iou).cpu().numpy()
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for i in range(len(boxes)):  # each kept box silences the later ones it overlaps
        if not suppressed[i]:
            keep.append(i)
            suppressed |= overlaps[i]
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]
