"""CAP inference: query cells in the first frame, track them as points with rolling windows, and
write a marker per cell and frame so the CTC and MOT metrics can score the tracks: a disc of a
cell radius around the point and, with the detector, the detected cells' pixels within a cell
diameter of it (a pixel two markers claim goes to the nearer point).

The first frame's queries come from the CTC ground truth's TRA markers (``queries_from_gt``, as
in the paper's evaluation) or, by default, from the classical detector. The detector also
checks each frame (unless ``new_cells`` is off): a cell it finds with no track point on it is a
new cell (it entered the field, its track was lost, or it was born: the daughter of a cell
beside it, by the classical linker's division test) and joins the queries (Algorithm 1); a
point on no cell it finds moves to a free one within a cell radius, or else goes on for a gap
of up to two frames and then ends its track; and a cell the model declares gone goes on while
the detector keeps its point. Points closer than a cell radius are one cell: the oldest track
keeps it. Frames are resized so that neighbouring queries lie
:data:`~celltrail.models.cap.SPACING` pixels apart, the scale the model was trained at. Each
frame's feature pyramid is computed once and kept while a window needs it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from celltrail.core.errors import InputError, OptionError
from celltrail.core.lineage import lineage_from_presence, present
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence, normalise
from celltrail.io.ctc import read_tracking_gt
from celltrail.linking import LinkParams, division_cost, equivalent_diameters, measure
from celltrail.methods.base import Tracker
from celltrail.methods.cap.options import CAPOptions
from celltrail.methods.cap.points import PointTracks, Review, near
from celltrail.methods.cap.raw import Predict, rolling_windows
from celltrail.methods.classical.tracker import sequence_segmenter
from celltrail.models.cap import PERCENTILES, SPACING, load_checkpoint, network_from
from celltrail.models.device import resolve_device
from celltrail.models.zoo import model_path
from celltrail.segmentation import Segmenter

#: A point is visible when its predicted visibility exceeds this.
VISIBLE = 0.5
#: The shortest window after one cut short: two frames, the queries' and one more (a window cut
#: short is followed by one of twice the frames read, so windows grow back where cells stop
#: appearing).
SHORTEST = 2
#: Frames in a row a point may lie on no detected cell before its track ends: the gap the
#: classical linker closes (:class:`~celltrail.linking.LinkParams`).
MAX_GAP = LinkParams().max_gap


def objects(labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Centres (N, 2) (y, x) of the objects of a label image and their median equivalent
    radius."""
    found = measure(np.asarray(labels))
    if not len(found):
        return np.zeros((0, 2), np.float32), 0.0
    return (found.centroids.astype(np.float32),
            float(np.median(equivalent_diameters(found.areas))) / 2)


def spacing(centres: np.ndarray, radius: float) -> float:
    """Median distance from each centre to its nearest neighbour (four radii for one cell)."""
    if len(centres) < 2:
        return 4.0 * max(radius, 1.0)
    distances, _ = cKDTree(centres).query(centres, 2)
    return float(np.median(distances[:, 1]))


def thin(points: np.ndarray, radius: float, out: np.ndarray) -> np.ndarray:
    """``out`` (K,) extended to the points (K, 2) within ``radius`` of an earlier point not
    out: one point per cell, the oldest."""
    out = out.copy()
    for i in np.flatnonzero(~out):
        out[i] = near(points[i], points[:i][~out[:i]], radius)
    return out


def pack(mask: np.ndarray) -> bytes:
    """A boolean image in a few bytes (bits, deflated), to keep every frame's cells at hand."""
    return zlib.compress(np.packbits(mask).tobytes(), 1)


