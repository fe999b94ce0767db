"""Synthetic time-lapse sequences with exact ground truth, written in the CTC layout.

Cells live on a torus larger than the field of view (a margin of a few diameters on each side),
so they enter and leave the view naturally while the density stays constant on average. Each
step moves cells (a persistent random walk), keeps neighbours from overlapping by more than a set
fraction, and runs mitosis and apoptosis. Every output frame is drawn back to front, which gives
one label image used for both the TRA markers and the SEG masks.

Tracks follow the CTC rules: a track is a run of frames in which the cell is visible (at least a
few pixels in view and not hidden by neighbours). A cell hidden by a neighbour that shows up
again starts a new track whose parent is the interrupted one (a declared gap); a cell that left
the view and comes back starts a new track without parent; daughters begin after their mother's
last frame and name her as parent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tifffile

from celltrail.core.lineage import Lineage, Track
from celltrail.core.result import mask_dtype
from celltrail.io.atomic import atomic_dir
from celltrail.io.ctc import frame_digits, write_man_track
from celltrail.simulate.imaging import DTYPES, MODALITIES, Renderer, Shape

_INTERPHASE, _MITOSIS, _APOPTOSIS = 0, 1, 2


@dataclass
class SimParams:
    """Parameters of a synthetic sequence. Rates are per cell per frame; lengths in pixels."""

    frames: int = 50
    size: int | tuple[int, int] = 256  #: frame side, or (height, width)
    cells: int = 30  #: cells in view at the start; the density is cells / frame area
    modality: str = "fluo-nuclei"  #: one of MODALITIES
    dtype: str = "uint8"  #: "uint8" or "uint16" (12-bit range)
    cell_diameter: float = 24.0  #: mean diameter
    size_variation: float = 0.15  #: s.d. of log cell radius
    irregularity: float = 1.0  #: outline wobble (0 gives discs)
    displacement: float = 0.1  #: mean displacement per frame, in cell diameters
    persistence: float = 0.7  #: frame-to-frame velocity correlation (0 = pure random walk)
    division_rate: float = 0.01  #: chance per frame that an interphase cell enters mitosis
    apoptosis_rate: float = 0.002  #: chance per frame that an interphase cell starts dying
    mitosis_frames: int = 3  #: frames the mother spends rounded up before dividing
    apoptosis_frames: int = 4  #: frames a dying cell takes to shrink away
    overlap: float = 0.15  #: how far neighbours may overlap, as a fraction of their radii sum
    noise: float = 1.0  #: noise level relative to the default (0 = noise-free)
    blur: float = 1.0  #: optical blur (Gaussian sigma, pixels)
    bleaching: float = 0.005  #: fluorescence photobleaching rate per frame
    illumination: float = 0.3  #: unevenness of the illumination (0 = flat)

    @property
    def shape(self) -> tuple[int, int]:
        """Frame (height, width)."""
        if isinstance(self.size, (int, np.integer)):
            return int(self.size), int(self.size)
        height, width = self.size
        return int(height), int(width)

    def validate(self) -> None:
        """Raise ValueError naming the first invalid parameter."""
        _check(isinstance(self.frames, int) and self.frames >= 1, "frames must be an integer >= 1")
        try:
            height, width = self.shape
        except (TypeError, ValueError):
            raise ValueError(
                f"size must be an integer or (height, width), not {self.size!r}") from None
        _check(min(height, width) >= 16, f"size must be at least 16 pixels, not {self.size!r}")
        _check(isinstance(self.cells, int) and self.cells >= 0, "cells must be an integer >= 0")
        _check(self.modality in MODALITIES,
               f"modality must be one of {', '.join(MODALITIES)}, not {self.modality!r}")
        _check(self.dtype in DTYPES,
               f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        _check(4 <= self.cell_diameter <= min(height, width) / 2,
               f"cell_diameter must be between 4 and half the frame size, not {self.cell_diameter}")
        for name in ("size_variation", "irregularity", "displacement", "noise", "blur",
                     "bleaching"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, not {getattr(self, name)}")
        _check(self.size_variation <= 0.5, "size_variation must be <= 0.5")
        _check(self.irregularity <= 3, "irregularity must be <= 3")
        _check(0 <= self.persistence < 1, "persistence must be in [0, 1)")
        _check(0 <= self.overlap < 0.5, "overlap must be in [0, 0.5)")
        _check(0 <= self.illumination < 1, "illumination must be in [0, 1)")
        _check(self.division_rate >= 0 and self.apoptosis_rate >= 0,
               "division_rate and apoptosis_rate must be >= 0")
        _check(self.division_rate + self.apoptosis_rate <= 0.5,
               "division_rate + apoptosis_rate must be <= 0.5 per frame")
        _check(self.mitosis_frames >= 1 and self.apoptosis_frames >= 1,
               "mitosis_frames and apoptosis_frames must be >= 1")
        area = height * width * self.cells * math.pi * (self.cell_diameter / 2) ** 2
        _check(area <= 0.9 * (height * width) ** 2,
               f"{self.cells} cells of diameter {self.cell_diameter} cannot fit in {height}x{width}"
               " frames (they would cover more than 90% of the image)")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass
class _Cell:
    """State of one simulated cell (domain coordinates, pixels)."""

    pos: np.ndarray
    vel: np.ndarray
    target: float  # interphase radius the cell grows to
    radius: float
    base_amps: np.ndarray  # its interphase outline; `amps` relaxes towards it
    amps: np.ndarray
    phases: np.ndarray
    brightness: float
    glow: float = 1.0  # brightening during mitosis and apoptosis
    texture_offset: tuple[int, int] = (0, 0)
    state: int = _INTERPHASE
    timer: int = 0
    track: int = 0  # current track label, 0 while not visible
    link: int = 0  # parent of the next track it starts


class _World:
    """The cell population and its dynamics; uses only its own random generator."""

    def __init__(self, params: SimParams, rng: np.random.Generator) -> None:
        self.p = params
        self.rng = rng
        height, width = params.shape
        self.margin = math.ceil(2.5 * params.cell_diameter)
        self.domain = (height + 2 * self.margin, width + 2 * self.margin)
        self.sigma = params.displacement * params.cell_diameter / math.sqrt(math.pi / 2)
        # `cells` counts labelled objects, and cells whose centre lies just outside the view
        # still show a labelled part: place them in the view grown by that rim, then the rest of
        # the domain at the same density.
        self.rim = 0.4 * params.cell_diameter
        seen_area = (height + 2 * self.rim) * (width + 2 * self.rim)
        outside = round(params.cells * (self.domain[0] * self.domain[1] / seen_area - 1))
        self.cells: list[_Cell] = []
        for inside, count in ((True, params.cells), (False, outside)):
            for _ in range(count):
                self.cells.append(self._new_cell(self._free_position(inside)))
        for _ in range(10):
            self._separate()

    def _new_cell(self, pos: np.ndarray) -> _Cell:
        p, rng = self.p, self.rng
        factor = math.exp(float(rng.normal(0.0, p.size_variation)))
        target = p.cell_diameter / 2 * min(max(factor, 0.6), 1.6)
        amps = p.irregularity * rng.uniform(0.0, 1.0, 3) * np.array([0.18, 0.05, 0.03])
        return _Cell(
            pos=pos,
            vel=rng.normal(0.0, self.sigma, 2),
            target=target,
            radius=target,
            base_amps=amps,
            amps=amps.copy(),
            phases=rng.uniform(0, 2 * np.pi, 3),
            brightness=float(np.clip(0.5 * math.exp(rng.normal(0.0, 0.3)), 0.15, 1.0)),
            texture_offset=(int(rng.integers(128)), int(rng.integers(128))),
        )

    def _free_position(self, in_view: bool) -> np.ndarray:
        """A random position (inside or outside the view) clear of other cells if one is found."""
        height, width = self.p.shape
        lo = np.array([self.margin - self.rim, self.margin - self.rim])
        hi = np.array([self.margin + height + self.rim, self.margin + width + self.rim])
        best, best_gap = None, -np.inf
        for _ in range(30):
            pos = self.rng.uniform((0, 0), self.domain)
            if in_view:
                pos = self.rng.uniform(lo, hi)
            elif np.all((pos >= lo) & (pos < hi)):
                continue
            gap = min((self._distance(pos, c.pos) - c.radius for c in self.cells), default=np.inf)
            if gap > self.p.cell_diameter / 2:
                return pos
            if gap > best_gap:
                best, best_gap = pos, gap
        if best is None:  # only reachable when the margin is tiny compared with the view
            best = self.rng.uniform((0, 0), self.domain)
        return best

    def _distance(self, a: np.ndarray, b: np.ndarray) -> float:
        d = a - b
        d -= np.array(self.domain) * np.round(d / np.array(self.domain))
        return float(np.hypot(*d))

    def step(self) -> int:
        """Advance one frame; return the number of divisions that happened."""
        p, rng = self.p, self.rng
        divisions = 0
        survivors: list[_Cell] = []
        for cell in self.cells:
            if cell.state == _INTERPHASE:
                u = rng.random()
                if u < p.division_rate:
                    cell.state, cell.timer = _MITOSIS, p.mitosis_frames
                elif u < p.division_rate + p.apoptosis_rate:
                    cell.state, cell.timer = _APOPTOSIS, p.apoptosis_frames
                survivors.append(cell)
                continue
            cell.timer -= 1
            if cell.timer > 0:
                survivors.append(cell)
            elif cell.state == _MITOSIS:
                survivors.extend(self._divide(cell))
                divisions += 1
        self.cells = survivors
        persist = p.persistence
        for cell in self.cells:
            cell.vel = persist * cell.vel + math.sqrt(1 - persist**2) * rng.normal(
                0.0, self.sigma, 2)
            slow = 1.0 if cell.state == _INTERPHASE else 0.3
            cell.pos = cell.pos + slow * cell.vel
            cell.phases = cell.phases + rng.normal(0.0, 0.05, 3)
            if cell.state == _INTERPHASE:
                cell.radius += 0.1 * (cell.target - cell.radius)
                cell.amps += 0.15 * (cell.base_amps - cell.amps)
                cell.glow += 0.3 * (1.0 - cell.glow)
            elif cell.state == _MITOSIS:  # rounds up, condenses and brightens
                cell.radius += 0.4 * (0.8 * cell.target - cell.radius)
                cell.amps *= 0.3
                cell.glow += 0.5 * (1.8 - cell.glow)
            else:  # shrinks and condenses before disappearing
                cell.radius *= 0.8
                cell.glow *= 1.15
        self._separate()
        for cell in self.cells:
            cell.pos = cell.pos % np.array(self.domain)
        return divisions

    def _divide(self, mother: _Cell) -> list[_Cell]:
        """Two daughters side by side along a random axis, smaller and round at first."""
        axis_angle = self.rng.uniform(0, 2 * np.pi)
        axis = np.array([math.sin(axis_angle), math.cos(axis_angle)])
        daughters = []
        for sign in (1.0, -1.0):
            radius = 0.75 * mother.target
            child = self._new_cell(mother.pos + sign * 0.8 * radius * axis)
            child.radius = radius
            child.amps = 0.3 * child.base_amps
            child.vel = mother.vel * 0.5 + sign * 0.3 * self.sigma * axis
            child.brightness = mother.brightness * float(self.rng.uniform(0.9, 1.1))
            child.glow = 1.4
            child.link = mother.track or mother.link
            daughters.append(child)
        return daughters

    def _separate(self) -> None:
        """Push apart neighbours that overlap more than allowed (a few relaxation rounds)."""
        if len(self.cells) < 2:
            return
        pos = np.array([c.pos for c in self.cells])
        radius = np.array([c.radius for c in self.cells])
        size = np.array(self.domain, dtype=float)
        closest = (1 - self.p.overlap) * (radius[:, None] + radius[None, :])
        np.fill_diagonal(closest, 0.0)
        for _ in range(3):
            diff = pos[:, None, :] - pos[None, :, :]
            diff -= size * np.round(diff / size)
            dist = np.hypot(diff[..., 0], diff[..., 1])
            push = np.maximum(closest - dist, 0.0)
            if not push.any():
                break
            direction = diff / np.maximum(dist, 1e-6)[..., None]
            pos = pos + 0.5 * (push[..., None] * direction).sum(axis=1)
        for cell, new in zip(self.cells, pos, strict=True):
            cell.pos = new

    def shapes(self) -> list[Shape]:
        """Cells as the renderer sees them, in their drawing order."""
        return [
            Shape(c.pos[0], c.pos[1], c.radius, c.amps, c.phases, c.brightness * c.glow,
                  c.texture_offset)
            for c in self.cells
        ]


class _Tracks:
    """Turns per-frame visibility into CTC tracks (labels, begin, end, parent)."""

    def __init__(self, min_pixels: int) -> None:
        self.min_pixels = min_pixels
        self.rows: dict[int, list[int]] = {}
        self.next_label = 1

    def update(self, cells: list[_Cell], visible: np.ndarray, in_view: np.ndarray,
               t: int) -> np.ndarray:
        """Assign track labels at output frame ``t``; return the index → label lookup table."""
        lut = np.zeros(len(cells) + 1, dtype=np.int64)
        for i, cell in enumerate(cells):
            if visible[i] >= self.min_pixels:
                if cell.track == 0:
                    cell.track, self.next_label = self.next_label, self.next_label + 1
                    self.rows[cell.track] = [t, t, cell.link]
                self.rows[cell.track][1] = t
                lut[i + 1] = cell.track
            elif cell.track:  # hidden by a neighbour: a gap; out of view: a new cell later
                cell.link = cell.track if in_view[i] >= self.min_pixels else 0
                cell.track = 0
            elif in_view[i] < self.min_pixels:
                cell.link = 0
        return lut

    def lineage(self) -> Lineage:
        return Lineage(Track(label, b, e, p) for label, (b, e, p) in self.rows.items())


def _frame(world: _World, renderer: Renderer, tracks: _Tracks, view: tuple[slice, slice],
           t: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t`` as the world is now, imaged at time ``step``: the image, and its
    ground-truth labels (the ``view`` of the rendered domain) with ``tracks`` updated."""
    signal, index, in_view = renderer.draw(world.shapes())
    index = index[view]
    visible = np.bincount(index.ravel(), minlength=len(world.cells) + 1)[1:]
    lut = tracks.update(world.cells, visible, in_view, t)
    labels = lut[index]
    return renderer.image(signal, step), labels.astype(mask_dtype(int(labels.max(initial=0))))


