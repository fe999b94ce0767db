"""EmbedTrack training data from CTC-layout sequences (real or simulated).

Frames with segmentation masks (GT where present, else silver truth) get the TRA identities of
their cells (Sec. 4.3). The first 90% of frames train, the last 10% validate. A sample is a pair
of 256×256 crops of frames t − 1 and t with each cell's medoid centre and, for the tracking loss,
the centre at t − 1 of the same cell or of its mother. Augmentations: CLAHE, blur, 90° rotations
and flips, and shifts of the t − 1 crop that imitate larger motion. A generalist model also sees
its sequences rescaled to one cell size (:func:`rescale_sequence`) and, with
``SampleParams.appearance``, stronger changes of appearance and zoom (:func:`appearance`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi
from scipy.spatial.distance import cdist
from skimage.exposure import equalize_adapthist
from skimage.segmentation import relabel_sequential
from skimage.transform import rescale, resize

from celltrail.core.errors import InputError
from celltrail.core.sequence import normalise, open_sequence, read_tiff
from celltrail.io.ctc import masked_cells, training_truth
from celltrail.linking.objects import equivalent_diameters
from celltrail.models.embedtrack import PERCENTILES
from celltrail.training.crops import crop_corner
from celltrail.training.embedtrack.losses import Instances

#: Share of each sequence's frames used for training; the rest validates (Sec. 4.3).
TRAIN_SHARE = 0.9
#: Pixels sampled per cell to find its (approximate) medoid.
MEDOID_SAMPLES = 256
#: Label of pixels no loss looks at: around a cell whose TRA marker has no mask.
IGNORE = -1


def split_index(n_frames: int) -> int:
    """Index of a sequence's first validation frame (the first 90% train, at least one each)."""
    return max(1, min(n_frames - 1, round(TRAIN_SHARE * n_frames)))


def has_masks(frames: Sequence[TrainingFrame], t: int) -> bool:
    """Whether the pair (t − 1, t) has segmentation masks to learn from."""
    return frames[t].labels is not None or frames[t - 1].labels is not None


def medoids(labels: np.ndarray, seed: int = 0) -> dict[int, np.ndarray]:
    """Each label's medoid (row, col): the pixel of the cell with the least summed distance to a
    sample of its pixels, so the centre always lies inside the cell."""
    rng = np.random.default_rng(seed)
    out: dict[int, np.ndarray] = {}
    for value, index in ndi.value_indices(labels, ignore_value=0).items():
        if value < 0:
            continue
        points = np.stack(index, 1).astype(np.float64)
        sample = points[rng.choice(len(points), min(len(points), MEDOID_SAMPLES), replace=False)]
        out[int(value)] = points[int(np.argmin(cdist(points, sample).sum(1)))].astype(np.float32)
    return out


@dataclass
class TrainingFrame:
    """One frame: its normalised image, instance labels (None without masks; :data:`IGNORE`
    where unknown) and centres."""

    image: np.ndarray
    labels: np.ndarray | None
    centres: dict[int, np.ndarray]


@dataclass
class TrainingSequence:
    """A sequence's frames, its lineage parents and the size statistics the model keeps."""

    name: str
    frames: list[TrainingFrame]
    parents: dict[int, int]
    areas: np.ndarray  #: pixel count of every training instance
    split_at: int | None = None  #: the first validation frame, if not the last 10%

    @property
    def split(self) -> int:
        """Index of the first validation frame."""
        return split_index(len(self.frames)) if self.split_at is None else self.split_at

    @property
    def diameter(self) -> float:
        """Median equivalent diameter of the training instances (pixels)."""
        return float(np.median(equivalent_diameters(self.areas)))


def rescale_sequence(seq: TrainingSequence, diameter: float) -> TrainingSequence:
    """``seq`` resized so its median cell is ``diameter`` pixels wide: images by linear
    interpolation (anti-aliased when shrinking), labels by nearest neighbour, centres
    recomputed where there are labels and scaled where there are only markers."""
    scale = diameter / seq.diameter
    frames = []
    for t, frame in enumerate(seq.frames):
        image = rescale(frame.image, scale, order=1, anti_aliasing=scale < 1,
                        preserve_range=True).astype(np.float32)
        labels, centres = None, {k: v * scale for k, v in frame.centres.items()}
        if frame.labels is not None:
            labels = resize(frame.labels, image.shape, order=0, anti_aliasing=False,
                            preserve_range=True).astype(np.int32)
            centres = centres | medoids(labels, seed=t)
        frames.append(TrainingFrame(image, labels, centres))
    return TrainingSequence(seq.name, frames, seq.parents, seq.areas * scale**2, seq.split_at)


