"""The Cell Tracking Challenge layout: images, ground truth and results.

``NN/tTTT.tif`` images; ``NN_GT/TRA/man_trackTTT.tif`` + ``man_track.txt``; ``NN_GT/SEG`` and
``NN_ST/SEG`` ``man_segTTT.tif``; results ``NN_RES/maskTTT.tif`` + ``res_track.txt``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from celltrail.core.errors import InputError
from celltrail.core.lineage import Lineage
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import (
    FolderSequence,
    ImageSequence,
    LabelSequence,
    check_link,
    open_sequence,
    read_tiff,
)
from celltrail.io.atomic import atomic_dir, atomic_file

_NUMBER = re.compile(r"(\d+)\.tiff?$", re.IGNORECASE)


def frame_digits(n_frames: int) -> int:
    """Digits of the frame number in CTC file names (3, or more for long sequences)."""
    return max(3, len(str(max(n_frames - 1, 0))))


def numbered_files(folder: Path, prefix: str) -> dict[int, Path]:
    """``{frame: path}`` of the files ``<prefix><number>.tif`` in a folder."""
    files: dict[int, Path] = {}
    for path in sorted(folder.glob(f"{prefix}*")):
        match = _NUMBER.search(path.name)
        if match and path.name[: match.start()] == prefix:
            frame = int(match.group(1))
            if frame in files:
                raise InputError(path, f"holds frame {frame}, as does {files[frame].name}")
            check_link(path)
            files[frame] = path
    return files


def companions(seq_dir: str | Path) -> list[Path]:
    """A CTC image folder ``NN`` and the folders read with it: ``NN_GT`` and ``NN_ST``."""
    seq_dir = Path(seq_dir)
    return [seq_dir, *(seq_dir.with_name(f"{seq_dir.name}{end}") for end in ("_GT", "_ST"))]


def read_images(folder: str | Path) -> ImageSequence:
    """Open a CTC image folder (``tTTT.tif``) or any folder or stack of TIFF frames."""
    return open_sequence(folder)


def read_man_track(path: str | Path) -> Lineage:
    """Read a CTC lineage file (``man_track.txt`` or ``res_track.txt``), checking its invariants."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "lineage file not found")
    rows = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read lineage file ({exc})") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 4 or not all(re.fullmatch(r"-?\d+", f) for f in fields):
            raise InputError(path, f"line {number}: expected 4 integers 'L B E P', found {line!r}")
        row = [int(f) for f in fields]
        if any(not -(2**63) <= value < 2**63 for value in row):
            raise InputError(path, f"line {number}: a number beyond the 64-bit integer range")
        rows.append(row)
    try:
        lineage = Lineage.from_array(np.array(rows, dtype=np.int64))
    except ValueError as exc:
        raise InputError(path, str(exc)) from exc
    errors = lineage.structure_errors()
    if errors:
        raise InputError(path, errors[0])
    return lineage


def write_man_track(lineage: Lineage, path: str | Path) -> None:
    """Write a lineage as CTC ``L B E P`` lines, atomically."""
    with atomic_file(path) as tmp:
        np.savetxt(tmp, lineage.to_array(), fmt="%d")


def _label_frames(folder: Path, prefix: str, what: str) -> LabelSequence:
    files = numbered_files(folder, prefix)
    if not files:
        raise InputError(folder, f"no {what} files '{prefix}TTT.tif'")
    missing = sorted(set(range(max(files) + 1)) - set(files))
    if missing:
        name = f"{prefix}{missing[0]:03d}.tif"
        raise InputError(folder, f"{what} frame {missing[0]} ('{name}') is missing")
    return LabelSequence(FolderSequence([files[t] for t in sorted(files)], str(folder)))


def read_tracking_gt(gt_dir: str | Path) -> TrackingResult:
    """Read ``NN_GT/TRA`` (markers and ``man_track.txt``) as a tracking result."""
    tra = Path(gt_dir) / "TRA"
    if not tra.is_dir():
        raise InputError(gt_dir, "no TRA folder: expected a CTC ground-truth folder 'NN_GT'")
    return TrackingResult(
        _label_frames(tra, "man_track", "TRA marker"), read_man_track(tra / "man_track.txt")
    )


def read_segmentation_gt(gt_dir: str | Path) -> dict[int, Path]:
    """``{frame: path}`` of the reference segmentations in ``NN_GT/SEG`` or ``NN_ST/SEG``."""
    seg = Path(gt_dir) / "SEG"
    if not seg.is_dir():
        raise InputError(gt_dir, "no SEG folder")
    files = numbered_files(seg, "man_seg")
    if not files:
        raise InputError(seg, "no 'man_segTTT.tif' files")
    return files


