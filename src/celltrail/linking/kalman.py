"""A constant-velocity Kalman filter on bounding boxes, batched over objects.

The state of a box is ``(cx, cy, a, h)`` (centre, aspect ratio w/h, height) and their velocities,
as in SORT/ByteTrack and SAMURAI, the motion model BoxTrack uses. Noise scales with the box
height, so the filter behaves the same for small and large cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Noise of position and velocity relative to the box height (SORT/ByteTrack's defaults).
POSITION_NOISE = 1.0 / 20
VELOCITY_NOISE = 1.0 / 160


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """``(x0, y0, x1, y1)`` rows to ``(cx, cy, w/h, h)`` rows."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """``(cx, cy, w/h, h)`` rows to ``(x0, y0, x1, y1)`` rows."""
    xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, 4)
    w = xyah[:, 2] * xyah[:, 3]
    h = xyah[:, 3]
    return np.stack([xyah[:, 0] - w / 2, xyah[:, 1] - h / 2,
                     xyah[:, 0] + w / 2, xyah[:, 1] + h / 2], axis=1)


@dataclass
class BoxKalman:
    """Kalman states of N boxes: ``mean`` (N, 8) and ``cov`` (N, 8, 8)."""

    mean: np.ndarray
    cov: np.ndarray

    _F = np.eye(8) + np.eye(8, k=4)  # x' = x + v (one frame)
    _H = np.eye(4, 8)

    @classmethod
    def start(cls, boxes: np.ndarray) -> BoxKalman:
        """New states at the given ``(x0, y0, x1, y1)`` boxes with zero velocity."""
        z = xyxy_to_xyah(boxes)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        h = z[:, 3]
        std = np.stack([2 * POSITION_NOISE * h, 2 * POSITION_NOISE * h, np.full_like(h, 1e-2),
                        2 * POSITION_NOISE * h, 10 * VELOCITY_NOISE * h, 10 * VELOCITY_NOISE * h,
                        np.full_like(h, 1e-5), 10 * VELOCITY_NOISE * h], axis=1)
        return cls(mean, _diag(std**2))

    def __len__(self) -> int:
        return len(self.mean)

    def boxes(self) -> np.ndarray:
        """The states' boxes as ``(x0, y0, x1, y1)`` rows."""
        return xyah_to_xyxy(self.mean[:, :4])

    def predict(self) -> None:
        """Advance every state by one frame."""
        h = self.mean[:, 3]
        std = np.stack([POSITION_NOISE * h, POSITION_NOISE * h, np.full_like(h, 1e-2),
                        POSITION_NOISE * h, VELOCITY_NOISE * h, VELOCITY_NOISE * h,
                        np.full_like(h, 1e-5), VELOCITY_NOISE * h], axis=1)
        self.mean = self.mean @ self._F.T
        self.cov = self._F @ self.cov @ self._F.T + _diag(std**2)

    def update(self, index: np.ndarray, boxes: np.ndarray) -> None:
        """Correct the states ``index`` with measured ``(x0, y0, x1, y1)`` boxes."""
        index = np.asarray(index, dtype=np.int64)
        if index.size == 0:
            return
        z = xyxy_to_xyah(boxes)
        mean, cov = self.mean[index], self.cov[index]
        h = mean[:, 3]
        r = _diag(np.stack([POSITION_NOISE * h, POSITION_NOISE * h, np.full_like(h, 1e-1),
                            POSITION_NOISE * h], axis=1) ** 2)
        s = self._H @ cov @ self._H.T + r
        gain = np.linalg.solve(s, self._H @ cov).transpose(0, 2, 1)  # cov H^T S^-1 (S symmetric)
        innovation = z - mean @ self._H.T
        self.mean[index] = mean + np.einsum("nij,nj->ni", gain, innovation)
        self.cov[index] = cov - gain @ self._H @ cov

    def take(self, index: np.ndarray) -> BoxKalman:
        """The states ``index`` as a new filter."""
        return BoxKalman(self.mean[index].copy(), self.cov[index].copy())

    def extend(self, other: BoxKalman) -> None:
        """Append the states of ``other``."""
        self.mean = np.concatenate([self.mean, other.mean])
        self.cov = np.concatenate([self.cov, other.cov])


def _diag(values: np.ndarray) -> np.ndarray:
    out = np.zeros((*values.shape, values.shape[-1]))
    idx = np.arange(values.shape[-1])
    out[..., idx, idx] = values
    return out