def ignore_around(cells: np.ndarray, bare: np.ndarray, reach: float) -> np.ndarray:
    """``cells`` with :data:`IGNORE` within ``reach`` pixels of each ``bare`` marker (a cell
    with no mask) and outside every mask: neither cell nor background to the losses."""
    cells = cells.astype(np.int32)
    if not bare.any():
        return cells
    near = ndi.distance_transform_edt(bare == 0) <= reach
    return np.where(near & (cells == 0), IGNORE, cells)


def load_sequence(seq_dir: str | Path, frames: Sequence[int] | None = None) -> TrainingSequence:
    """Read a CTC sequence folder ``NN`` with ``NN_GT`` (and ``NN_ST``) beside it; only the
    masks of ``frames`` when given (the others keep their TRA markers, for tracking). A marker
    whose cell has no mask (:func:`~celltrail.io.ctc.masked_cells`) keeps its centre for
    tracking, and all within a median cell diameter of it is ignored: the marker lies somewhere
    inside its cell, so that reach covers the cell wherever it lies."""
    seq_dir = Path(seq_dir)
    truth, files = training_truth(seq_dir)
    if frames is not None:
        files = {t: files[t] for t in frames}
    images = open_sequence(seq_dir)
    if len(images) != len(truth.masks):
        raise InputError(seq_dir, f"{len(images)} frames but {len(truth.masks)} ground-truth "
                         "TRA frames")
    masks = {t: masked_cells(read_tiff(files[t]), np.asarray(truth.masks[t])) for t in files}
    split = split_index(len(images))
    counts = [np.bincount(cells.ravel())[1:] for t, (cells, _) in masks.items() if t < split]
    areas = np.concatenate([c[c > 0] for c in counts]) if counts else np.zeros(0)
    if not len(areas):
        raise InputError(seq_dir.with_name(f"{seq_dir.name}_GT"),
                         "no segmentation masks in the first 90% of frames")
    reach = float(np.median(equivalent_diameters(areas)))
    frames = []
    for t in range(len(images)):
        labels, every_cell = None, np.asarray(truth.masks[t])
        if t in masks:
            cells, bare = masks[t]
            labels = ignore_around(cells, bare, reach)
            every_cell = cells + bare  # masks, and the markers of the cells without one
        centres = medoids(every_cell, seed=t)
        frames.append(TrainingFrame(normalise(images[t], PERCENTILES), labels, centres))
    parents = {label: track.parent for label, track in truth.lineage.items() if track.parent}
    return TrainingSequence(f"{seq_dir.parent.name}/{seq_dir.name}", frames, parents, areas)


def load_stills(name: str, images: Sequence[np.ndarray],
                masks: Sequence[np.ndarray]) -> TrainingSequence:
    """Single annotated images (no tracks) as a sequence that teaches segmentation: each image
    twice in a row, so a pair shows it standing still; labels are made unique across images,
    so a pair of two different images has no cell to track. Every image trains."""
    frames, areas, offset = [], [], 0
    for t, (image, mask) in enumerate(zip(images, masks, strict=True)):
        labels = relabel_sequential(np.asarray(mask).astype(np.int32), offset + 1)[0]
        offset = max(offset, int(labels.max()))
        counts = np.bincount(labels.ravel())[1:]
        areas.append(counts[counts > 0])
        frame = TrainingFrame(normalise(image, PERCENTILES), labels, medoids(labels, seed=t))
        frames += [frame, frame]
    return TrainingSequence(name, frames, {}, np.concatenate(areas), split_at=len(frames))


@dataclass(frozen=True)
class SampleParams:
    """Crop size and augmentation probabilities."""

    crop: int = 256
    p_shift: float = 0.5  #: probability of shifting the t − 1 crop (imitating faster motion)
    p_clahe: float = 0.2
    p_blur: float = 0.2
    #: the generalist's augmentations (:func:`appearance` and zoom); off for the per-dataset
    #: models, whose samples stay as they were
    appearance: bool = False
    zoom: float = 0.25  #: with ``appearance``: crops zoomed by exp(U(−zoom, zoom))


