"""CellBoxify's detector: Mask R-CNN in plain torch, sized for a CPU.

A small residual backbone (ResNet-style basic blocks, group norm since a batch is one image) with
a feature pyramid P2–P6, a region proposal network with the paper's anchors (sizes 8–128, one per
level; aspect ratios 0.5–4), a box head and a shape head on RoIAlign crops. The shape head is
either Mask R-CNN's mask head (28 x 28 logits) or, as in the paper, a polygon head: a star-shaped
polygon (a centre and ray lengths) rasterised softly onto the same grid, so either can be trained
from masks or from boxes only; the head and how it learnt are in the checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from celltrail.models.checkpoint import build_network, read_checkpoint
from celltrail.models.ops import nms, roi_align

#: Anchor side (pixels) on P2…P6 (section 5 of the paper).
ANCHOR_SIZES = (8.0, 16.0, 32.0, 64.0, 128.0)
#: Anchor aspect ratios, height / width (section 5).
ASPECT_RATIOS = (0.5, 1.0, 2.0, 3.0, 4.0)
#: Strides of P2…P6.
STRIDES = (4, 8, 16, 32, 64)
#: Training short sides (multi-scale augmentation, section 5); inference uses the middle one.
TRAIN_SIDES = (440, 480, 520, 580, 620)
TEST_SIDE = 520
#: Weights of the box deltas (dx, dy, dw, dh), as in Faster R-CNN's heads.
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
#: Largest log size change a delta may ask for (Detectron's clamp).
MAX_LOG_SCALE = math.log(1000.0 / 16)
BOX_POOL, MASK_POOL, MASK_SIZE = 7, 14, 28
#: Shape heads: Mask R-CNN's mask head, the paper's polygon head.
HEADS = ("mask", "polygon")
#: Longest ray of a polygon, in box widths: a polygon centred in its box reaches its corners.
POLYGON_REACH = 0.75


@dataclass(frozen=True)
class CellBoxifyConfig:
    """Architecture sizes, saved with the weights."""

    widths: tuple[int, ...] = (32, 64, 128, 192)  #: channels of C2…C5
    blocks: tuple[int, ...] = (1, 2, 2, 1)  #: residual blocks per stage
    fpn: int = 64  #: pyramid channels
    fc: int = 256  #: box head width
    mask_convs: int = 4
    head: str = "mask"  #: "mask" (Mask R-CNN's) or "polygon" (the paper's)
    rays: int = 32  #: vertices of the polygon head's polygons

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> CellBoxifyConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(8, channels)


class _Block(nn.Module):
    """ResNet's basic block."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), _norm(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), _norm(cout))
        self.skip = nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


@dataclass
class Detections:
    """Detected cells of one image, in its pixel coordinates."""

    boxes: torch.Tensor  #: (N, 4) x0, y0, x1, y1
    scores: torch.Tensor  #: (N,)
    masks: torch.Tensor  #: (N, MASK_SIZE, MASK_SIZE) probabilities over each box


