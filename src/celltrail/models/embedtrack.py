"""EmbedTrack's network: a branched ERFNet over a pair of frames (t and t−1).

One shared ERFNet encoder runs on each frame separately. Per frame, two segmentation decoders
predict segmentation offsets and clustering bandwidths (4 channels) and the seediness (1
channel); one tracking decoder on the two frames' concatenated features predicts offsets from
the pixels at t to their cell centres at t−1. Offsets go through tanh, bandwidths and seediness
through sigmoid (Löffler & Mikut, Sec. 3.1). Positions and offsets are in units of
:data:`COORD_UNIT` pixels, so a model is independent of the crop or tile size it runs on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from celltrail.models.checkpoint import build_network, read_checkpoint

#: Pixels per unit of position and offset (the reference implementation's 1024-pixel grid).
COORD_UNIT = 1024.0
#: Input intensity percentiles that map to 0 and 1, per frame (Sec. 4.3 and 4.4).
PERCENTILES = (1.0, 99.0)
#: Bandwidth scale w_s: a cluster's bandwidth is exp(w_s · sigmoid output) (Sec. 3.2).
W_S = -10.0


@dataclass(frozen=True)
class EmbedTrackConfig:
    """Architecture sizes, saved with the weights. ``channels`` are ERFNet's (16, 64, 128)."""

    channels: tuple[int, int, int] = (16, 64, 128)
    dropout: float = 0.1

    def to_dict(self) -> dict[str, object]:
        return {"channels": list(self.channels), "dropout": self.dropout}

    @classmethod
    def from_dict(cls, values: dict) -> EmbedTrackConfig:
        return cls(tuple(int(c) for c in values["channels"]), float(values["dropout"]))


def _relu() -> Callable[[torch.Tensor], torch.Tensor]:
    """ReLU in place where no gradient is recorded (inference: 13% faster on a CPU, the same
    values), else out of place for autograd."""
    return F.relu if torch.is_grad_enabled() else F.relu_