def simulate(
    out_dir: str | Path,
    params: SimParams | None = None,
    seed: int = 0,
    sequence: str = "01",
    frame_step: int = 1,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic sequence ``out_dir/NN`` with ground truth ``out_dir/NN_GT``
    (replacing folders of those names only when celltrail wrote them, or with ``overwrite``).

    The same ``seed`` and parameters give the same files. With ``frame_step`` > 1 the cells move
    through ``frames * frame_step`` steps and every ``frame_step``-th one is imaged, so the
    output keeps ``frames`` frames with larger motion between them (the motion is the same as
    with ``frame_step=1`` for the same seed). ``progress(done, total)`` is called after each
    written frame. Returns the image folder ``out_dir/NN``.
    """
    params = SimParams() if params is None else params
    params.validate()
    _check(isinstance(frame_step, int) and frame_step >= 1,
           f"frame_step must be an integer >= 1, not {frame_step!r}")
    _check(bool(sequence) and not any(ch in sequence for ch in "/\\"),
           f"sequence must be a plain folder name such as '01', not {sequence!r}")
    dynamics_rng, imaging_rng = np.random.default_rng(seed).spawn(2)
    world = _World(params, dynamics_rng)
    height, width = params.shape
    renderer = Renderer(
        world.domain, (world.margin, world.margin, height, width), params.modality, params.dtype,
        params.cell_diameter, params.blur, params.noise, params.illumination, params.bleaching,
        imaging_rng,
    )
    area = math.pi * (params.cell_diameter / 2) ** 2
    tracks = _Tracks(min_pixels=max(10, round(0.03 * area)))
    digits = frame_digits(params.frames)
    view = (slice(world.margin, world.margin + height), slice(world.margin, world.margin + width))
    out_dir = Path(out_dir)
    divisions = 0
    with atomic_dir(out_dir / sequence, overwrite) as images, \
            atomic_dir(out_dir / f"{sequence}_GT", overwrite) as gt:
        (gt / "TRA").mkdir()
        (gt / "SEG").mkdir()
        for t in range(params.frames):
            if t:
                for _ in range(frame_step):
                    divisions += world.step()
            image, labels = _frame(world, renderer, tracks, view, t, t * frame_step)
            tifffile.imwrite(images / f"t{t:0{digits}d}.tif", image)
            tifffile.imwrite(gt / "TRA" / f"man_track{t:0{digits}d}.tif", labels,
                             compression="zlib")
            tifffile.imwrite(gt / "SEG" / f"man_seg{t:0{digits}d}.tif", labels, compression="zlib")
            if progress is not None:
                progress(t + 1, params.frames)
        lineage = tracks.lineage()
        write_man_track(lineage, gt / "TRA" / "man_track.txt")
        info = {"seed": seed, "frame_step": frame_step, "params": asdict(params),
                "tracks": len(lineage), "divisions_in_domain": divisions}
        (gt / "simulation.json").write_text(json.dumps(info, indent=2) + "\n")
    return out_dir / sequence
