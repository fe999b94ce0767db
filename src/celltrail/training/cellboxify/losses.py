"""CellBoxify's losses: the box-only mask losses of section 3.3 and Mask R-CNN's usual terms.

Box-only supervision of a mask ``U`` (probabilities on the RoI's grid) uses three terms:

- unary: ``1 - CIoU`` between the box that ``U`` spans and the ground-truth box;
- local pairwise: ``sum w |U_i - U_j|`` over neighbours in 3 x 3 windows, ``w`` the pixels'
  intensity affinity, so the mask's edges fall where the image has edges;
- global pairwise: the Chan–Vese energy, ``U`` splitting the box into two homogeneous regions.

The pairwise terms read a guide image: the intensity (the paper) or, for label-free
modalities such as DIC where a cell is a textured relief on a flat background of about the same
brightness, the local texture (:func:`texture`), on which a cell is one bright region.

All are computed on the mask head's fixed-size grid over each positive RoI (the paper's
clipping strategy): the image is cropped onto the same grid with RoIAlign, so memory does not
grow with the image. RoIs are proposals that overlap a cell, so the grid often reaches beyond the
cell's box.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: α, β, γ of the joint loss: the paper gives no values; equal weights, as BoxInst weighs its
#: projection and pairwise terms.
JOINT_WEIGHTS = (1.0, 1.0, 1.0)
#: The pairwise terms are brought in linearly over this share of the steps, as BoxInst warms
#: its pairwise loss up (10k of 90k iterations): a mask first learns to fill its box, else the
#: pairwise terms can drive it to nothing before it has a shape.
PAIRWISE_WARMUP = 0.1
#: Guide images of the pairwise terms.
GUIDES = ("intensity", "texture")
#: Neighbour offsets of a 3 x 3 window, each unordered pair once.
_OFFSETS = ((0, 1), (1, -1), (1, 0), (1, 1))


def ciou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Complete IoU (Zheng et al. 2020) of paired ``(x0, y0, x1, y1)`` boxes (N, 4): IoU minus
    the normalised centre distance minus the aspect-ratio term; 1 for identical boxes."""
    eps = 1e-7
    pw, ph = (pred[:, 2] - pred[:, 0]).clamp(min=eps), (pred[:, 3] - pred[:, 1]).clamp(min=eps)
    tw, th = target[:, 2] - target[:, 0], target[:, 3] - target[:, 1]
    iw = (torch.minimum(pred[:, 2], target[:, 2]) - torch.maximum(pred[:, 0], target[:, 0]))
    ih = (torch.minimum(pred[:, 3], target[:, 3]) - torch.maximum(pred[:, 1], target[:, 1]))
    inter = iw.clamp(min=0) * ih.clamp(min=0)
    iou = inter / (pw * ph + tw * th - inter + eps)
    cw = torch.maximum(pred[:, 2], target[:, 2]) - torch.minimum(pred[:, 0], target[:, 0])
    ch = torch.maximum(pred[:, 3], target[:, 3]) - torch.minimum(pred[:, 1], target[:, 1])
    rho2 = ((pred[:, :2] + pred[:, 2:]) / 2 - (target[:, :2] + target[:, 2:]) / 2).pow(2).sum(1)
    v = (4 / math.pi**2) * (torch.atan(tw / th) - torch.atan(pw / ph)).pow(2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return iou - rho2 / (cw**2 + ch**2 + eps) - alpha * v


def mask_box(masks: torch.Tensor) -> torch.Tensor:
    """The box (N, 4) that masks (N, S, S) of probabilities span, in grid pixels.

    A side is where the running maximum of the mask's projection rises: for a binary mask on
    columns ``a..b-1`` this gives exactly ``a`` and ``b``; for soft masks it is differentiable.
    """
    size = masks.shape[-1]
    columns, rows = masks.amax(dim=1), masks.amax(dim=2)

    def first(profile: torch.Tensor) -> torch.Tensor:
        return (1 - torch.cummax(profile, dim=1).values).sum(dim=1)

    return torch.stack([first(columns), first(rows), size - first(columns.flip(1)),
                        size - first(rows.flip(1))], dim=1)


def box_region(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(N, S, S) 1 where a grid pixel's centre lies in the box (grid coordinates), else 0."""
    centres = torch.arange(size, dtype=boxes.dtype, device=boxes.device) + 0.5
    inside_x = (centres >= boxes[:, 0:1]) & (centres <= boxes[:, 2:3])
    inside_y = (centres >= boxes[:, 1:2]) & (centres <= boxes[:, 3:4])
    return (inside_y[:, :, None] & inside_x[:, None, :]).to(boxes.dtype)


def texture(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Local standard deviation of (B, 1, H, W) images in a Gaussian window of ``sigma``
    pixels."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (x / max(sigma, 1e-3)) ** 2)
    kernel = kernel / kernel.sum()

    def blur(v: torch.Tensor) -> torch.Tensor:
        v = F.conv2d(F.pad(v, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
        return F.conv2d(F.pad(v, (0, 0, radius, radius), mode="replicate"),
                        kernel.view(1, 1, -1, 1))

    mean = blur(images)
    return (blur(images * images) - mean * mean).clamp(min=0).sqrt()


def _pairs(x: torch.Tensor, dy: int, dx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two ends of every neighbour pair at offset (dy, dx) in (N, S, S)."""
    size = x.shape[-1]
    a = x[:, :size - dy, max(0, -dx):size - max(0, dx)]
    b = x[:, dy:, max(0, dx):size - max(0, -dx)]
    return a, b


def local_pairwise(masks: torch.Tensor, images: torch.Tensor,
                   region: torch.Tensor) -> torch.Tensor:
    """Local pairwise term (N,): affinity-weighted mean of ``|U_i - U_j|`` over neighbour pairs
    inside ``region``. The affinity is ``exp(-|I_i - I_j| / θ)``, θ the RoI's median neighbour
    difference, so edges stand out against each image's own texture and noise."""
    diffs, changes, weights = [], [], []
    for dy, dx in _OFFSETS:
        ia, ib = _pairs(images, dy, dx)
        ua, ub = _pairs(masks, dy, dx)
        ra, rb = _pairs(region, dy, dx)
        diffs.append((ia - ib).abs().flatten(1))
        changes.append((ua - ub).abs().flatten(1))
        weights.append((ra * rb).flatten(1))
    diff, change, inside = (torch.cat(v, dim=1) for v in (diffs, changes, weights))
    with torch.no_grad():
        theta = diff.median(dim=1, keepdim=True).values.clamp(min=1e-3)
        affinity = torch.exp(-diff / theta) * inside
    return (affinity * change).sum(1) / affinity.sum(1).clamp(min=1e-6)


def global_pairwise(masks: torch.Tensor, images: torch.Tensor,
                    region: torch.Tensor) -> torch.Tensor:
    """Global pairwise (Chan–Vese) term (N,) over ``region``: squared deviations from the mean
    intensity inside and outside the mask, divided by the region's variance so it is 1 for a
    mask that splits nothing and 0 for two perfectly flat regions."""
    area = region.sum(dim=(1, 2)).clamp(min=1)
    inside, outside = masks * region, (1 - masks) * region
    mean_in = (images * inside).sum(dim=(1, 2)) / inside.sum(dim=(1, 2)).clamp(min=1e-6)
    mean_out = (images * outside).sum(dim=(1, 2)) / outside.sum(dim=(1, 2)).clamp(min=1e-6)
    energy = ((images - mean_in[:, None, None]).pow(2) * inside
              + (images - mean_out[:, None, None]).pow(2) * outside).sum(dim=(1, 2))
    mean = (images * region).sum(dim=(1, 2)) / area
    variance = ((images - mean[:, None, None]).pow(2) * region).sum(dim=(1, 2))
    return energy / variance.clamp(min=1e-6)


def pairwise_warmup(step: int, steps: int) -> float:
    """The share (0–1) of the pairwise terms' weights at ``step`` of ``steps``: they are brought
    in linearly over the first :data:`PAIRWISE_WARMUP` of the steps."""
    return min(1.0, step / (PAIRWISE_WARMUP * steps))


def box_mask_terms(masks: torch.Tensor, images: torch.Tensor, boxes: torch.Tensor,
                   weights: tuple[float, float, float] = JOINT_WEIGHTS,
                   spans: torch.Tensor | None = None, warmup: float = 1.0
                   ) -> dict[str, torch.Tensor]:
    """Per mask (N,): the unary, local and global terms of mask probabilities (N, S, S) given
    the image crops (N, S, S) on the same grid and the ground-truth boxes in grid coordinates,
    and their joint loss ``α L_u + β L_lp + γ L_gp`` as ``"mask"``, β and γ scaled by
    ``warmup`` (:func:`pairwise_warmup`). The unary term compares ``spans``, the boxes of the
    predicted shapes (a polygon's vertices), with the ground truth; without them, the boxes the
    masks span (:func:`mask_box`).

    The grid should reach beyond the box: the local term counts every neighbour pair of the
    grid, so a mask that simply fills its box pays for cutting through the image where it has
    no edge, while the global term (Chan–Vese) looks inside the box only."""
    region = box_region(boxes, masks.shape[-1])
    spans = mask_box(masks) if spans is None else spans
    terms = {"unary": 1 - ciou(spans, boxes),
             "local": local_pairwise(masks, images, torch.ones_like(masks)),
             "global": global_pairwise(masks, images, region)}
    alpha, beta, gamma = weights
    terms["mask"] = sum(w * t for w, t in zip((alpha, beta * warmup, gamma * warmup),
                                              terms.values(), strict=True))
    return terms


def box_mask_loss(masks: torch.Tensor, images: torch.Tensor, boxes: torch.Tensor,
                  weights: tuple[float, float, float] = JOINT_WEIGHTS,
                  spans: torch.Tensor | None = None, warmup: float = 1.0
                  ) -> dict[str, torch.Tensor]:
    """:func:`box_mask_terms` averaged over the masks."""
    return {k: v.mean()
            for k, v in box_mask_terms(masks, images, boxes, weights, spans, warmup).items()}


def full_mask_loss(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mask R-CNN's per-pixel cross-entropy against ground-truth masks on the same grid."""
    return {"mask": F.binary_cross_entropy_with_logits(logits, (targets > 0.5).float())}
