"""Masks of single objects stored as small patches, so hundreds of cells cost little memory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class Patch:
    """A boolean mask whose pixel ``(0, 0)`` lies at image position ``(top, left)``."""

    top: int
    left: int
    mask: np.ndarray

    @classmethod
    def from_mask(cls, mask: np.ndarray, top: int = 0, left: int = 0) -> Patch:
        """The patch trimmed to the bounding box of ``mask``'s true pixels (empty if none)."""
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return cls(top, left, np.zeros((0, 0), dtype=bool))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        return cls(top + int(r0), left + int(c0), mask[r0:r1, c0:c1].astype(bool))

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def box(self) -> np.ndarray:
        """Bounding box ``(x0, y0, x1, y1)`` of the patch (exclusive ends)."""
        h, w = self.mask.shape
        return np.array([self.left, self.top, self.left + w, self.top + h], dtype=np.float64)

    def centroid(self) -> np.ndarray:
        """``(x, y)`` centre of mass."""
        ys, xs = np.nonzero(self.mask)
        return np.array([self.left + xs.mean(), self.top + ys.mean()])

    def shifted(self, dy: float, dx: float) -> Patch:
        return Patch(self.top + round(float(dy)), self.left + round(float(dx)), self.mask)

    def clip(self, shape: tuple[int, int]) -> Patch:
        """The part inside an image of ``shape``."""
        r0, c0 = max(0, -self.top), max(0, -self.left)
        r1 = min(self.mask.shape[0], shape[0] - self.top)
        c1 = min(self.mask.shape[1], shape[1] - self.left)
        if r1 <= r0 or c1 <= c0:
            return Patch(0, 0, np.zeros((0, 0), dtype=bool))
        return Patch.from_mask(self.mask[r0:r1, c0:c1], self.top + r0, self.left + c0)

    def components(self) -> list[Patch]:
        """Connected parts, largest first."""
        labels, n = ndi.label(self.mask)
        parts = [Patch.from_mask(labels == i, self.top, self.left) for i in range(1, n + 1)]
        return sorted(parts, key=lambda p: -p.area)

    def view(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(image window, mask window)`` of the part inside ``image``, aligned."""
        p = self.clip(image.shape[:2])
        h, w = p.mask.shape
        return image[p.top:p.top + h, p.left:p.left + w], p.mask


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each ``(x0, y0, x1, y1)`` row of ``a`` with the matching row of ``b``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    return inter / np.maximum(_box_area(a) + _box_area(b) - inter, 1e-9)


def _box_area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
