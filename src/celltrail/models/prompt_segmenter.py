"""A small promptable cell segmenter: one image encoder per frame, a light decoder per box.

It plays SAM2's part in BoxTrack at a CPU budget. The encoder runs once per frame on the image
rescaled so cells are about :data:`CANONICAL_DIAMETER` pixels wide; each prompt then costs only a
small decoder on a RoIAlign crop of the shared features around its box. The decoder also sees
the object's previous mask (its memory), returns :data:`K` candidate masks with a predicted IoU
each, an objectness logit, and per-candidate tokens (mask-pooled features) for the affinity
score. A foreground head on the encoder proposes unprompted cells.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from celltrail.models.checkpoint import read_checkpoint
from celltrail.models.ops import roi_align

#: Cell diameter (pixels) the encoder sees: frames are rescaled to it.
CANONICAL_DIAMETER = 24.0
#: Candidate masks per prompt.
K = 3
#: The crop around a box is this many times the box's size (context for the decoder).
CONTEXT = 1.5


@dataclass(frozen=True)
class NetConfig:
    """Architecture sizes, saved with the weights."""

    width: int = 48  #: encoder channels at stride 4
    decoder_width: int = 32
    crop: int = 12  #: decoder feature grid per prompt (stride-4 features)
    mask_size: int = 24  #: mask logits per prompt

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@dataclass
class Decoded:
    """Decoder outputs for N prompts."""

    masks: torch.Tensor  #: (N, K, S, S) logits on the crop grid
    quality: torch.Tensor  #: (N, K) predicted IoU in [0, 1]
    objectness: torch.Tensor  #: (N,) logit
    tokens: torch.Tensor  #: (N, K, D)


class PromptSegNet(nn.Module):
    """Encoder + per-prompt decoder + foreground head."""

    def __init__(self, config: NetConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or NetConfig()
        self.encoder = nn.Sequential(
            _conv(1, 16), _conv(16, 24, stride=2), _conv(24, 24),
            _conv(24, c.width, stride=2), _conv(c.width, c.width),
            _conv(c.width, c.width, dilation=2), _conv(c.width, c.width, dilation=4),
        )
        self.foreground_head = nn.Conv2d(c.width, 1, 1)
        d = c.decoder_width
        self.coarse = nn.Sequential(_conv(c.width + 3, d), _conv(d, d, dilation=2), _conv(d, d))
        self.fine = nn.Sequential(_conv(d + 3, 16), _conv(16, 16), nn.Conv2d(16, K, 1))
        self.heads = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, K + 1))

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Stride-4 features of normalised images (B, 1, H, W)."""
        return self.encoder(image)

    def foreground(self, features: torch.Tensor) -> torch.Tensor:
        """Foreground logits at stride 4."""
        return self.foreground_head(features)

    def decode(self, features: torch.Tensor, image: torch.Tensor, boxes: torch.Tensor,
               crop: torch.Tensor, batch_index: torch.Tensor, previous: torch.Tensor) -> Decoded:
        """Candidates for ``boxes`` (N, 4, canonical pixels) on the grids of their ``crop``
        boxes (see :func:`crop_boxes`), given each object's previous mask sampled on that grid
        (N, 1, S, S; all -1 where the object has none)."""
        c = self.config
        feats = roi_align(features, crop, batch_index, c.crop, stride=4.0)
        grey = roi_align(image, crop, batch_index, c.mask_size)
        box_small = box_prompt(boxes, crop, c.crop)
        box_large = box_prompt(boxes, crop, c.mask_size)
        prev_small = F.interpolate(previous, size=c.crop, mode="bilinear", align_corners=False)
        x = self.coarse(torch.cat([feats, box_small, prev_small, torch.ones_like(box_small)
                                   * (previous.amax(dim=(1, 2, 3), keepdim=True) > -1)], 1))
        heads = self.heads(x.mean(dim=(2, 3)))
        up = F.interpolate(x, size=c.mask_size, mode="bilinear", align_corners=False)
        masks = self.fine(torch.cat([up, grey, box_large, previous], 1))
        weights = torch.sigmoid(masks)
        tokens = torch.einsum("nkhw,ndhw->nkd", weights, up) / (
            weights.sum(dim=(2, 3))[..., None] + 1e-6)
        return Decoded(masks, torch.sigmoid(heads[:, :K]), heads[:, K], tokens)


def crop_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """The decoder's crop around each box: the box grown :data:`CONTEXT` times, made square."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = (boxes[:, 2:] - boxes[:, :2]).amax(dim=1, keepdim=True).clamp(min=4.0) * CONTEXT
    return torch.cat([centre - side / 2, centre + side / 2], dim=1)


def box_prompt(boxes: torch.Tensor, crop: torch.Tensor, size: int) -> torch.Tensor:
    """The box as a soft 0/1 rectangle on a crop's ``size`` x ``size`` grid (N, 1, S, S)."""
    steps = (torch.arange(size, dtype=boxes.dtype, device=boxes.device) + 0.5) / size
    x = crop[:, 0:1] + (crop[:, 2:3] - crop[:, 0:1]) * steps
    y = crop[:, 1:2] + (crop[:, 3:4] - crop[:, 1:2]) * steps
    inside_x = (x >= boxes[:, 0:1]) & (x <= boxes[:, 2:3])
    inside_y = (y >= boxes[:, 1:2]) & (y <= boxes[:, 3:4])
    return (inside_y[:, :, None] & inside_x[:, None, :]).to(boxes.dtype)[:, None]


def load_checkpoint(path: str | Path) -> dict:
    """A saved prompt-segmenter checkpoint (tensors and plain values only)."""
    return read_checkpoint(path, "prompt-segmenter", kind="prompt_segmenter")
