"""Tracking results: per-frame label masks plus the lineage table that explains them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import networkx as nx
import numpy as np
import tifffile

from celltrail.core.errors import CellTrailError
from celltrail.core.lineage import Lineage, lineage_from_presence


def mask_dtype(max_label: int) -> np.dtype:
    """The smallest unsigned type the CTC tools read that holds ``max_label``."""
    return np.dtype(np.uint16) if max_label < 2**16 else np.dtype(np.uint32)


class MaskStore(Sequence[np.ndarray]):
    """Label frames, appended in time order; in memory, or on disk as CTC ``maskTTT.tif`` files.

    Every frame is kept as uint16 when its labels fit, else uint32 (:func:`mask_dtype`). Files
    on disk carry the pixel size (µm) and frame interval (minutes) where known, in their JSON
    description (``pixel_size_um``, ``interval_min``), which :func:`~celltrail.core.sequence.
    open_sequence` reads back.
    """

    def __init__(self, folder: str | Path | None = None, digits: int = 3,
                 pixel_size: float | None = None, interval: float | None = None) -> None:
        self.folder = None if folder is None else Path(folder)
        self.digits = digits
        self.metadata = {key: value for key, value in (("pixel_size_um", pixel_size),
                                                        ("interval_min", interval))
                         if value is not None}
        self._frames: list[np.ndarray] = []
        self._count = 0
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def append(self, mask: np.ndarray) -> None:
        """Add the next frame's label mask."""
        mask = np.asarray(mask)
        mask = mask.astype(mask_dtype(int(mask.max(initial=0))), copy=False)
        if self.folder is None:
            self._frames.append(mask)
        else:
            tifffile.imwrite(self.path(self._count), mask, compression="zlib",
                             metadata=self.metadata)
        self._count += 1

    def path(self, t: int) -> Path:
        """File of frame ``t`` in a disk store."""
        assert self.folder is not None
        return self.folder / f"mask{t:0{self.digits}d}.tif"

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, t: int) -> np.ndarray:  # type: ignore[override]
        if not 0 <= t < self._count:
            raise IndexError(f"frame {t} out of range for {self._count} frames")
        return self._frames[t] if self.folder is None else tifffile.imread(self.path(t))

    def __iter__(self) -> Iterator[np.ndarray]:
        for t in range(self._count):
            yield self[t]


@dataclass
class TrackingResult:
    """Label masks (frame ``t`` labels are track labels) and the ``L B E P`` lineage; a
    tracker adds the settings it used (for the summary) and the extra outputs its method
    writes (``"mot"``: BoxTrack's MOT lines) and the images' scale, for tables in µm and
    minutes."""

    masks: Sequence[np.ndarray]
    lineage: Lineage
    settings: dict[str, str] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    #: The images' pixel size (µm) and frame interval (minutes), where known.
    pixel_size: float | None = None
    interval: float | None = None

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write the result as ``celltrail track`` does: masks, ``res_track.txt`` and the
        tracks table (and the method's extra outputs), atomically; an existing folder is
        replaced only when celltrail wrote it, or with ``overwrite``."""
        from celltrail.io.results import save_result  # io sits above the data model

        return save_result(self, folder, overwrite)

    @classmethod
    def from_masks(
        cls, masks: Sequence[np.ndarray], parents: Mapping[int, int]
    ) -> TrackingResult:
        """A valid result from label masks whose labels may vanish and come back (after a crop,
        a frame step, or edits): each run of consecutive frames becomes a track, later runs of a
        label new tracks with the earlier run as parent; ``parents`` gives each label's parent.
        """
        presence: dict[int, list[int]] = {}
        for t, mask in enumerate(masks):
            for label in np.unique(mask[mask > 0]):
                presence.setdefault(int(label), []).append(t)
        lineage, mapping = lineage_from_presence(presence, parents)
        dtype = mask_dtype(max(lineage, default=0))
        relabelled = []
        for t, mask in enumerate(masks):
            lut = np.zeros(int(mask.max(initial=0)) + 1, dtype=dtype)
            for label in np.unique(mask[mask > 0]):
                lut[label] = mapping[(int(label), t)]
            relabelled.append(lut[mask])
        return cls(relabelled, lineage)

    @property
    def graph(self) -> nx.DiGraph:
        """The lineage graph (tracks as nodes, parent → child edges)."""
        return self.lineage.to_graph()

    def detection_graph(self) -> nx.DiGraph:
        """One node per cell per frame, ``(t, label)`` with its ``t``, ``label``, centroid
        ``y``, ``x`` and ``area``; edges join a cell to itself in the next frame and a mother's
        last node to each daughter's first: the graph traccuracy, laptrack and trackastra
        exchange."""
        graph = nx.DiGraph()
        for t, mask in enumerate(self.masks):
            mask = np.asarray(mask)
            labels, inverse, areas = np.unique(mask, return_inverse=True, return_counts=True)
            rows, cols = np.indices(mask.shape)
            ys = np.bincount(inverse.ravel(), rows.ravel()) / areas
            xs = np.bincount(inverse.ravel(), cols.ravel()) / areas
            for label, y, x, area in zip(labels, ys, xs, areas, strict=True):
                if label:
                    graph.add_node((t, int(label)), t=t, label=int(label), y=float(y),
                                   x=float(x), area=int(area))
        for label, track in self.lineage.items():
            frames = [t for t in range(track.begin, track.end + 1) if (t, label) in graph]
            graph.add_edges_from(((a, label), (b, label)) for a, b in pairwise(frames))
            mother = self.lineage.get(track.parent)
            if mother is not None and (mother.end, mother.label) in graph and frames:
                graph.add_edge((mother.end, mother.label), (frames[0], label))
        return graph

    def errors(self, frame_labels: Iterable[Iterable[int]] | None = None) -> list[str]:
        """Every violated CTC invariant, one line each (empty when the result is valid).

        ``frame_labels`` (the labels present in each frame, e.g. from a tracks table) spares
        reading the masks again when they are known already.
        """
        if frame_labels is None:
            frame_labels = (np.unique(mask[mask > 0]) for mask in self.masks)
        errors = self.lineage.structure_errors()
        seen = dict.fromkeys(self.lineage, 0)
        for t, labels in enumerate(frame_labels):
            for label in map(int, labels):
                track = self.lineage.get(label)
                if track is None:
                    errors.append(f"frame {t}: label {label} is not in the lineage table")
                elif not track.begin <= t <= track.end:
                    errors.append(
                        f"frame {t}: label {label} lies outside its frames "
                        f"{track.begin}-{track.end}"
                    )
                else:
                    seen[label] += 1
        for label, count in seen.items():
            track = self.lineage[label]
            if track.end >= len(self.masks):
                errors.append(
                    f"label {label} ends at frame {track.end} beyond the last frame "
                    f"{len(self.masks) - 1}"
                )
            elif count != track.end - track.begin + 1:
                errors.append(
                    f"label {label} is missing from {track.end - track.begin + 1 - count} of its "
                    f"frames {track.begin}-{track.end} (an undeclared gap)"
                )
        return errors

    def validate(self, frame_labels: Iterable[Iterable[int]] | None = None) -> None:
        """Raise :class:`CellTrailError` naming the first violated invariant."""
        errors = self.errors(frame_labels)
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise CellTrailError(f"invalid tracking result: {errors[0]}{more}")