def _fold(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d, transpose: bool = False
          ) -> None:
    """Fold batch norm ``bn`` (eval mode) into the weights and bias of ``conv``, which it
    follows, in place (the tensors stay where they are: on the network's device)."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    conv.weight.mul_(scale.reshape((1, -1, 1, 1) if transpose else (-1, 1, 1, 1)))
    conv.bias.sub_(bn.running_mean).mul_(scale).add_(bn.bias)


class _Downsampler(nn.Module):
    """ERFNet's downsampler: a strided 3×3 convolution beside a max-pool, concatenated."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout - cin, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _relu()(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class _NonBottleneck1D(nn.Module):
    """ERFNet's residual block of factorised (3×1, 1×3) convolutions, the second pair dilated."""

    def __init__(self, channels: int, dropout: float, dilation: int) -> None:
        super().__init__()
        d = dilation
        self.conv1 = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0))
        self.conv2 = nn.Conv2d(channels, channels, (1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(channels, eps=1e-3)
        self.conv3 = nn.Conv2d(channels, channels, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.conv4 = nn.Conv2d(channels, channels, (1, 3), padding=(0, d), dilation=(1, d))
        self.bn2 = nn.BatchNorm2d(channels, eps=1e-3)
        self.drop = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu = _relu()
        y = relu(self.conv1(x))
        y = relu(self.bn1(self.conv2(y)))
        y = relu(self.conv3(y))
        y = self.drop(self.bn2(self.conv4(y)))
        return relu(y.add_(x) if relu is F.relu_ else y + x)

    def fold(self) -> None:
        """Fold each batch norm into the convolution before it (inference only)."""
        _fold(self.conv2, self.bn1)
        _fold(self.conv4, self.bn2)
        self.bn1, self.bn2 = nn.Identity(), nn.Identity()


class _Upsampler(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _relu()(self.bn(self.conv(x)))

    def fold(self) -> None:
        """Fold the batch norm into the transposed convolution (inference only)."""
        _fold(self.conv, self.bn, transpose=True)
        self.bn = nn.Identity()


class _Encoder(nn.Sequential):
    def __init__(self, c: tuple[int, int, int], dropout: float) -> None:
        layers: list[nn.Module] = [_Downsampler(1, c[0]), _Downsampler(c[0], c[1])]
        layers += [_NonBottleneck1D(c[1], dropout / 10, 1) for _ in range(5)]
        layers.append(_Downsampler(c[1], c[2]))
        layers += [_NonBottleneck1D(c[2], dropout, d) for _ in range(2) for d in (2, 4, 8, 16)]
        super().__init__(*layers)


class _Decoder(nn.Sequential):
    def __init__(self, cin: int, c: tuple[int, int, int], outputs: int) -> None:
        super().__init__(
            _Upsampler(cin, c[1]), _NonBottleneck1D(c[1], 0.0, 1), _NonBottleneck1D(c[1], 0.0, 1),
            _Upsampler(c[1], c[0]), _NonBottleneck1D(c[0], 0.0, 1), _NonBottleneck1D(c[0], 0.0, 1),
            nn.ConvTranspose2d(c[0], outputs, 2, stride=2),
        )


class EmbedTrackNet(nn.Module):
    """Branched ERFNet. Inputs are (B, 1, H, W) normalised frames, H and W multiples of 8."""

    def __init__(self, config: EmbedTrackConfig | None = None) -> None:
        super().__init__()
        self.config = config or EmbedTrackConfig()
        c = self.config.channels
        self.encoder = _Encoder(c, self.config.dropout)
        self.offset_bandwidth = _Decoder(c[2], c, 4)
        self.seediness = _Decoder(c[2], c, 1)
        self.tracking = _Decoder(2 * c[2], c, 2)

    def init_output(self, cell_radius: float) -> None:
        """Start with zero offsets (every pixel its own centre) and a bandwidth whose 0.5-score
        contour is ``cell_radius`` pixels, as Neven et al.'s reference initialises the outputs:
        gradients then reach the offsets of every cell from the first step."""
        s = (cell_radius / COORD_UNIT) ** 2 / math.log(2.0)
        sigma = min(max(math.log(s) / W_S, 0.01), 0.99)
        with torch.no_grad():
            for decoder, channels in ((self.offset_bandwidth, slice(0, 4)),
                                      (self.tracking, slice(0, 2))):
                output = decoder[-1]
                output.weight[:, channels].zero_()
                output.bias[channels].zero_()
            self.offset_bandwidth[-1].bias[2:4] = math.log(sigma / (1.0 - sigma))

    def fold_batchnorm(self) -> EmbedTrackNet:
        """This network in eval mode with its batch norms folded into the convolutions before
        them: the same outputs (to float rounding) with fewer passes over the feature maps
        (for inference; the downsamplers' norms, which also follow a max-pool, stay)."""
        self.eval()
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (_NonBottleneck1D, _Upsampler)):
                    module.fold()
        return self

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Encoder features of one frame (stride 8)."""
        return self.encoder(image)

    def segment(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 5, H, W): offsets (y, x; tanh), bandwidths (y, x; sigmoid), seediness (sigmoid)."""
        ob = self.offset_bandwidth(features)
        return torch.cat([torch.tanh(ob[:, :2]), torch.sigmoid(ob[:, 2:]),
                          torch.sigmoid(self.seediness(features))], 1)

    def track(self, features: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """(B, 2, H, W) offsets (y, x; tanh) from pixels at t to their cell centre at t−1."""
        return torch.tanh(self.tracking(torch.cat([features, previous], 1)))

    def forward(self, image: torch.Tensor, previous: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Segmentation of t, segmentation of t−1, tracking offsets t → t−1."""
        f, g = self.encode(image), self.encode(previous)
        return self.segment(f), self.segment(g), self.track(f, g)


def pixel_grid(height: int, width: int, origin: tuple[float, float] = (0.0, 0.0),
               device: torch.device | None = None) -> torch.Tensor:
    """(2, H, W) pixel positions (y, x) in units of :data:`COORD_UNIT`, from ``origin``, on
    ``device``."""
    ys = (torch.arange(height, dtype=torch.float32, device=device) + origin[0]) / COORD_UNIT
    xs = (torch.arange(width, dtype=torch.float32, device=device) + origin[1]) / COORD_UNIT
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"))


def load_checkpoint(path: str | Path) -> dict:
    """A saved EmbedTrack checkpoint (tensors and plain values only)."""
    return read_checkpoint(path, "EmbedTrack", kind="embedtrack")


def network_from(state: dict) -> EmbedTrackNet:
    """The network of a checkpoint, in float32 and eval mode."""
    return build_network(state, lambda config: EmbedTrackNet(EmbedTrackConfig.from_dict(config)))  # type: ignore[return-value]


__all__ = ["COORD_UNIT", "PERCENTILES", "W_S", "EmbedTrackConfig", "EmbedTrackNet",
           "load_checkpoint", "network_from", "pixel_grid"]
