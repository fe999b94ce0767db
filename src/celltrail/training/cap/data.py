"""CAP's training data: tracking ground truth only (TRA marker centres and the lineage).

A sequence is loaded whole at the working scale (neighbouring cells
:data:`~celltrail.models.cap.SPACING` pixels apart). A training window is T_s frames of a crop;
with probability P_AEG its start is chosen by adaptive event-guided sampling (Sec. 3.1): a
division is picked and the window placed so that the mother before it and the daughters after
it both fall inside, around the mother. Otherwise the start and the crop are random. Crops are
rescaled, rotated, flipped and their intensities varied; with probability ``relief`` a window
is turned into a DIC-like relief (the derivative of the image in one random direction, as DIC
shows the gradient of the optical path length), so that fluorescence data also teaches the
model differential-interference-contrast images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from celltrail.core.errors import InputError
from celltrail.core.lineage import Lineage
from celltrail.core.sequence import normalise, open_sequence
from celltrail.io.ctc import read_tracking_gt
from celltrail.linking import measure
from celltrail.methods.cap.points import Trajectories, encode
from celltrail.methods.cap.tracker import spacing
from celltrail.models.cap import PERCENTILES, SPACING


@dataclass
class TrainingSequence:
    """A sequence at the working scale: ``frames`` (T, H, W) normalised (half precision),
    ``positions`` of every track by frame (working pixels), and its lineage."""

    name: str
    frames: torch.Tensor
    positions: dict[int, dict[int, np.ndarray]]
    lineage: Lineage

    @property
    def present(self) -> list[list[int]]:
        """Labels present in each frame."""
        out: list[list[int]] = [[] for _ in range(len(self.frames))]
        for label, where in self.positions.items():
            for t in where:
                out[t].append(label)
        return out

    @property
    def divisions(self) -> list[tuple[int, int]]:
        """(mother label, first frame of its daughters) of every division."""
        return [(mother, min(self.lineage[k].begin for k in kids))
                for mother, kids in self.lineage.divisions().items()]


def load_sequence(seq_dir: str | Path) -> TrainingSequence:
    """Images of a CTC sequence folder ``NN`` and the centres of its ``NN_GT/TRA`` markers."""
    seq_dir = Path(seq_dir)
    images = open_sequence(seq_dir)
    truth = read_tracking_gt(seq_dir.with_name(f"{seq_dir.name}_GT"))
    if len(truth.masks) != len(images):
        raise InputError(seq_dir, f"{len(images)} images but {len(truth.masks)} TRA frames")
    positions: dict[int, dict[int, np.ndarray]] = {}
    gaps = []
    for t, markers in enumerate(truth.masks):
        found = measure(np.asarray(markers))
        ids, centres = found.labels, found.centroids
        for label, centre in zip(ids.tolist(), centres, strict=True):
            positions.setdefault(label, {})[t] = centre
        if len(ids) >= 2:
            gaps.append(spacing(centres, 0.0))
    if not gaps:
        raise InputError(seq_dir, "needs frames with at least two cells to set the scale")
    scale = SPACING / float(np.median(gaps))
    height, width = images.shape
    size = (max(8, round(height * scale)), max(8, round(width * scale)))
    factor = np.array([size[0] / height, size[1] / width])
    frames = []
    for image in images:
        x = torch.from_numpy(normalise(np.asarray(image), PERCENTILES))[None, None]
        frames.append(F.interpolate(x, size=size, mode="bilinear", antialias=True,
                                    align_corners=False)[0, 0].half())
    working = {label: {t: ((p + 0.5) * factor - 0.5).astype(np.float32)
                       for t, p in where.items()} for label, where in positions.items()}
    return TrainingSequence(f"{seq_dir.parent.name}/{seq_dir.name}", torch.stack(frames),
                            working, truth.lineage)


@dataclass(frozen=True)
class SampleParams:
    """Window sampling: T_s frames, crop side (working pixels), P_AEG, at most ``max_cells``
    queries, scale jitter up to ×/÷ ``zoom``, chance of a DIC-like ``relief``."""

    length: int = 24
    crop: int = 160
    aeg: float = 0.5
    max_cells: int = 48
    zoom: float = 1.25
    relief: float = 0.0


@dataclass
class Window:
    """One training window: ``frames`` (T, 1, S, S), ``queries`` (N, 2) and the targets."""

    frames: torch.Tensor
    queries: torch.Tensor
    target: Trajectories


class Sampler:
    """Draws training windows from sequences, each as often as it has annotated cell
    positions (so every annotation counts alike)."""

    def __init__(self, sequences: list[TrainingSequence], params: SampleParams,
                 rng: np.random.Generator) -> None:
        if not sequences:
            raise InputError(None, "no training sequences")
        self.sequences, self.params, self.rng = sequences, params, rng
        self._present = [s.present for s in sequences]
        self._divisions = [s.divisions for s in sequences]
        counts = np.array([sum(map(len, present)) for present in self._present], float)
        self._weights = counts / counts.sum()

    def _start(self, i: int, length: int) -> tuple[int, int | None]:
        """Window start, and the dividing mother it was placed on (AEG) or None."""
        seq, n = self.sequences[i], len(self.sequences[i].frames)
        if self.rng.random() < self.params.aeg:
            placements = [(t, mother) for mother, born in self._divisions[i]
                          for t in range(max(0, born - length + 1), min(born, n - length + 1))
                          if t in seq.positions[mother]]
            if placements:
                return placements[self.rng.integers(len(placements))]
        return int(self.rng.integers(0, n - length + 1)), None

    def sample(self) -> Window:
        """A random window (resampled until it has a query cell)."""
        while True:
            window = self._try()
            if window is not None:
                return window

    def _try(self) -> Window | None:
        p, rng = self.params, self.rng
        i = int(rng.choice(len(self.sequences), p=self._weights))
        seq = self.sequences[i]
        length = min(p.length, len(seq.frames))
        start, mother = self._start(i, length)
        present = self._present[i][start]
        if not present:
            return None
        focus = mother if mother is not None else present[rng.integers(len(present))]
        zoom = math.exp(rng.uniform(-math.log(p.zoom), math.log(p.zoom)))
        side = p.crop / zoom
        origin = seq.positions[focus][start] - side / 2 + rng.uniform(-side / 4, side / 4, 2)

        def to_crop(points: np.ndarray) -> np.ndarray:
            return ((points + 0.5 - origin) * zoom - 0.5).astype(np.float32)

        inside = [label for label in present
                  if np.all((to_crop(seq.positions[label][start]) >= 0)
                            & (to_crop(seq.positions[label][start]) < p.crop))]
        if not inside:
            return None
        if len(inside) > p.max_cells:
            keep = set(rng.choice(len(inside), p.max_cells, replace=False).tolist())
            inside = [c for k, c in enumerate(inside) if k in keep or c == mother]
        target = encode(seq.positions, seq.lineage, inside, start, length)
        target.points = to_crop(target.points)
        outside = np.any((target.points < 0) | (target.points >= p.crop), axis=-1)
        target.visible &= ~outside
        target.point_valid &= ~outside
        frames = _crop(seq.frames[start:start + length].float(), origin, zoom, p.crop)
        frames, target = _turn(frames, target, int(rng.integers(4)), bool(rng.integers(2)))
        if p.relief and rng.random() < p.relief:
            frames = relief(frames, rng.uniform(0, 2 * math.pi))
        frames = _intensity(frames, rng)
        return Window(frames, torch.from_numpy(target.points[0, :, 0].copy()), target)


def _crop(frames: torch.Tensor, origin: np.ndarray, zoom: float, side: int) -> torch.Tensor:
    """(T, 1, side, side) crop of (T, H, W) frames from working position ``origin`` (top-left
    edge, y x), magnified by ``zoom``; borders repeat."""
    height, width = frames.shape[1:]
    c = torch.arange(side, dtype=torch.float32)
    ys = ((c + 0.5) / zoom + float(origin[0])) / height * 2 - 1
    xs = ((c + 0.5) / zoom + float(origin[1])) / width * 2 - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1)
    grid = grid[None].expand(len(frames), -1, -1, -1)
    return F.grid_sample(frames[:, None], grid, align_corners=False, padding_mode="border")


def _turn(frames: torch.Tensor, target: Trajectories, quarter_turns: int, flip: bool
          ) -> tuple[torch.Tensor, Trajectories]:
    """Rotate the crop by quarter turns (torch.rot90's sense), then mirror it left-right."""
    side = frames.shape[-1]
    points = target.points.copy()
    for _ in range(quarter_turns):
        points = np.stack([side - 1 - points[..., 1], points[..., 0]], -1)
    if flip:
        points[..., 1] = side - 1 - points[..., 1]
    frames = torch.rot90(frames, quarter_turns, dims=(-2, -1))
    if flip:
        frames = torch.flip(frames, dims=(-1,))
    target.points = points.astype(np.float32)
    return frames.contiguous(), target


def relief(frames: torch.Tensor, angle: float) -> torch.Tensor:
    """(T, 1, H, W) frames as a DIC-like relief: the central-difference derivative along
    ``angle``, scaled so that 99.5% of it falls in [0, 1] (background 0.5)."""
    dy = (torch.roll(frames, -1, -2) - torch.roll(frames, 1, -2)) / 2
    dx = (torch.roll(frames, -1, -1) - torch.roll(frames, 1, -1)) / 2
    g = math.sin(angle) * dy + math.cos(angle) * dx
    g[..., [0, -1], :] = 0
    g[..., :, [0, -1]] = 0
    spread = torch.quantile(g.abs().flatten(), 0.995).clamp(min=1e-6)
    return 0.5 + 0.5 * g / spread


def _intensity(frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Contrast, brightness and a gamma for the window, and noise per frame."""
    contrast, offset = rng.uniform(0.75, 1.33), rng.uniform(-0.1, 0.1)
    gamma = math.exp(rng.uniform(-0.3, 0.3))
    x = frames.clamp(min=0) ** gamma * contrast + offset
    noise = torch.from_numpy(rng.normal(0, rng.uniform(0, 0.05), x.shape).astype(np.float32))
    return x + noise