def _illumination(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth random field in [−1, 1]: a tilted plane plus a blurred coarse noise."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32) / max(shape)
    plane = rng.normal(0, 1) * (ys - 0.5) + rng.normal(0, 1) * (xs - 0.5)
    coarse = ndi.zoom(rng.normal(0, 1, (4, 4)), (shape[0] / 4, shape[1] / 4), order=3)
    field = plane + 0.5 * coarse[:shape[0], :shape[1]]
    return (field / max(float(np.abs(field).max()), 1e-6)).astype(np.float32)


def appearance(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random change of appearance on every frame of a pair (intensities only, so
    labels stay aligned): contrast polarity, gamma, uneven illumination, blur and noise, then
    the 1–99 percentile normalisation inference applies."""
    invert = rng.random() < 0.3
    gamma = float(np.exp(rng.normal(0, 0.35)))
    field = _illumination(images[0].shape, rng) * rng.uniform(0, 0.4) \
        if rng.random() < 0.5 else None
    sigma = float(rng.uniform(0.5, 2.0)) if rng.random() < 0.3 else 0.0
    noise = float(rng.uniform(0, 0.15)) if rng.random() < 0.5 else 0.0
    out = []
    for image in images:
        x = np.clip(image, 0, 1)
        x = (1 - x if invert else x) ** gamma
        if field is not None:
            x = x * (1 + field)
        if sigma:
            x = ndi.gaussian_filter(x, sigma)
        if noise:
            x = x + rng.normal(0, noise, x.shape).astype(np.float32)
        out.append(x)
    lo, hi = np.percentile(np.stack(out), PERCENTILES)
    return [((x - lo) / max(float(hi - lo), 1e-6)).astype(np.float32) for x in out]


@dataclass
class Sample:
    """A training pair: images (1, S, S) and the instances of t and t − 1."""

    image: torch.Tensor
    previous: torch.Tensor
    current: Instances | None
    before: Instances | None
    track_centres: torch.Tensor  #: (M_t, 2) centre at t − 1 of each instance at t
    track_valid: torch.Tensor  #: (M_t,) bool


def _window(array: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """``array[top:top+size, left:left+size]``, zero-padded where it leaves the frame."""
    out = np.zeros((size, size), dtype=array.dtype)
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(array.shape[0], top + size), min(array.shape[1], left + size)
    if y1 > y0 and x1 > x0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = array[y0:y1, x0:x1]
    return out


def _orient_points(points: np.ndarray, size: int, k: int, flip: bool) -> np.ndarray:
    """Where (row, col) points go under ``np.rot90(·, k)`` then ``np.fliplr`` (if ``flip``)."""
    points = points.copy()
    for _ in range(k % 4):
        points = np.stack([size - 1 - points[:, 1], points[:, 0]], 1)
    if flip:
        points[:, 1] = size - 1 - points[:, 1]
    return points


def _orient(array: np.ndarray, k: int, flip: bool) -> np.ndarray:
    array = np.rot90(array, k)
    return np.ascontiguousarray(np.fliplr(array) if flip else array)


@dataclass(frozen=True)
class _View:
    """How a crop is cut: a ``size`` window at an origin, resized to ``crop`` (images linearly,
    labels by nearest neighbour) when the two differ, turned ``k`` quarter turns and flipped."""

    size: int
    crop: int
    k: int
    flip: bool

    def _cut(self, array: np.ndarray, origin: np.ndarray, order: int) -> np.ndarray:
        window = _window(array, int(origin[0]), int(origin[1]), self.size)
        if self.size != self.crop:
            window = resize(window, (self.crop, self.crop), order=order, anti_aliasing=False,
                            preserve_range=True).astype(array.dtype)
        return window

    def window(self, image: np.ndarray, origin: np.ndarray) -> np.ndarray:
        """The image's crop, not yet turned (intensity augmentations come first)."""
        return self._cut(image, origin, 1)

    def orient(self, array: np.ndarray) -> np.ndarray:
        return _orient(array, self.k, self.flip)

    def points(self, points: np.ndarray, origin: np.ndarray) -> np.ndarray:
        """Frame positions (row, col) → crop positions."""
        scaled = (points - origin) * (self.crop / self.size) if len(points) else points
        return _orient_points(scaled, self.crop, self.k, self.flip)

    def instances(self, frame: TrainingFrame, origin: np.ndarray) -> Instances | None:
        if frame.labels is None:
            return None
        labels = self.orient(self._cut(frame.labels, origin, 0))
        ids = np.unique(labels[labels > 0])
        centres = np.stack([frame.centres[i] for i in ids]) if len(ids) else \
            np.zeros((0, 2), np.float32)
        centres = self.points(centres, origin).astype(np.float32)
        return Instances(torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(ids),
                         torch.from_numpy(centres))


def _masked_if_partial(*frames: TrainingFrame) -> np.ndarray | None:
    """The masked cells of the first of ``frames`` with masks, if those masks leave cells out
    (:data:`IGNORE`), for crops around them; else None."""
    labels = next((f.labels for f in frames if f.labels is not None), None)
    return labels > 0 if labels is not None and (labels == IGNORE).any() else None


class Sampler:
    """Random training pairs from the training frames of several sequences (seeded)."""

    def __init__(self, sequences: Sequence[TrainingSequence], params: SampleParams,
                 rng: np.random.Generator, validation: bool = False) -> None:
        self.p, self.rng = params, rng
        self.pairs = []  # (sequence, t) with masks at t or t - 1
        for seq in sequences:
            lo, hi = (seq.split, len(seq.frames)) if validation else (1, seq.split)
            for t in range(max(1, lo), hi):
                if has_masks(seq.frames, t):
                    self.pairs.append((seq, t))
        if not self.pairs:
            part = "validation" if validation else "training"
            raise InputError(None, f"no {part} frame pair has segmentation masks")
        self.augment = not validation
        self.general = self.augment and params.appearance

    def sample(self) -> Sample:
        p, rng = self.p, self.rng
        seq, t = self.pairs[int(rng.integers(len(self.pairs)))]
        now, before = seq.frames[t], seq.frames[t - 1]
        zoom = float(np.exp(rng.uniform(-p.zoom, p.zoom))) if self.general else 1.0
        size = max(8, round(p.crop / zoom))  # the window that becomes a crop
        top, left = crop_corner(now.image.shape, size, rng, _masked_if_partial(now, before))
        shift = np.zeros(2, dtype=int)
        if self.augment and rng.random() < p.p_shift:
            reach = max(1, int(seq.diameter / 2))
            shift = rng.integers(-reach, reach + 1, size=2)
        origin_now = np.array([top, left], dtype=np.float32)
        origin_before = origin_now + shift
        k, flip = (int(rng.integers(4)), bool(rng.integers(2))) if self.augment else (0, False)
        view = _View(size, p.crop, k, flip)
        images = self._intensity([view.window(f.image, o) for f, o in
                                  ((now, origin_now), (before, origin_before))])
        images = [torch.from_numpy(view.orient(im))[None] for im in images]
        current = view.instances(now, origin_now)
        track, valid = np.zeros((0, 2), np.float32), np.zeros(0, bool)
        if current is not None:
            ids = current.ids.tolist()
            track = np.zeros((len(ids), 2), np.float32)
            valid = np.zeros(len(ids), bool)
            for j, label in enumerate(ids):
                source = label if label in before.centres else seq.parents.get(label)
                if source in before.centres:
                    track[j], valid[j] = before.centres[source], True
            track = view.points(track, origin_before)
        return Sample(images[0], images[1], current, view.instances(before, origin_before),
                      torch.from_numpy(track.astype(np.float32)), torch.from_numpy(valid))

    def _intensity(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """The same CLAHE and blur on both frames of the pair."""
        if not self.augment:
            return images
        p, rng = self.p, self.rng
        if rng.random() < p.p_clahe:
            images = [equalize_adapthist(np.clip(im, 0, 1)).astype(np.float32) for im in images]
        if rng.random() < p.p_blur:
            sigma = float(rng.uniform(0.5, 1.5))
            images = [ndi.gaussian_filter(im, sigma) for im in images]
        return appearance(images, rng) if self.general else images
