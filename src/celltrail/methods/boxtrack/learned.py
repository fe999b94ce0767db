"""BoxTrack's default backend: our trained promptable segmenter (see
:mod:`celltrail.models.prompt_segmenter`), with weights shipped in the package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from celltrail.core.sequence import normalise
from celltrail.methods.boxtrack.options import DEFAULT_MODEL
from celltrail.methods.boxtrack.patch import Patch
from celltrail.methods.boxtrack.segmenters import Candidates
from celltrail.models.checkpoint import build_network
from celltrail.models.prompt_segmenter import (
    CANONICAL_DIAMETER,
    NetConfig,
    PromptSegNet,
    crop_boxes,
    load_checkpoint,
)
from celltrail.models.zoo import PACKAGE, model_path

#: Where the shipped weights live.
WEIGHTS = PACKAGE / "prompt_segmenter"


def model_name(trained_on: Sequence[str], shared: Sequence[str]) -> str:
    """Name of a shipped model from the ``shared`` sequences it was trained on (with simulated
    ones): ``general``, or ``without-<sequence>`` for the zero-shot (leave-one-out) models."""
    left_out = [name for name in shared if name not in trained_on]
    return "without-" + "-and-".join(left_out) if left_out else DEFAULT_MODEL


@dataclass
class _Features:
    image: torch.Tensor  # (1, 1, h, w) normalised, canonical scale
    features: torch.Tensor
    foreground: np.ndarray  # full-resolution foreground probability
    shape: tuple[int, int]


class LearnedPromptSegmenter:
    """The trained :class:`PromptSegNet` behind BoxTrack's segmenter interface, run on
    ``device`` (default: the CPU); what it returns is on the CPU."""

    name = "learned"
    screens_proposals = True

    def __init__(self, net: PromptSegNet, trained_on: Sequence[str] = (),
                 device: torch.device | None = None) -> None:
        self.device = torch.device("cpu") if device is None else device
        self.net = net.to(self.device).eval()
        self.trained_on = list(trained_on)
        self.scale = 1.0

    @classmethod
    def load(cls, model: str | Path | None = None, device: torch.device | None = None
             ) -> LearnedPromptSegmenter:
        """A shipped model by name (default :data:`DEFAULT_MODEL`) or a checkpoint path, on
        ``device``."""
        state = load_checkpoint(model_path("prompt_segmenter", model or DEFAULT_MODEL))
        net = build_network(state, lambda config: PromptSegNet(NetConfig(**config)))
        return cls(net, state.get("trained_on", []), device)

    def set_scale(self, diameter: float) -> None:
        self.scale = CANONICAL_DIAMETER / max(diameter, 1.0)

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> _Features:
        x = canonical_image(image, self.scale, self.device)
        h, w = image.shape
        features = self.net.encode(x)
        fg = torch.sigmoid(self.net.foreground(features))
        fg = F.interpolate(fg, size=(h, w), mode="bilinear", align_corners=False)
        return _Features(x, features, fg[0, 0].cpu().numpy(), (h, w))

    @torch.no_grad()
    def decode(
        self, features: object, boxes: np.ndarray, previous: list[Patch | None]
    ) -> Candidates:
        assert isinstance(features, _Features)
        s = self.net.config.mask_size
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        crops = np.round(crop_boxes(torch.from_numpy(boxes)).numpy())  # whole pixels
        crops[:, 2:] = np.maximum(crops[:, 2:], crops[:, :2] + 1)
        prev = np.stack([_raster(p, c, s) for p, c in zip(previous, crops, strict=True)])
        scale = features.image.shape[-1] / features.shape[1]  # canonical px per input px
        on = self.device
        out = self.net.decode(
            features.features, features.image, torch.from_numpy(boxes * scale).float().to(on),
            torch.from_numpy(crops * scale).float().to(on),
            torch.zeros(len(boxes), dtype=torch.long, device=on),
            torch.from_numpy(prev)[:, None].float().to(on))
        masks = [self._patches(out.masks[i], crops[i], features.shape) for i in range(len(boxes))]
        return Candidates(masks, *(values.cpu().numpy().astype(np.float64)
                                   for values in (out.quality, out.objectness, out.tokens)))

    @staticmethod
    def _patches(logits: torch.Tensor, crop: np.ndarray, shape: tuple[int, int]) -> list[Patch]:
        """Candidate logits on the crop grid → patches at full resolution."""
        x0, y0, x1, y1 = (int(v) for v in crop)
        up = F.interpolate(logits[None], size=(y1 - y0, x1 - x0), mode="bilinear",
                           align_corners=False)[0].cpu()
        return [Patch.from_mask((up[k] > 0).numpy(), y0, x0).clip(shape)
                for k in range(len(logits))]

    def proposals(self, features: object) -> list[Patch]:
        assert isinstance(features, _Features)
        labels, _ = ndi.label(features.foreground > 0.5)
        return [Patch.from_mask(labels[sl] == i + 1, sl[0].start, sl[1].start)
                for i, sl in enumerate(ndi.find_objects(labels)) if sl is not None]


def canonical_image(image: np.ndarray, scale: float, device: torch.device | None = None
                    ) -> torch.Tensor:
    """The normalised frame (1, 1, h, w) rescaled by ``scale``, as the encoder sees it, on
    ``device`` (default: the CPU)."""
    x = torch.from_numpy(normalise(image))[None, None].to(device)
    size = tuple(max(8, round(n * scale)) for n in image.shape)
    return F.interpolate(x, size=size, mode="bilinear", antialias=scale < 1, align_corners=False)


def _raster(patch: Patch | None, crop: np.ndarray, size: int) -> np.ndarray:
    """``patch`` sampled (nearest) on a crop's ``size`` x ``size`` grid; all -1 without one."""
    if patch is None or patch.area == 0:
        return np.full((size, size), -1.0)
    steps = (np.arange(size) + 0.5) / size
    cols = np.floor(crop[0] + (crop[2] - crop[0]) * steps).astype(np.int64) - patch.left
    rows = np.floor(crop[1] + (crop[3] - crop[1]) * steps).astype(np.int64) - patch.top
    h, w = patch.mask.shape
    ok_r, ok_c = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    out = np.zeros((size, size))
    out[np.ix_(ok_r, ok_c)] = patch.mask[np.ix_(rows[ok_r], cols[ok_c])]
    return out
