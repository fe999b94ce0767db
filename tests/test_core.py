"""The data model: lazy sequences, lineage tables and the CTC invariants."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile

from celltrail.core import InputError, Lineage, MaskStore, Track, TrackingResult, open_sequence
from celltrail.core.lineage import lineage_from_presence, present


def write_frames(folder: Path, frames: np.ndarray, prefix: str = "t") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        tifffile.imwrite(folder / f"{prefix}{t:03d}.tif", frame)


def test_sources_agree(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (5, 16, 20), dtype=np.uint8)
    write_frames(tmp_path / "seq", frames)
    tifffile.imwrite(tmp_path / "stack.tif", frames)
    for source in (tmp_path / "seq", tmp_path / "stack.tif", frames):
        seq = open_sequence(source)
        assert (len(seq), seq.shape, seq.dtype) == (5, (16, 20), np.uint8)
        np.testing.assert_array_equal(np.stack(list(seq)), frames)
        np.testing.assert_array_equal(seq[-1], frames[4])


def test_folder_sorts_numbers_naturally(tmp_path: Path) -> None:
    """Frames go by number (t2 before t10); numbers with gaps are read in order only when
    the gaps are allowed."""
    for t in (0, 2, 10):
        tifffile.imwrite(tmp_path / f"t{t}.tif", np.full((4, 4), t, np.uint8))
    assert [int(f[0, 0]) for f in open_sequence(tmp_path, allow_gaps=True)] == [0, 2, 10]
    with pytest.raises(InputError, match=r"frame numbers jump from 0 \(t0\.tif\) to 2"):
        open_sequence(tmp_path)


def test_every_kth_frame(tmp_path: Path) -> None:
    frames = np.arange(7 * 4, dtype=np.uint8).reshape(7, 2, 2)
    write_frames(tmp_path, frames)
    seq = open_sequence(tmp_path).every(3)
    assert (len(seq), seq.shape) == (3, (2, 2))
    np.testing.assert_array_equal(np.stack(list(seq)), frames[::3])
    np.testing.assert_array_equal(seq[-1], frames[6])
    assert seq.source_of(1) == str(tmp_path / "t003.tif")
    assert open_sequence(frames).every(2).every(2)[1][0, 0] == frames[4][0, 0]
    with pytest.raises(InputError, match=r"^frame step must be at least 1, got 0$"):
        seq.every(0)


def test_streaming_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    frames = np.zeros((40, 256, 256), np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", frames)
    seq = open_sequence(tmp_path / "stack.tif")
    tracemalloc.start()
    for frame in seq:
        assert frame.shape == (256, 256)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10 * frames[0].nbytes  # a few frames at most, never the 40 of the stack


def written(path: Path, content: bytes | np.ndarray) -> Path:
    """Write raw bytes or an array as TIFF to ``path`` and return the path."""
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        tifffile.imwrite(path, content, photometric="minisblack")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such file or folder"),
        (lambda p: p, "folder holds no TIFF images"),
        (lambda p: written(p / "bad.tif", b"not a tiff"), "not a readable TIFF"),
        (lambda p: written(p / "c.tif", np.zeros((2, 3, 4, 5), np.uint8)),
         "expected a (T, Y, X) stack"),
        (lambda p: written(p / "z.tif", np.zeros((2, 3, 4), np.complex64)),
         "unsupported pixel type complex64"),
    ],
)
def test_bad_sources_name_file_and_problem(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(InputError) as err:
        open_sequence(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_frames_of_different_shapes(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "t000.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(tmp_path / "t001.tif", np.zeros((8, 9), np.uint8))
    with pytest.raises(InputError, match=r"t001.tif: frame shape \(8, 9\) differs from \(8, 8\)"):
        open_sequence(tmp_path)


def test_rgb_frame_is_not_2d(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "t000.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(InputError, match=r"expected a 2D image, found shape \(8, 8, 3\)"):
        open_sequence(tmp_path)


def lineage_masks() -> tuple[list[np.ndarray], Lineage]:
    """Cell 1 in frames 0-1 divides into 2 and 3 (frames 2-3)."""
    masks = [np.zeros((10, 10), np.uint16) for _ in range(4)]
    masks[0][2:4, 2:4] = masks[1][2:4, 2:4] = 1
    for t in (2, 3):
        masks[t][1:3, 1:3] = 2
        masks[t][5:7, 5:7] = 3
    lineage = Lineage([Track(1, 0, 1), Track(2, 2, 3, 1), Track(3, 2, 3, 1)])
    return masks, lineage


def test_valid_result_and_graph() -> None:
    masks, lineage = lineage_masks()
    result = TrackingResult(masks, lineage)
    assert result.errors() == []
    assert sorted(result.graph.edges) == [(1, 2), (1, 3)]
    assert lineage.divisions() == {1: [2, 3]}
    np.testing.assert_array_equal(Lineage.from_array(lineage.to_array()).to_array(),
                                  [[1, 0, 1, 0], [2, 2, 3, 1], [3, 2, 3, 1]])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m, tr: m[3].__setitem__((0, 0), 1), "frame 3: label 1 lies outside its frames 0-1"),
        (lambda m, tr: m[3].__setitem__((0, 0), 9), "frame 3: label 9 is not in the lineage table"),
        (lambda m, tr: m[2].__setitem__(m[2] == 3, 0),
         "label 3 is missing from 1 of its frames 2-3 (an undeclared gap)"),
        (lambda m, tr: tr.append(Track(4, 1, 2, 1)), "label 4 begins at frame 1 but its parent 1 "
                                                     "ends at frame 1"),
        (lambda m, tr: tr.append(Track(5, 3, 3, 7)), "label 5: parent 7 is not in the table"),
        (lambda m, tr: tr.append(Track(6, 2, 9, 0)), "label 6 ends at frame 9 beyond the last"),
    ],
)
def test_each_invariant_has_its_error(edit, message: str) -> None:
    masks, lineage = lineage_masks()
    tracks = list(lineage.values())
    edit(masks, tracks)
    errors = TrackingResult(masks, Lineage(tracks)).errors()
    assert any(e.startswith(message) for e in errors), errors


def test_mask_store_memory_and_folder_agree(tmp_path: Path) -> None:
    masks, _ = lineage_masks()
    memory, disk = MaskStore(), MaskStore(tmp_path, digits=4)
    for mask in masks:
        memory.append(mask)
        disk.append(mask)
    assert (tmp_path / "mask0003.tif").is_file()
    for a, b, c in zip(memory, disk, masks, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)


def test_present_lists_the_painted_labels() -> None:
    mask = np.array([[0, 7, 7], [3, 0, 300]], np.uint32)
    assert present(mask) == [3, 7, 300]
    assert present(np.zeros((2, 2), np.uint16)) == []


def test_lineage_from_presence_declares_gaps() -> None:
    lineage, mapping = lineage_from_presence({1: [0, 1, 2, 5, 6], 2: [7, 8], 3: [3]}, {2: 1})
    assert lineage.to_array().tolist() == [[1, 0, 2, 0], [2, 7, 8, 4], [3, 3, 3, 0], [4, 5, 6, 1]]
    assert mapping[(1, 5)] == 4 and mapping[(1, 2)] == 1
    assert lineage.structure_errors() == []


def test_from_masks_splits_runs_and_keeps_parents() -> None:
    masks = [np.zeros((4, 4), np.uint16) for _ in range(5)]
    for t in (0, 1, 3):  # label 5 vanishes in frame 2 and comes back in frame 3
        masks[t][0, 0] = 5
    masks[4][3, 3] = 8  # its child, after it ends
    result = TrackingResult.from_masks(masks, {8: 5})
    assert result.lineage.to_array().tolist() == [[5, 0, 1, 0], [8, 4, 4, 9], [9, 3, 3, 5]]
    assert result.masks[3][0, 0] == 9 and result.masks[0][0, 0] == 5
    assert result.errors() == []


def test_errors_from_known_frame_labels_match_a_reading_of_the_masks() -> None:
    masks, lineage = lineage_masks()
    masks[2][masks[2] == 3] = 0
    masks[3][0, 0] = 9
    result = TrackingResult(masks, lineage)
    labels = [sorted(set(np.unique(m).tolist()) - {0}) for m in masks]
    assert result.errors(labels) == result.errors()
    assert len(result.errors()) == 2


def test_track_book_grows_a_valid_lineage() -> None:
    """Tracks started, extended, restarted after a gap (CTC: a new track, parent the old one)
    and given explicit labels come out as the L B E P table."""
    from celltrail.core.lineage import TrackBook

    book = TrackBook()
    mother = book.new(0)
    book.extend(mother, 3)
    first, second = book.new(4, parent=mother), book.new(4, parent=mother)
    assert book.continue_or_restart(first, 5) == first
    assert book.continue_or_restart(second, 7) == 4  # a gap: frames 5-6 missing
    assert book.new(2, label=10) == 10 and book.new(3) == 11
    assert sorted((t.label, t.begin, t.end, t.parent) for t in book.lineage().values()) == [
        (1, 0, 3, 0), (2, 4, 5, 1), (3, 4, 4, 1), (4, 7, 7, 3), (10, 2, 2, 0), (11, 3, 3, 0)]
    assert book.lineage().structure_errors() == []
