"""CAP's network: cells as points tracked jointly by a transformer (Cell as Point, Sec. 3.2).

A CNN turns every frame into features at stride 4; average pooling gives a pyramid of
:attr:`CAPConfig.levels` scales. Each query cell carries three points (itself and two possible
daughters) over the window's frames and one tracking feature per frame, first sampled at the
query. Each of the M iterations looks up correlations of the feature with the pyramid in a
(2Δ + 1)² grid around each point at every scale (eq. 1), builds one token per cell and frame
(the points relative to the query, the current visibility, the feature, the correlations), runs
blocks of time attention and cross-trajectory attention, and adds the predicted updates to the
points and features (eq. 3). Visibilities come from the last feature: σ(W F^(M)).

Positions are (y, x) in pixels of the working image (the frames as the network sees them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from celltrail.models.checkpoint import build_network, read_checkpoint

#: Stride of the feature map (the paper's k = 4).
STRIDE = 4
#: Points per cell: the cell itself (the mother) and its two possible daughters.
POINTS = 3
#: Input intensity percentiles that map to 0 and 1, per frame.
PERCENTILES = (1.0, 99.0)
#: A feature pyramid (:meth:`CAPNet.pyramid`): per level, the frames' maps, as one (T, C, h, w)
#: tensor or a sequence of (C, h, w) tensors.
Pyramid = Sequence[torch.Tensor | Sequence[torch.Tensor]]
#: The most feature values :meth:`CAPNet.correlation` gathers at once (16 MiB of float32).
GATHER = 2**22
#: Working scale: frames are resized so that the median distance between neighbouring cells
#: is this many pixels (ten feature pixels), in training and in inference alike.
SPACING = 40.0


@dataclass(frozen=True)
class CAPConfig:
    """Architecture sizes, saved with the weights.

    ``joint=False`` replaces every cross-trajectory attention layer by a time attention layer of
    the same size (the paper's ablation of joint tracking).
    """

    channels: tuple[int, int] = (32, 64)
    feature_dim: int = 64
    hidden: int = 128
    heads: int = 4
    depth: int = 3
    iterations: int = 4
    levels: int = 4
    radius: int = 3
    joint: bool = True

    def to_dict(self) -> dict[str, object]:
        values = asdict(self)
        values["channels"] = list(self.channels)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> CAPConfig:
        values = dict(values)
        values["channels"] = tuple(int(c) for c in values["channels"])
        return cls(**values)


class _Residual(nn.Module):
    """Two 3×3 convolutions with instance normalisation and a skip connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(x + self.body(x))


class _Encoder(nn.Sequential):
    """The stride-4 feature extractor φ."""

    def __init__(self, channels: tuple[int, int], out: int) -> None:
        a, b = channels
        super().__init__(
            nn.Conv2d(1, a, 5, stride=2, padding=2), nn.InstanceNorm2d(a), nn.ReLU(inplace=True),
            _Residual(a),
            nn.Conv2d(a, b, 3, stride=2, padding=1), nn.InstanceNorm2d(b), nn.ReLU(inplace=True),
            _Residual(b), _Residual(b),
            nn.Conv2d(b, out, 1),
        )


def _attention_layer(hidden: int, heads: int) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=0.0,
                                      activation="gelu", batch_first=True, norm_first=True)


def time_encoding(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """(length, dim) sinusoidal encoding of the frame index in a window, on ``device``."""
    position = torch.arange(length, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device)
                     * (-math.log(1e4) / dim))
    out = torch.zeros(length, dim, device=device)
    out[:, 0::2] = torch.sin(position * freq)
    out[:, 1::2] = torch.cos(position * freq)
    return out


@dataclass
class CAPOutput:
    """Predictions for one window: ``points`` per iteration, each (T, N, 3, 2) (y, x), and
    visibility logits (T, N, 3) from the last iteration."""

    points: list[torch.Tensor]
    visibility: torch.Tensor