def read_result(res_dir: str | Path) -> TrackingResult:
    """Read a CTC result folder (``maskTTT.tif`` + ``res_track.txt``)."""
    res_dir = Path(res_dir)
    if not res_dir.is_dir():
        raise InputError(res_dir, "result folder not found")
    return TrackingResult(
        _label_frames(res_dir, "mask", "result mask"), read_man_track(res_dir / "res_track.txt")
    )


def check_valid(result: TrackingResult, where: str | Path, what: str) -> TrackingResult:
    """Raise :class:`InputError` naming ``where`` at the first violated CTC invariant of
    ``result`` (``what`` it is: result, ground truth); reads every mask."""
    errors = result.errors()
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InputError(where, f"not a valid {what}: {errors[0]}{more}")
    return result


def write_result(result: TrackingResult, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write a result as a CTC result folder, atomically: all of it or nothing. An existing
    folder is replaced only when celltrail wrote it (or with ``overwrite``)."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite) as tmp:
        store = MaskStore(tmp, digits=frame_digits(len(result.masks)))
        for mask in result.masks:
            store.append(mask)
        write_man_track(result.lineage, tmp / "res_track.txt")
    return out_dir


def gt_as_result(gt_dir: str | Path) -> TrackingResult:
    """The ground truth as a result: SEG masks where they exist (relabelled to the TRA label
    each region carries), TRA markers elsewhere. Scores 1.0 against its own ground truth."""
    truth = read_tracking_gt(gt_dir)
    seg_dir = Path(gt_dir) / "SEG"
    seg_files = read_segmentation_gt(gt_dir) if seg_dir.is_dir() else {}
    masks = []
    for t, markers in enumerate(truth.masks):
        if t in seg_files:
            masks.append(relabel_by_markers(read_tiff(seg_files[t]), markers))
        else:
            masks.append(markers)
    return TrackingResult(masks, truth.lineage)


def training_truth(seq_dir: str | Path) -> tuple[TrackingResult, dict[int, Path]]:
    """The TRA ground truth of a sequence folder ``NN`` and its segmentation masks by frame:
    ``NN_GT/SEG`` where present, else the silver truth ``NN_ST/SEG``."""
    seq_dir = Path(seq_dir)
    gt = seq_dir.with_name(f"{seq_dir.name}_GT")
    truth = read_tracking_gt(gt)
    files: dict[int, Path] = {}
    for source in (seq_dir.with_name(f"{seq_dir.name}_ST") / "SEG", gt / "SEG"):
        if source.is_dir():
            files.update(numbered_files(source, "man_seg"))  # GT overrides silver truth
    if not files:
        raise InputError(gt, "no segmentation masks (SEG in the GT or silver truth folder)")
    return truth, files


def annotated_frames(seq_dir: str | Path) -> list[int]:
    """The frames of a CTC sequence ``NN`` with a mask to learn from, in order."""
    return sorted(training_truth(seq_dir)[1])


def masked_cells(seg: np.ndarray, markers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The regions of ``seg`` labelled with the TRA identities of ``markers``, and apart from
    them the markers that have no region. Such a marker is a dot inside its cell, not the cell:
    Fluo-N2DH-GOWT1's GT masks 1-2 of each frame's 23-25 cells, so a model that learnt the dots
    as masks would learn cells a third too small and their surroundings as background."""
    labels = relabel_by_markers(seg, markers)
    masked = np.unique(labels[seg > 0])
    bare = (labels > 0) & ~np.isin(labels, masked)
    return np.where(bare, 0, labels), np.where(bare, labels, 0)


def relabel_by_markers(seg: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """Give each segmented region the marker label it overlaps most; keep markers it misses."""
    out = np.zeros(markers.shape, dtype=markers.dtype)
    fg = (seg > 0) & (markers > 0)
    overlap = np.stack([seg[fg].astype(np.int64), markers[fg].astype(np.int64)])
    pairs, counts = np.unique(overlap, axis=1, return_counts=True)
    best: dict[int, tuple[int, int]] = {}
    for (region, marker), count in zip(pairs.T, counts, strict=True):
        if count > best.get(int(marker), (0, 0))[1]:
            best[int(marker)] = (int(region), int(count))
    covered = set()
    for marker, (region, _) in best.items():
        if region in covered:  # one region holding two markers: the second keeps its marker
            out[markers == marker] = marker
            continue
        covered.add(region)
        out[seg == region] = marker
    for marker in np.unique(markers):
        if marker and marker not in best:
            out[(markers == marker) & (out == 0)] = marker
    return out
