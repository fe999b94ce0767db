"""Per-frame object measurements (centroid, area) and relabelling of a label image.

One pass over the foreground pixels with ``np.bincount`` (and ``np.unique`` when the labels are
sparse or negative): cheaper than ``regionprops`` when only centroids and areas are needed, and it
accepts any label values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameObjects:
    """The objects of one label frame, in increasing input-label order."""

    labels: np.ndarray  #: (n,) input labels
    centroids: np.ndarray  #: (n, ndim) centroids in pixels, array-index order
    areas: np.ndarray  #: (n,) pixel counts
    shape: tuple[int, ...]
    foreground: np.ndarray  #: flat indices of the foreground pixels
    index: np.ndarray  #: object index (into ``labels``) of every foreground pixel

    def __len__(self) -> int:
        return len(self.labels)

    def relabel(self, new_labels: np.ndarray) -> np.ndarray:
        """The frame with object ``k`` painted as ``new_labels[k]`` (0 is background)."""
        dtype = np.uint16 if new_labels.max(initial=0) < 2**16 else np.uint32
        out = np.zeros(int(np.prod(self.shape)), dtype=dtype)
        out[self.foreground] = np.asarray(new_labels, dtype=dtype)[self.index]
        return out.reshape(self.shape)


def measure(frame: np.ndarray) -> FrameObjects:
    """Centroid and area of every labelled object of an integer label image."""
    frame = np.asarray(frame)
    if frame.dtype.kind not in "iu":
        raise TypeError(f"label frames must be integer images, got dtype {frame.dtype}")
    flat = frame.ravel()
    foreground = np.flatnonzero(flat)
    values = flat[foreground]
    if values.size and values.min() >= 0 and values.max() <= flat.size:  # count, no sorting
        present = np.bincount(values) > 0
        labels = np.flatnonzero(present).astype(frame.dtype)
        index = (np.cumsum(present) - 1)[values]
    else:
        labels, index = np.unique(values, return_inverse=True)
    areas = np.bincount(index, minlength=len(labels)).astype(np.float64)
    coords = np.unravel_index(foreground, frame.shape)
    centroids = np.stack(
        [np.bincount(index, weights=c, minlength=len(labels)) for c in coords], axis=1
    ).reshape(len(labels), frame.ndim)
    if len(labels):
        centroids /= areas[:, None]
    return FrameObjects(labels, centroids, areas, frame.shape, foreground, index)


def equivalent_diameters(areas: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Diameter of the disc (2D) or ball (3D) of the same pixel count."""
    if ndim == 3:
        return 2.0 * np.cbrt(3.0 * areas / (4.0 * np.pi))
    return 2.0 * np.sqrt(areas / np.pi)