def unpack(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """The boolean image of ``shape`` that :func:`pack` gave ``data`` for."""
    bits = np.frombuffer(zlib.decompress(data), np.uint8)
    return np.unpackbits(bits, count=shape[0] * shape[1]).reshape(shape).view(bool)


def paint_markers(shape: tuple[int, int], centres: np.ndarray, labels: np.ndarray,
                  radius: float, foreground: np.ndarray | None = None) -> np.ndarray:
    """(H, W) uint32 image with a marker per centre: a disc of ``radius`` and, where a
    ``foreground`` (H, W bool) is given, the foreground within a cell diameter (``2 * radius``),
    so that a point off its cell's middle still marks the cell; a pixel several markers claim
    goes to the nearest centre."""
    out = np.zeros(shape, np.uint32)
    best = np.full(shape, np.inf, np.float32)
    reach = radius if foreground is None else 2 * radius
    r = int(np.ceil(reach))
    for (y, x), label in zip(centres, labels, strict=True):
        y0, y1 = max(int(y) - r, 0), min(int(y) + r + 2, shape[0])
        x0, x1 = max(int(x) - r, 0), min(int(x) + r + 2, shape[1])
        d2 = ((np.arange(y0, y1, dtype=np.float32) - y) ** 2)[:, None] + (
            (np.arange(x0, x1, dtype=np.float32) - x) ** 2)[None]
        claim = d2 <= radius**2
        if foreground is not None:
            claim |= foreground[y0:y1, x0:x1] & (d2 <= reach**2)
        claim &= d2 < best[y0:y1, x0:x1]
        np.copyto(best[y0:y1, x0:x1], d2, where=claim)
        np.copyto(out[y0:y1, x0:x1], np.uint32(label), where=claim)
    return out


def mothers_of(found: np.ndarray, points: dict[int, np.ndarray],
               before: dict[int, np.ndarray], diameter: float) -> np.ndarray:
    """For each new cell (M, 2), the label of the track that divided into it and the cell at
    its point, or 0: the classical linker's division test
    (:func:`~celltrail.linking.division_cost`, its gates in cell diameters) on the new cell's
    centre and the track's points now (``points``, by label) and one frame before
    (``before``); each mother and new cell taken once, cheapest first."""
    p = LinkParams()
    hypotheses = sorted(
        (cost, label, j)
        for label, point in points.items() for j, centre in enumerate(found)
        if (cost := division_cost(before[label], point, centre, p.max_step * diameter, p.relax,
                                  p.neighbour_radius * diameter)) is not None)
    mothers = np.zeros(len(found), np.int64)
    for _, label, j in hypotheses:
        if not mothers[j] and label not in mothers:
            mothers[j] = label
    return mothers


def confirm_divisions(tracks: PointTracks, frames: int) -> None:
    """Undo each division of ``tracks`` whose daughters do not both last ``frames`` frames (a
    cell the detector split for a moment): the first daughter goes back into her mother's
    track, the second loses her parent."""
    children: dict[int, list[int]] = {}
    for label, track in tracks.items():
        if track.parent:
            children.setdefault(track.parent, []).append(label)
    mothers = sorted(children)
    while mothers:
        mother = mothers.pop(0)
        kids = children.get(mother, [])
        if len(kids) != 2 or min(len(tracks[kid].positions) for kid in kids) >= frames:
            continue
        first, second = sorted(kids)
        tracks[mother].positions.update(tracks[first].positions)
        tracks[first].positions.clear()
        tracks[second].parent = 0
        children[mother] = children.pop(first, [])  # the first's daughters are now hers
        for grandchild in children[mother]:
            tracks[grandchild].parent = mother
        mothers.insert(0, mother)


class CAPTracker(Tracker):
    """Track cells as points with a trained CAP model (a shipped name or a checkpoint path) on
    the options' device.

    Its prompts, the queries, are a CTC ground-truth folder (``NN_GT``) whose first TRA frame
    gives the cells to track; without them the classical detector (``preset``, ``diameter``)
    finds them. ``new_cells`` lets the detector add the cells that appear later and decide where
    tracks end (see :meth:`review`); without it, the model alone does.
    """

    name = "cap"
    Options = CAPOptions

    def __init__(self, options: CAPOptions | None = None, **values: Any) -> None:
        super().__init__(options, **values)
        self.device = resolve_device(self.options.device)
        state = load_checkpoint(model_path("cap", self.options.model))
        self.net = network_from(state).to(self.device)
        self.window = int(self.options.window or state["window"])
        self.gt: Path | None = None  # the queries of the current run
        self.preset, self.diameter = self.options.preset, self.options.diameter
        self.new_cells = self.options.new_cells
        self.detector: Segmenter | None = None  # the classical detector of the last run
        self._pyramids: dict[int, list[torch.Tensor]] = {}  # frame -> its feature pyramid

    def settings(self) -> dict[str, str]:
        """Method and the detector's preset and diameter, with where they came from."""
        scale = None if self.detector is None else self.detector.scale
        if scale is None:
            return {"method": self.name}
        return {"method": self.name,
                "detector preset": f"{scale.preset} ({scale.preset_from})",
                "detector diameter": f"{scale.diameter:.1f} px ({scale.diameter_from})"}

    def queries(self, images: ImageSequence, cells: np.ndarray | None
                ) -> tuple[np.ndarray, float]:
        """First-frame cell centres (N, 2) and the cells' radius (the markers' discs): of the GT
        markers, or without them of ``cells``, the detector's label image of the first frame."""
        if self.gt is not None:
            markers = np.asarray(read_tracking_gt(self.gt).masks[0])
            if markers.shape != images.shape:
                raise InputError(self.gt, f"TRA markers have shape {markers.shape}, the images "
                                          f"{images.shape}")
        else:
            assert cells is not None
            markers = cells
        centres, radius = objects(markers)
        if not len(centres):
            raise InputError(self.gt or images.name, "no cell found in the first frame to track")
        return centres, radius

    def review(self, images: ImageSequence, radius: float, segment: Segmenter | None,
               coasting: dict[int, list[int]] | None = None,
               foreground: dict[int, bytes] | None = None) -> Review:
        """Each frame: drop the points off the image, and keep one point per cell (of points
        closer than ``radius``, the oldest). With a detector, ``segment``, it checks them: a
        point on no cell it finds moves to the centre of the nearest cell within ``radius`` on
        which no point lies; failing that it goes on where it is (a cell the detector missed)
        for up to :data:`MAX_GAP` frames in a row, and is then dropped. A point on a cell keeps
        it against a point on none. The detector's cells on which still no point lies are new
        cells; a new cell is a daughter of a track whose point lies on a cell beside it, where
        the two pass the classical linker's division test (:func:`mothers_of`). ``coasting``
        receives, per track, the frames of its latest run on no cell (empty once it is back on
        one); ``foreground``, per frame, the detected cells' pixels (:func:`pack`)."""
        shape = np.array(images.shape)
        coasting = {} if coasting is None else coasting
        foreground = {} if foreground is None else foreground
        previous: dict[int, dict[int, np.ndarray]] = {}  # last frame reviewed -> its points

        def check(t: int, ids: Sequence[int], points: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            off = ~((points >= 0) & (points < shape)).all(axis=1)
            if segment is None:
                return (points, thin(points, radius, off), np.zeros((0, 2), np.float32),
                        np.zeros(0, np.int64))
            labels = segment(np.asarray(images[t]))
            foreground[t] = pack(labels > 0)
            cells = measure(labels)
            yx = np.minimum(np.round(points).astype(int).clip(min=0), shape - 1)
            under = np.where(off, 0, labels[yx[:, 0], yx[:, 1]])
            points = points.copy()
            free = ~np.isin(cells.labels, under)
            for i in np.flatnonzero((under == 0) & ~off):
                gaps = np.linalg.norm(cells.centroids - points[i], axis=1)
                gaps[~free] = np.inf
                if len(gaps) and gaps.min() < radius:
                    k = int(np.argmin(gaps))
                    points[i], under[i], free[k] = cells.centroids[k], cells.labels[k], False
            unseen = (under == 0) & ~off
            for label, missed in zip(ids, unseen, strict=True):
                coasting[label] = [*coasting.get(label, []), t] if missed else []
            coast = unseen & np.array([len(coasting[label]) <= MAX_GAP for label in ids], bool)
            order = np.argsort(under == 0, kind="stable")  # a point on a cell before one coasting
            drop = np.empty_like(off)
            drop[order] = thin(points[order], radius, ((under == 0) & ~coast)[order])
            kept = points[~drop]
            found = cells.centroids[~np.isin(cells.labels, under[~drop])]
            both = np.concatenate([kept, found])  # a new cell, too, needs a cell of its own
            crowded = thin(both, radius, np.zeros(len(both), bool))[len(kept):]
            found = found[~crowded].astype(np.float32)
            on_cell = ~drop & (under != 0)
            before = previous.pop(t - 1, {})
            mothers = mothers_of(found, {label: point for label, point, held
                                         in zip(ids, points, on_cell, strict=True)
                                         if held and label in before}, before, 2 * radius)
            previous.clear()
            previous[t] = {label: point for label, point, gone
                           in zip(ids, points, drop, strict=True) if not gone}
            return points, drop, found, mothers

        return check

    def _working(self, image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """(1, h, w) normalised frame resized to ``size``, padded to the network's multiple."""
        x = torch.from_numpy(normalise(image, PERCENTILES))[None, None].to(self.device)
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        m = self.net.multiple()
        return F.pad(x, (0, -size[1] % m, 0, -size[0] % m), mode="replicate")[0]

    def read_prompts(self, prompts: object, images: ImageSequence) -> Path | None:
        """The queries: a CTC ground-truth folder (``NN_GT``), or None for the detector's."""
        if prompts is None:
            return None
        if not isinstance(prompts, str | Path):
            raise OptionError("prompts", f"cap takes a CTC ground-truth folder as its queries, "
                                         f"not {type(prompts).__name__}")
        return Path(prompts)

    def run(self, images: ImageSequence, prompts: Path | None, store: MaskStore,
            on_frame: Callable[[int], None]) -> TrackingResult:
        """Track every frame; marker masks go to ``store`` frame by frame."""
        self.gt = prompts
        segment = self.detector = sequence_segmenter(self.preset, self.diameter)
        centres, radius, foreground = self._start(images, segment)
        done = [0]

        def report(t: int) -> None:
            while done[0] <= t:
                on_frame(done[0])
                done[0] += 1

        coasting: dict[int, list[int]] = {}
        self._pyramids.clear()
        tracks = rolling_windows(self._predictor(images, centres, radius), len(images), centres,
                                 self.window, report, radius,
                                 self.review(images, radius, segment if self.new_cells else None,
                                             coasting, foreground),
                                 SHORTEST, self.new_cells)
        report(len(images) - 1)
        self._pyramids.clear()
        for label, frames in coasting.items():  # a track that ended off the cells: gone then
            for t in frames:
                tracks[label].positions.pop(t, None)
        if self.new_cells:  # the detector's divisions (and the model's) must last
            confirm_divisions(tracks, MAX_GAP + 1)
        return self._markers(images, tracks, radius, foreground, store)

    def _start(self, images: ImageSequence, segment: Segmenter
               ) -> tuple[np.ndarray, float, dict[int, bytes]]:
        """The queries (N, 2) in the first frame, the cells' radius, and the detected cells of
        the first frame (:func:`pack`, by frame: the review adds the others)."""
        first = (segment(np.asarray(images[0])) if self.gt is None or self.new_cells
                 else None)
        centres, radius = self.queries(images, first)
        foreground: dict[int, bytes] = {}  # frame -> its detected cells, packed
        if self.new_cells and first is not None:
            foreground[0] = pack(first > 0)  # the review starts on the next frame
            if self.gt is not None:  # markers can be far smaller than cells
                radius = max(radius, objects(first)[1])
        return centres, radius, foreground

    def _predictor(self, images: ImageSequence, centres: np.ndarray, radius: float) -> Predict:
        """The network as :func:`rolling_windows` calls it, on frames resized so that the
        ``centres`` lie :data:`~celltrail.models.cap.SPACING` pixels apart; points come back
        in the images' pixels, a point within ``radius`` beyond the border kept on it."""
        height, width = images.shape
        corner = np.array([height - 1, width - 1])
        scale = SPACING / spacing(centres, radius)
        size = (max(8, round(height * scale)), max(8, round(width * scale)))
        factor = np.array([size[0] / height, size[1] / width], np.float32)

        def pyramid(start: int, stop: int) -> list[list[torch.Tensor]]:
            for t in [t for t in self._pyramids if t < start]:
                del self._pyramids[t]
            for t in range(start, stop):  # frame by frame: on the CPU, big batches are slower
                if t not in self._pyramids:
                    frame = self._working(np.asarray(images[t]), size)[None]
                    self._pyramids[t] = [level[0] for level in
                                         self.net.pyramid(self.net.features(frame))]
            return [[self._pyramids[t][s] for t in range(start, stop)]  # no copy: a list
                    for s in range(len(self._pyramids[start]))]

        def predict(start: int, stop: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with torch.inference_mode():
                q = torch.from_numpy((queries + 0.5) * factor - 0.5).to(self.device)
                out = self.net(None, q, features=pyramid(start, stop))
            points = (out.points[-1].cpu().numpy() + 0.5) / factor - 0.5
            # a cell at the border keeps its point on the image until it is a radius beyond
            clipped = np.clip(points, 0, corner)
            held = np.linalg.norm(points - clipped, axis=-1, keepdims=True) <= radius
            visible = torch.sigmoid(out.visibility).cpu().numpy() > VISIBLE
            return np.where(held, clipped, points).astype(np.float32), visible

        return predict

    def _markers(self, images: ImageSequence, tracks: PointTracks, radius: float,
                 foreground: dict[int, bytes], store: MaskStore) -> TrackingResult:
        """Each frame's markers of ``tracks`` (:func:`paint_markers`, with the detected cells
        of ``foreground`` when the detector ran) into ``store``, and the lineage."""
        height, width = images.shape

        def cells(t: int) -> np.ndarray | None:
            """Frame ``t``'s detected cells (H, W) bool; None without the detector."""
            return unpack(foreground[t], (height, width)) if self.new_cells else None

        def paint(t: int) -> np.ndarray:
            here = [(label, track.positions[t]) for label, track in tracks.items()
                    if t in track.positions]
            where = np.array([p for _, p in here], np.float32).reshape(-1, 2)
            return paint_markers((height, width), where, np.array([lab for lab, _ in here]),
                                 radius, cells(t))

        # A marker can vanish under its neighbours' (centres closer than the radius): paint once
        # to see where each track is visible, declare such gaps the CTC way, then paint again.
        presence: dict[int, list[int]] = {}
        for t in range(len(images)):
            for label in present(paint(t)):
                presence.setdefault(label, []).append(t)
        parents = {label: track.parent for label, track in tracks.items()}
        lineage, mapping = lineage_from_presence(presence, parents)
        for t in range(len(images)):
            mask = paint(t)
            lut = np.zeros(int(mask.max(initial=0)) + 1, np.uint32)
            for label in present(mask):
                lut[label] = mapping[(label, t)]
            store.append(lut[mask])
        return TrackingResult(store, lineage)
