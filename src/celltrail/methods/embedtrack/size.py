"""The cell diameter a scale-normalised EmbedTrack model measures in a frame.

Cellpose lets its segmenter size the cells; here the generalist does it without a regressor.
A scale-normalised model segments cells of its canonical size; shown a frame resized as if its
cells were ``d`` pixels wide, it returns instances whose median diameter, back in frame pixels,
is ``m(d)``. Where ``d`` is too small the cells look too big to the model and it cuts them
into canonical pieces or misses them (``m(d) < d`` or nothing); where ``d`` is too large it
sees the cells shrunk and ``m(d)`` lags behind ``d``; at the cells' true size ``m(d) = d``,
crossed from above: a stable fixed point of the model's own measurement. Candidates run in
half-octave steps from ``SMALLEST`` to half the frame; of several fixed points the one whose
instances have the surest seeds wins; the answer is the median diameter measured there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from skimage.transform import resize

from celltrail.methods.embedtrack.options import DEFAULT_MODEL

if TYPE_CHECKING:
    from celltrail.methods.embedtrack.tracker import EmbedTracker

#: Smallest candidate diameter (pixels: a cell of 8 px covers 50 pixels, about the fewest a
#: segmenter tells from noise) and the step between candidates (half an octave).
SMALLEST, STEP = 8.0, float(np.sqrt(2.0))
#: At each candidate the frame's centre is cut to at most this many model pixels a side, so
#: every candidate costs about one 512² pass.
SIDE = 512
#: Fewer instances than this give no typical size.
MIN_CELLS = 3


@dataclass(frozen=True)
class Reading:
    """What the model found in a frame resized for cells of ``assumed`` pixels."""

    assumed: float
    diameter: float  #: median equivalent diameter of its instances, in frame pixels
    cells: int
    seed: float  #: mean of each instance's highest seediness

    @property
    def ratio(self) -> float:
        return self.diameter / self.assumed


def rescaled(frame: np.ndarray, scale: float) -> np.ndarray:
    """``frame`` resized by ``scale`` (linear, anti-aliased when shrinking); unchanged at 1."""
    if scale == 1.0:
        return frame
    shape = tuple(max(8, round(n * scale)) for n in frame.shape)
    if shape == frame.shape:
        return frame
    return resize(frame.astype(np.float32), shape, order=1, anti_aliasing=scale < 1,
                  preserve_range=True).astype(np.float32)


def read_at(tracker: EmbedTracker, image: np.ndarray, assumed: float) -> Reading:
    """Segment the centre of ``image`` with ``tracker``'s scale-normalised network, resized as
    if its cells were ``assumed`` pixels wide."""
    # imported here: the classical method imports this module, and should not import torch
    # before a frame needs the network
    from celltrail.methods.embedtrack.clustering import cluster

    canonical = float(tracker.canonical)
    side = int(np.ceil(SIDE * assumed / canonical))
    top, left = (max(0, (n - side) // 2) for n in image.shape)
    crop = np.asarray(image[top:top + side, left:left + side], dtype=np.float32)
    prediction = tracker.first_frame(rescaled(crop, canonical / assumed))
    labels = cluster(prediction[:5], tracker.min_size)
    areas = np.bincount(labels.ravel())[1:]
    if areas.size < MIN_CELLS:
        return Reading(assumed, 0.0, int(areas.size), 0.0)
    seeds = np.zeros(areas.size)
    np.maximum.at(seeds, labels[labels > 0] - 1, prediction[4][labels > 0])
    diameter = float(np.median(np.sqrt(4 * areas / np.pi))) * assumed / canonical
    return Reading(assumed, diameter, int(areas.size), float(seeds.mean()))


def fixed_points(readings: list[Reading]) -> list[float]:
    """Diameters where the measured size crosses the assumed one from above, interpolated
    log-linearly, best seeds first."""
    found = []
    for a, b in pairwise(readings):
        if min(a.cells, b.cells) >= MIN_CELLS and a.ratio >= 1 > b.ratio:
            t = np.log(a.ratio) / (np.log(a.ratio) - np.log(b.ratio))
            found.append((a.seed + b.seed, float(a.assumed * (b.assumed / a.assumed) ** t)))
    return [d for _, d in sorted(found, reverse=True)]


def network_diameter(tracker: EmbedTracker, image: np.ndarray) -> tuple[float, str]:
    """The cell diameter ``tracker``'s scale-normalised network measures in ``image`` and how;
    raises ValueError when it finds no fixed point."""
    image = np.asarray(image)
    top = min(image.shape) / 2
    candidates = SMALLEST * STEP ** np.arange(int(np.log(top / SMALLEST) / np.log(STEP)) + 1)
    readings = [read_at(tracker, image, float(d)) for d in candidates]
    name = Path(tracker.options.model).stem
    for assumed in fixed_points(readings):
        reading = read_at(tracker, image, assumed)
        if reading.cells >= MIN_CELLS:
            return reading.diameter, (f"measured by the network {name!r} on the first frame "
                                      f"({reading.cells} cells)")
    raise ValueError(f"the network {name!r} finds no size at which the cells it segments "
                     "match the size it assumes")


@cache
def _generalist() -> EmbedTracker:
    from celltrail.methods.embedtrack.tracker import EmbedTracker

    return EmbedTracker(model=DEFAULT_MODEL)


def generalist_diameter(image: np.ndarray) -> tuple[float, str]:
    """The cell diameter the shipped generalist measures in ``image`` (see the module)."""
    return network_diameter(_generalist(), image)