class CellBoxifyNet(nn.Module):
    """Backbone + FPN + RPN + box head + mask head."""

    def __init__(self, config: CellBoxifyConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or CellBoxifyConfig()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, 3, 2, 1, bias=False), _norm(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, c.widths[0], 3, 2, 1, bias=False), _norm(c.widths[0]),
            nn.ReLU(inplace=True))
        stages, cin = [], c.widths[0]
        for i, (width, blocks) in enumerate(zip(c.widths, c.blocks, strict=True)):
            layers = [_Block(cin if b == 0 else width, width, 2 if i > 0 and b == 0 else 1)
                      for b in range(blocks)]
            stages.append(nn.Sequential(*layers))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList(nn.Conv2d(w, c.fpn, 1) for w in c.widths)
        self.smooth = nn.ModuleList(nn.Conv2d(c.fpn, c.fpn, 3, 1, 1) for _ in c.widths)
        anchors = len(ASPECT_RATIOS)
        self.rpn_conv = nn.Conv2d(c.fpn, c.fpn, 3, 1, 1)
        self.rpn_logits = nn.Conv2d(c.fpn, anchors, 1)
        self.rpn_deltas = nn.Conv2d(c.fpn, 4 * anchors, 1)
        self.box_fc = nn.Sequential(
            nn.Flatten(), nn.Linear(c.fpn * BOX_POOL**2, c.fc), nn.ReLU(inplace=True),
            nn.Linear(c.fc, c.fc), nn.ReLU(inplace=True))
        self.box_logit = nn.Linear(c.fc, 1)
        self.box_deltas = nn.Linear(c.fc, 4)
        convs: list[nn.Module] = []
        for _ in range(c.mask_convs):
            convs += [nn.Conv2d(c.fpn, c.fpn, 3, 1, 1), nn.ReLU(inplace=True)]
        self.mask_convs = nn.Sequential(*convs)
        if c.head == "polygon":
            self.polygon_fc = nn.Sequential(
                nn.Conv2d(c.fpn, c.fpn, 3, 2, 1), nn.ReLU(inplace=True), nn.Flatten(),
                nn.Linear(c.fpn * (MASK_POOL // 2) ** 2, c.fc), nn.ReLU(inplace=True))
            self.polygon_out = nn.Linear(c.fc, 2 + c.rays)
            last = self.polygon_out
        elif c.head == "mask":
            self.mask_up = nn.ConvTranspose2d(c.fpn, c.fpn, 2, 2)
            self.mask_logit = last = nn.Conv2d(c.fpn, 1, 1)
        else:
            raise ValueError(f"head must be one of {HEADS}, not {c.head!r}")
        for layer in (self.rpn_logits, self.rpn_deltas, self.box_logit, last):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        nn.init.normal_(self.box_deltas.weight, std=0.001)
        nn.init.zeros_(self.box_deltas.bias)

    def pyramid(self, image: torch.Tensor) -> list[torch.Tensor]:
        """P2…P6 of a (1, 1, H, W) image."""
        x, feats = self.stem(image), []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        levels = [self.lateral[-1](feats[-1])]
        for lateral, feat in zip(self.lateral[-2::-1], feats[-2::-1], strict=True):
            top = F.interpolate(levels[0], size=feat.shape[-2:], mode="nearest")
            levels.insert(0, lateral(feat) + top)
        levels = [smooth(p) for smooth, p in zip(self.smooth, levels, strict=True)]
        return [*levels, F.max_pool2d(levels[-1], 1, 2)]

    def rpn(self, levels: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Objectness logits (H·W·A,) and deltas (H·W·A, 4) per level, anchor order as
        :func:`anchors`."""
        logits, deltas = [], []
        for p in levels:
            h = F.relu(self.rpn_conv(p))
            logits.append(self.rpn_logits(h)[0].permute(1, 2, 0).reshape(-1))
            deltas.append(self.rpn_deltas(h)[0].permute(1, 2, 0).reshape(-1, 4))
        return logits, deltas

    def box_head(self, levels: list[torch.Tensor], boxes: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell logit (N,) and box deltas (N, 4) of each RoI."""
        x = self.box_fc(pool(levels, boxes, BOX_POOL))
        return self.box_logit(x)[:, 0], self.box_deltas(x)

    def polygons(self, levels: list[torch.Tensor], boxes: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The polygon head: each box's polygon as a centre (N, 2) and ray lengths (N, rays),
        in units of the box (0–1 across it); rays start at angle 0 (+x) and turn towards +y."""
        out = self.polygon_out(self.polygon_fc(self.mask_convs(pool(levels, boxes, MASK_POOL))))
        return 0.5 + 0.25 * torch.tanh(out[:, :2]), POLYGON_REACH * torch.sigmoid(out[:, 2:])

    def mask_head(self, levels: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """Mask logits (N, MASK_SIZE, MASK_SIZE) over each box, from either head."""
        if self.config.head == "polygon":
            centres, radii = self.polygons(levels, boxes)
            return rasterise(centres, vertices(centres, radii), MASK_SIZE)
        x = self.mask_convs(pool(levels, boxes, MASK_POOL))
        return self.mask_logit(F.relu(self.mask_up(x)))[:, 0]

    def proposals(self, levels: list[torch.Tensor], logits: list[torch.Tensor],
                  deltas: list[torch.Tensor], size: tuple[int, int], pre: int, post: int
                  ) -> torch.Tensor:
        """RPN proposals (K, 4): the ``pre`` best anchors per level decoded, NMS at 0.7 per
        level, then the ``post`` best overall."""
        boxes, scores = [], []
        for level, (p, logit, delta) in enumerate(zip(levels, logits, deltas, strict=True)):
            top = torch.topk(logit, min(pre, len(logit))).indices
            grid = anchors(level, p.shape[-2:], p.device)[top]
            decoded = clip(decode(delta[top], grid, RPN_WEIGHTS), size)
            wide = ((decoded[:, 2:] - decoded[:, :2]) > 1).all(dim=1)
            keep = nms(decoded[wide], logit[top][wide], 0.7)
            boxes.append(decoded[wide][keep])
            scores.append(logit[top][wide][keep])
        all_boxes, all_scores = torch.cat(boxes), torch.cat(scores)
        return all_boxes[torch.topk(all_scores, min(post, len(all_scores))).indices]

    @torch.no_grad()
    def detect(self, image: torch.Tensor, min_score: float = 0.05, max_cells: int = 2000
               ) -> Detections:
        """Cells in a (1, 1, H, W) prepared image (see :func:`prepare`), best first: boxes
        scored at least ``min_score`` after NMS at 0.5, at most ``max_cells``."""
        size = tuple(image.shape[-2:])
        levels = self.pyramid(image)
        logits, deltas = self.rpn(levels)
        rois = self.proposals(levels, logits, deltas, size, 1000, 1000)
        logit, delta = self.box_head(levels, rois)
        scores = torch.sigmoid(logit)
        boxes = clip(decode(delta, rois, BOX_WEIGHTS), size)
        good = (scores >= min_score) & ((boxes[:, 2:] - boxes[:, :2]) > 1).all(dim=1)
        boxes, scores = boxes[good], scores[good]
        keep = nms(boxes, scores, 0.5)[:max_cells]
        boxes, scores = boxes[keep], scores[keep]
        masks = torch.sigmoid(self.mask_head(levels, boxes)) if len(boxes) else \
            image.new_zeros((0, MASK_SIZE, MASK_SIZE))
        return Detections(boxes, scores, masks)


def vertices(centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Vertices (N, rays, 2) (x, y) of star-shaped polygons: ray ``k`` at angle ``2πk/rays``
    from the +x axis towards +y, ``radii`` long."""
    angles = torch.arange(radii.shape[1], dtype=radii.dtype, device=radii.device) * (
        2 * math.pi / radii.shape[1])
    return centres[:, None, :] + radii[..., None] * torch.stack([angles.cos(), angles.sin()], 1)


def rasterise(centres: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """Logits (N, size, size) of star-shaped polygons (centres (N, 2), vertices (N, R, 2) in
    order of angle, starting on the +x axis; 0–1 across the grid) on a ``size`` grid: the
    distance, in grid pixels, from each pixel centre to the polygon's edge along the ray from
    the centre (positive inside). Its sigmoid is a mask soft over about a pixel whose
    gradients reach the vertices: the paper's polygon made a mask for the pairwise losses."""
    coords = (torch.arange(size, dtype=corners.dtype, device=corners.device) + 0.5) / size
    dx = (coords[None, None, :] - centres[:, 0, None, None]).expand(-1, size, -1)
    dy = (coords[None, :, None] - centres[:, 1, None, None]).expand(-1, -1, size)
    dist = torch.sqrt(dx**2 + dy**2 + 1e-12).flatten(1)
    angle = torch.remainder(torch.atan2(dy, dx), 2 * math.pi).flatten(1)
    rel = corners - centres[:, None, :]
    corner_angle = torch.remainder(torch.atan2(rel[..., 1], rel[..., 0]), 2 * math.pi)
    rays = corners.shape[1]
    k = (torch.searchsorted(corner_angle.detach().contiguous(), angle.detach().contiguous(),
                            right=True) - 1) % rays
    a = rel.gather(1, k[..., None].expand(-1, -1, 2))
    b = rel.gather(1, ((k + 1) % rays)[..., None].expand(-1, -1, 2))
    ux, uy = dx.flatten(1) / dist, dy.flatten(1) / dist
    # the ray u meets the edge a -> b at rho: rho (u x (b - a)) = a x b
    across = ux * (b[..., 1] - a[..., 1]) - uy * (b[..., 0] - a[..., 0])
    edge = (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]) / across.clamp(min=1e-6)
    return ((edge - dist) * size).view(-1, size, size)


def polygon_box(corners: torch.Tensor, size: int) -> torch.Tensor:
    """The box (N, 4) that polygons' vertices (0–1 across a grid) span, in pixels of a
    ``size`` grid: what the paper's point-based unary loss compares with the ground truth."""
    return torch.cat([corners.amin(1), corners.amax(1)], dim=1) * size


def reframe(points: torch.Tensor, boxes: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Points (N, ..., 2) given 0–1 across ``boxes`` (N, 4), made 0–1 across ``frames``."""
    shape = (-1,) + (1,) * (points.dim() - 2) + (2,)
    origin, extent = boxes[:, :2].view(shape), (boxes[:, 2:] - boxes[:, :2]).view(shape)
    f_origin, f_extent = frames[:, :2].view(shape), (frames[:, 2:] - frames[:, :2]).view(shape)
    return (origin + points * extent - f_origin) / f_extent


def anchors(level: int, shape: tuple[int, int], device: torch.device | None = None
            ) -> torch.Tensor:
    """Anchors (H·W·A, 4) of pyramid ``level`` (0 = P2) on an (H, W) map, centred on its
    pixels, ordered (y, x, aspect ratio) like the RPN's outputs, on ``device``."""
    stride, side = STRIDES[level], ANCHOR_SIZES[level]
    ratios = torch.tensor(ASPECT_RATIOS, device=device)
    half = torch.stack([side / ratios.sqrt(), side * ratios.sqrt()], dim=1) / 2  # (A, 2) w, h
    ys = (torch.arange(shape[0], dtype=torch.float32, device=device) + 0.5) * stride
    xs = (torch.arange(shape[1], dtype=torch.float32, device=device) + 0.5) * stride
    centre = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (H, W, 2) x, y
    centre = centre[:, :, None, :]
    return torch.cat([centre - half, centre + half], dim=-1).reshape(-1, 4)


def encode(boxes: torch.Tensor, reference: torch.Tensor,
           weights: tuple[float, ...]) -> torch.Tensor:
    """Deltas (dx, dy, dw, dh) taking ``reference`` boxes to ``boxes``."""
    rw, rh = reference[:, 2] - reference[:, 0], reference[:, 3] - reference[:, 1]
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    dx = ((boxes[:, 0] + boxes[:, 2]) - (reference[:, 0] + reference[:, 2])) / 2 / rw
    dy = ((boxes[:, 1] + boxes[:, 3]) - (reference[:, 1] + reference[:, 3])) / 2 / rh
    deltas = torch.stack([dx, dy, torch.log(bw / rw), torch.log(bh / rh)], dim=1)
    return deltas * deltas.new_tensor(weights)


def decode(deltas: torch.Tensor, reference: torch.Tensor,
           weights: tuple[float, ...]) -> torch.Tensor:
    """Boxes that ``deltas`` make of ``reference`` boxes (inverse of :func:`encode`)."""
    d = deltas / deltas.new_tensor(weights)
    rw, rh = reference[:, 2] - reference[:, 0], reference[:, 3] - reference[:, 1]
    cx = (reference[:, 0] + reference[:, 2]) / 2 + d[:, 0] * rw
    cy = (reference[:, 1] + reference[:, 3]) / 2 + d[:, 1] * rh
    w = rw * torch.exp(d[:, 2].clamp(max=MAX_LOG_SCALE))
    h = rh * torch.exp(d[:, 3].clamp(max=MAX_LOG_SCALE))
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)


def clip(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Boxes clipped to an (H, W) image."""
    limit = boxes.new_tensor([size[1], size[0], size[1], size[0]])
    return torch.minimum(boxes.clamp(min=0), limit)


def roi_levels(boxes: torch.Tensor) -> torch.Tensor:
    """The pyramid level (0 = P2 … 3 = P5) whose anchor size is nearest each box's size."""
    side = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1).sqrt()
    return torch.round(torch.log2(side / ANCHOR_SIZES[0])).clamp(0, 3).long()


def pool(levels: list[torch.Tensor], boxes: torch.Tensor, size: int) -> torch.Tensor:
    """RoIAlign (N, C, size, size) of each box from the pyramid level that suits its size."""
    out = levels[0].new_zeros((len(boxes), levels[0].shape[1], size, size))
    which = roi_levels(boxes)
    for level in torch.unique(which).tolist():
        rows = torch.nonzero(which == level).flatten()
        out[rows] = roi_align(levels[level], boxes[rows], torch.zeros_like(rows), size,
                              stride=float(STRIDES[level]))
    return out


def prepare(image: np.ndarray) -> np.ndarray:
    """The network's input: CLAHE (section 5) of the percentile-normalised image, standardised."""
    from skimage.exposure import equalize_adapthist

    from celltrail.core.sequence import normalise

    equalised = equalize_adapthist(np.clip(normalise(image), 0, 1)).astype(np.float32)
    return (equalised - equalised.mean()) / max(float(equalised.std()), 1e-6)


def load_checkpoint(path: str | Path) -> dict:
    """A saved CellBoxify checkpoint (tensors and plain values only)."""
    return read_checkpoint(path, "CellBoxify", kind="cellboxify")


def network_from(state: dict) -> CellBoxifyNet:
    """The network of a checkpoint, in float32 and eval mode."""
    return build_network(state, lambda config: CellBoxifyNet(CellBoxifyConfig.from_dict(config)))  # type: ignore[return-value]