class CAPNet(nn.Module):
    """The CAP network. Frames are (T, 1, H, W) normalised images, H and W multiples of
    :meth:`multiple`."""

    def __init__(self, config: CAPConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or CAPConfig()
        self.encoder = _Encoder(c.channels, c.feature_dim)
        window = (2 * c.radius + 1) ** 2
        token = 2 * POINTS + POINTS + c.feature_dim + POINTS * c.levels * window
        self.embed = nn.Linear(token, c.hidden)
        self.time_layers = nn.ModuleList(_attention_layer(c.hidden, c.heads)
                                         for _ in range(c.depth))
        self.cross_layers = nn.ModuleList(_attention_layer(c.hidden, c.heads)
                                          for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.hidden)
        self.point_head = nn.Linear(c.hidden, 2 * POINTS)
        self.feature_head = nn.Sequential(nn.Linear(c.hidden, c.feature_dim), nn.GELU(),
                                          nn.Linear(c.feature_dim, c.feature_dim))
        self.visibility_head = nn.Linear(c.feature_dim, POINTS)
        offsets = torch.arange(-c.radius, c.radius + 1, dtype=torch.float32)
        grid = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 2)
        self.register_buffer("grid", grid, persistent=False)

    def multiple(self) -> int:
        """Frame sides must be multiples of this (stride × coarsest pooling)."""
        return STRIDE * 2 ** (self.config.levels - 1)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """(T, C, H/4, W/4) features of (T, 1, H, W) frames."""
        return self.encoder(frames)

    def pyramid(self, features: torch.Tensor) -> list[torch.Tensor]:
        """The feature map average-pooled by 1, 2, 4, … (one map per level), stored channels
        last: :meth:`correlation` reads a pixel's channels together."""
        return [(features if s == 0 else F.avg_pool2d(features, 2**s)).contiguous(
            memory_format=torch.channels_last) for s in range(self.config.levels)]

    def _sample(self, fmap: torch.Tensor, points: torch.Tensor, size: tuple[int, int]
                ) -> torch.Tensor:
        """Bilinear samples (T, K, C) of (T, C, h, w) at (T, K, 2) image positions (y, x),
        border padding; ``size`` is the image's (H, W)."""
        height, width = size
        xy = torch.stack([(points[..., 1] + 0.5) / width, (points[..., 0] + 0.5) / height], -1)
        out = F.grid_sample(fmap, xy[:, :, None] * 2 - 1, align_corners=False,
                            padding_mode="border")
        return out[..., 0].transpose(1, 2)

    def correlation(self, levels: Pyramid, features: torch.Tensor, points: torch.Tensor,
                    size: tuple[int, int]) -> torch.Tensor:
        """Eq. (1): (T, N, 3 · S · (2Δ+1)²) inner products of each cell's feature (T, N, C) with
        the pyramid around its three points (T, N, 3, 2), bilinear with border padding. Only
        the pixels around the points are read, a few frames at a time (at most :data:`GATHER`
        values), so memory and time grow with the cells, not with cells × pixels."""
        steps, cells = points.shape[:2]
        per_frame = cells * POINTS * (2 * self.config.radius + 2) ** 2 * features.shape[-1]
        chunk = max(1, GATHER // max(per_frame, 1))
        return torch.cat([torch.cat([self._around(level[t:t + chunk], features[t:t + chunk],
                                                  points[t:t + chunk], size)
                                     for level in levels], -1)
                          for t in range(0, steps, chunk)])

    def _around(self, maps: torch.Tensor | Sequence[torch.Tensor], feature: torch.Tensor,
                points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(t, N, 3 · (2Δ+1)²) inner products of the features (t, N, C) with the frames' maps
        (C, h, w) at the (2Δ+1)² offsets of one map pixel around each point (t, N, 3, 2),
        image positions in an image of ``size``. The offsets are whole map pixels, so a
        point's offsets share its bilinear weights: the inner products are taken with the
        (2Δ+2)² pixels around the point, then interpolated (as ``grid_sample`` samples
        whole-map products, ``align_corners=False``, clamped at the border)."""
        channels, height, width = maps[0].shape
        where = (points + 0.5) * points.new_tensor([height / size[0], width / size[1]]) - 0.5
        corner = torch.floor(where)
        fy, fx = (where - corner)[..., None, None].unbind(-3)  # (t, N, 3, 1, 1) each
        steps = torch.arange(-self.config.radius, self.config.radius + 2, device=points.device)
        rows = (corner[..., :1].long() + steps).clamp_(0, height - 1)  # (t, N, 3, 2Δ+2)
        cols = (corner[..., 1:].long() + steps).clamp_(0, width - 1)
        index = rows[..., :, None] * width + cols[..., None, :]  # (t, N, 3, 2Δ+2, 2Δ+2)
        pixels = self._gather(maps, index.flatten(1))
        pairs = feature.reshape(-1, 1, channels)  # one row per frame and cell
        dots = torch.bmm(pairs, pixels.reshape(len(pairs), -1, channels).transpose(1, 2))
        dots = dots.reshape(index.shape) / math.sqrt(channels)
        dots = dots[..., :-1, :] * (1 - fy) + dots[..., 1:, :] * fy
        dots = dots[..., :-1] * (1 - fx) + dots[..., 1:] * fx
        return dots.flatten(2)

    @staticmethod
    def _gather(maps: torch.Tensor | Sequence[torch.Tensor], index: torch.Tensor
                ) -> torch.Tensor:
        """(t, K, C): the channels of the pixels ``index`` (t, K) (flat, row by row) of each
        frame's map (C, h, w); each map is read as an (h · w, C) table, a view of a map stored
        channels last (:meth:`pyramid`). Gathered in place, unless autograd needs the copies."""
        tables = [fmap.permute(1, 2, 0).reshape(-1, fmap.shape[0]) for fmap in maps]
        if torch.is_grad_enabled():  # training: an out= argument cannot be differentiated
            return torch.stack([table.index_select(0, at)
                                for table, at in zip(tables, index, strict=True)])
        pixels = tables[0].new_empty(*index.shape, tables[0].shape[1])
        for table, at, out in zip(tables, index, pixels, strict=True):
            torch.index_select(table, 0, at, out=out)
        return pixels

    def forward(self, frames: torch.Tensor | None, queries: torch.Tensor,
                features: torch.Tensor | Pyramid | None = None,
                iterations: int | None = None) -> CAPOutput:
        """Track ``queries`` (N, 2), positions in the window's first frame, through the window.

        Give either ``frames`` (T, 1, H, W) or their precomputed :meth:`features` or
        :meth:`pyramid` (kept per frame, they serve every window that holds the frame; see
        :data:`Pyramid`).
        """
        if features is None:
            assert frames is not None
            features = self.features(frames)
        levels = self.pyramid(features) if isinstance(features, torch.Tensor) else features
        first = levels[0][0]  # (C, h, w): the first frame at full resolution
        steps = len(levels[0])
        size = (first.shape[1] * STRIDE, first.shape[2] * STRIDE)
        cells = queries.shape[0]
        points = queries[None, :, None, :].expand(steps, cells, POINTS, 2).clone()
        feature = self._sample(first[None], queries[None], size)[0]  # (N, C)
        feature = feature[None].expand(steps, cells, -1).clone()
        timing = time_encoding(steps, self.config.hidden, first.device)[:, None]
        history = []
        for _ in range(iterations or self.config.iterations):
            points = points.detach()
            corr = self.correlation(levels, feature, points, size)
            relative = (points - queries[None, :, None]) / STRIDE
            visible = torch.sigmoid(self.visibility_head(feature)).detach()
            tokens = torch.cat([relative.flatten(2), visible, feature, corr], -1)
            x = self.embed(tokens) + timing  # (T, N, hidden)
            for time_layer, cross_layer in zip(self.time_layers, self.cross_layers, strict=True):
                x = time_layer(x.transpose(0, 1)).transpose(0, 1)
                x = cross_layer(x) if self.config.joint else \
                    cross_layer(x.transpose(0, 1)).transpose(0, 1)
            x = self.norm(x)
            points = points + self.point_head(x).reshape(steps, cells, POINTS, 2) * STRIDE
            feature = feature + self.feature_head(x)
            history.append(points)
        return CAPOutput(history, self.visibility_head(feature))


def load_checkpoint(path: str | Path) -> dict:
    """A saved CAP checkpoint (tensors and plain values only)."""
    return read_checkpoint(path, "CAP", kind="cap")


def network_from(state: dict) -> CAPNet:
    """The network of a checkpoint, in float32 and eval mode."""
    return build_network(state, lambda config: CAPNet(CAPConfig.from_dict(config)))  # type: ignore[return-value]


__all__ = ["PERCENTILES", "POINTS", "SPACING", "STRIDE", "CAPConfig", "CAPNet", "CAPOutput",
           "Pyramid", "load_checkpoint", "network_from", "time_encoding"]
