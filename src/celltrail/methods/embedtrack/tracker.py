"""EmbedTrack inference: tiled network predictions, clustering, then backward linking.

Each frame is normalised (percentiles 1–99), cut into overlapping tiles, and run through the
network; a tile's features are kept for the next frame's tracking decoder, so every frame is
encoded once. With test-time augmentation each tile is also run rotated and flipped (the eight
symmetries of the square) and the outputs are averaged after undoing the symmetry, vectors
included (Sec. 4.4). Tiles are stitched by keeping each tile's interior.

A scale-normalised model (a generalist, whose checkpoint keeps ``canonical_diameter``) runs on
frames resized by canonical / cell diameter: the diameter given, else the one the model itself
measures on the first frame (:mod:`celltrail.methods.embedtrack.size`), else the classical blob
estimate; its masks are resized back (nearest neighbour) to the input's shape. Other models run
at the input's own scale.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from math import ceil
from typing import Any

import numpy as np
import torch
from skimage.transform import resize

from celltrail.core.lineage import lineage_from_presence, present
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence, normalise
from celltrail.methods.base import Tracker
from celltrail.methods.classical.tracker import fix_sequence_scale
from celltrail.methods.embedtrack.clustering import cluster
from celltrail.methods.embedtrack.linking import BackwardLinker
from celltrail.methods.embedtrack.options import EmbedTrackOptions
from celltrail.methods.embedtrack.size import network_diameter, rescaled
from celltrail.models.device import resolve_device
from celltrail.models.embedtrack import PERCENTILES, EmbedTrackNet, load_checkpoint, network_from
from celltrail.models.zoo import model_path
from celltrail.segmentation.classical import AUTO, Segmenter

#: The eight symmetries of the square as (quarter turns, flip); the first is the identity.
SYMMETRIES = tuple((k, flip) for flip in (False, True) for k in range(4))
#: Channels that hold (y, x) vectors (offsets) and (y, x) per-axis values (bandwidths) in the
#: stacked output: segmentation offsets 0–1, bandwidths 2–3, seediness 4, tracking offsets 5–6.
VECTORS, AXES = ((0, 1), (5, 6)), ((2, 3),)


def apply_symmetry(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Rotate the last two dims by ``k`` quarter turns, then mirror left-right if ``flip``."""
    x = torch.rot90(x, k, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x


def undo_symmetry(out: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Map (…, 7, H, W) outputs predicted on a transformed tile back to the original frame:
    positions and the components of vectors and per-axis bandwidths."""
    out = out.clone()
    if flip:
        out = torch.flip(out, dims=(-1,))
        for _, x in VECTORS:
            out[..., x, :, :] = -out[..., x, :, :]
    out = torch.rot90(out, -k, dims=(-2, -1))
    for _ in range(k % 4):  # a quarter turn maps (dy, dx) to (−dx, dy); undo it
        for y, x in VECTORS:
            out[..., [y, x], :, :] = torch.stack([out[..., x, :, :], -out[..., y, :, :]], -3)
        for y, x in AXES:
            out[..., [y, x], :, :] = out[..., [x, y], :, :]
    return out


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of size ``tile`` that cover ``length`` and overlap by at least
    ``overlap``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def tile_side(height: int, width: int, largest: int, overlap: int) -> int:
    """Side of the square tiles of a frame (a multiple of 8, at most ``largest`` when that is
    one): as many tiles per axis as tiles of ``largest`` need, each only as big as that many
    need, so a frame a little over ``largest`` takes two tiles of about half of it a side,
    not two of ``largest``."""
    side = 0
    for length in (height, width):
        n = 1 if length <= largest else ceil((length - overlap) / (largest - overlap))
        side = max(side, ceil((length + (n - 1) * overlap) / n))
    return side + -side % 8


def _interior(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """The part of each tile to keep: from midway into the overlap before to midway into the
    overlap after."""
    bounds = []
    for i, start in enumerate(starts):
        lo = 0 if i == 0 else (starts[i - 1] + tile + start) // 2
        hi = length if i == len(starts) - 1 else (start + tile + starts[i + 1]) // 2
        bounds.append((lo, hi))
    return bounds


class EmbedTracker(Tracker):
    """Segment and track with a trained EmbedTrack model (a name or a path) on the options'
    device. ``tile`` and ``overlap`` set the tiles frames are cut into (pixels)."""

    name = "embedtrack"
    Options = EmbedTrackOptions

    def __init__(self, options: EmbedTrackOptions | None = None, *, tile: int = 1024,
                 overlap: int = 64, **values: Any) -> None:
        super().__init__(options, **values)
        self.device = resolve_device(self.options.device)
        state = load_checkpoint(model_path("embedtrack", self.options.model))
        # channels-last: its convolutions ran 1.3x faster on CPU (512² tile, 2 threads), the
        # outputs within 2e-7 of the default layout; batch norms folded into the convolutions
        # (in place, on the device)
        self.net: EmbedTrackNet = network_from(state).to(self.device).fold_batchnorm().to(
            memory_format=torch.channels_last)
        self.min_size = int(state["min_size"])
        canonical = state.get("canonical_diameter")
        self.canonical = None if canonical is None else float(canonical)
        #: a scale-normalised model's cell diameter in the last sequence, and where it came from
        self.diameter: tuple[float, str] | None = None
        self.tta, self.tile, self.overlap = self.options.tta, tile, overlap
        self._previous: dict[tuple[int, int, int, bool], torch.Tensor] = {}

    def _run_tile(self, tile: torch.Tensor, key: tuple[int, int]) -> torch.Tensor:
        """(7, h, w) averaged outputs for one (1, 1, h, w) tile; tracking offsets are zero on a
        first frame."""
        outputs = []
        for k, flip in SYMMETRIES if self.tta else SYMMETRIES[:1]:
            features = self.net.encode(apply_symmetry(tile, k, flip).contiguous(
                memory_format=torch.channels_last))
            seg = self.net.segment(features)
            previous = self._previous.get((*key, k, flip))
            track = (torch.zeros_like(seg[:, :2]) if previous is None
                     else self.net.track(features, previous))
            self._previous[(*key, k, flip)] = features
            outputs.append(undo_symmetry(torch.cat([seg, track], 1)[0], k, flip))
        return torch.stack(outputs).mean(0)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """(7, H, W) predictions for the next frame of a sequence: segmentation offsets (2),
        bandwidths (2), seediness, tracking offsets to the previous frame given (2)."""
        x = torch.from_numpy(normalise(image, PERCENTILES)).to(self.device)
        height, width = x.shape
        tile = tile_side(height, width, self.tile, self.overlap)
        out = np.zeros((7, height, width), dtype=np.float32)
        rows, cols = tile_starts(height, tile, self.overlap), tile_starts(width, tile, self.overlap)
        with torch.no_grad():
            for r, (r0, r1) in zip(rows, _interior(rows, tile, height), strict=True):
                for c, (c0, c1) in zip(cols, _interior(cols, tile, width), strict=True):
                    window = x[r:r + tile, c:c + tile]
                    pad = (0, tile - window.shape[1], 0, tile - window.shape[0])
                    window = torch.nn.functional.pad(window[None, None], pad, mode="reflect"
                                                     if max(pad) < min(window.shape) else
                                                     "constant")
                    pred = self._run_tile(window, (r, c)).cpu().numpy()
                    out[:, r0:r1, c0:c1] = pred[:, r0 - r:r1 - r, c0 - c:c1 - c]
        return out

    def first_frame(self, image: np.ndarray) -> np.ndarray:
        """:meth:`predict` for ``image`` alone, as a first frame; nothing is kept for the next."""
        self._previous.clear()
        try:
            return self.predict(image)
        finally:
            self._previous.clear()

    def scale_of(self, images: ImageSequence) -> float:
        """Factor every frame is resized by: canonical / cell diameter for a scale-normalised
        model, else 1. The diameter is the one given, else the one the model itself measures
        on the first frame (:mod:`~celltrail.methods.embedtrack.size`), else the classical
        blob estimate; with neither the run stops, naming both reasons."""
        if self.canonical is None or not len(images):
            return 1.0
        self.diameter = None
        if self.options.diameter is not None:
            self.diameter = (float(self.options.diameter), "given")
            return self.canonical / self.diameter[0]
        try:
            self.diameter = network_diameter(self, np.asarray(images[0]))
        except ValueError as unsure:
            segmenter = Segmenter(AUTO, fallback=partial(_raise, unsure))
            blob = fix_sequence_scale(segmenter, images)
            self.diameter = (blob, f"{segmenter.scale.diameter_from}; {unsure}")
        return self.canonical / self.diameter[0]

    def settings(self) -> dict[str, str]:
        """Method and, for a scale-normalised model, the cell diameter used and its source."""
        if self.diameter is None:
            return {"method": self.name}
        return {"method": self.name, "diameter": f"{self.diameter[0]:.1f} px "
                                                 f"({self.diameter[1]})"}

    def run(self, images: ImageSequence, prompts: None, store: MaskStore,
            on_frame: Callable[[int], None]) -> TrackingResult:
        """Segment and link every frame; masks go to ``store`` as they are final."""
        self._previous.clear()
        scale = self.scale_of(images)
        linker = BackwardLinker()
        presence: dict[int, list[int]] = {}
        for t in range(len(images)):
            frame = np.asarray(images[t])
            prediction = self.predict(rescaled(frame, scale))
            labels = cluster(prediction[:5], self.min_size)
            mask = linker.step(labels, prediction[5:] if t else None)
            if mask.shape != frame.shape:
                mask = resize(mask, frame.shape, order=0, preserve_range=True,
                              anti_aliasing=False).astype(mask.dtype)
            for label in present(mask):
                presence.setdefault(label, []).append(t)
            store.append(mask)
            on_frame(t)
        lineage, _ = lineage_from_presence(presence, linker.parents)
        return TrackingResult(store, lineage)


def _raise(error: ValueError, image: np.ndarray) -> tuple[float, str]:
    """A size fallback that has already failed (``error``)."""
    raise error
