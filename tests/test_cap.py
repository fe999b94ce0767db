"""CAP: the point representation and its round trip, rolling-window inference, the correlation
lookup, losses with known values, training windows, a tiny model overfitting a window, saving,
resuming, the CLI, and a shipped model on the bundled sample."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from celltrail.cli import app
from celltrail.core.lineage import Lineage, Track
from celltrail.core.sequence import ArraySequence, open_sequence
from celltrail.io.ctc import read_result
from celltrail.methods.cap import CAPTracker
from celltrail.methods.cap.points import PointTracks, Trajectories, encode, read_window
from celltrail.methods.cap.raw import rolling_windows
from celltrail.methods.cap.tracker import (
    MAX_GAP,
    confirm_divisions,
    mothers_of,
    pack,
    paint_markers,
    unpack,
)
from celltrail.metrics import evaluate_result
from celltrail.models.cap import CAPConfig, CAPNet, load_checkpoint, network_from
from celltrail.models.checkpoint import save_checkpoint
from celltrail.models.zoo import model_names
from celltrail.segmentation import Segmenter
from celltrail.simulate import SimParams, simulate
from celltrail.training.cap import SampleParams, Sampler, TrainParams, load_sequence, train
from celltrail.training.cap import loop as cap_loop
from celltrail.training.cap.data import _turn, relief
from celltrail.training.cap.loop import window_loss
from celltrail.training.cap.losses import match_daughters, trajectory_loss, visibility_loss

TINY = CAPConfig(channels=(8, 16), feature_dim=16, hidden=32, heads=2, depth=1, iterations=2,
                 levels=2, radius=1)
runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _hand_made() -> tuple[dict[int, dict[int, np.ndarray]], Lineage]:
    """Cell 1 moves for frames 0–3 and divides into 2 and 3 (frames 4–7); cell 4 lives
    throughout; cell 5 dies after frame 2."""
    f32 = np.float32
    positions = {
        1: {t: np.array([10 + t, 10], f32) for t in range(4)},
        2: {t: np.array([14 + t, 5], f32) for t in range(4, 8)},
        3: {t: np.array([14 + t, 16], f32) for t in range(4, 8)},
        4: {t: np.array([40, 10 + 2 * t], f32) for t in range(8)},
        5: {t: np.array([60, 60 - t], f32) for t in range(3)},
    }
    lineage = Lineage([Track(1, 0, 3), Track(2, 4, 7, 1), Track(3, 4, 7, 1), Track(4, 0, 7),
                       Track(5, 0, 2)])
    return positions, lineage


def test_encoding_follows_figure_2() -> None:
    positions, lineage = _hand_made()
    target = encode(positions, lineage, [1, 4, 5], 0, 8)
    # (a) before the division: M visible, daughters invisible on the mother
    assert target.visible[3, 0].tolist() == [True, False, False]
    np.testing.assert_array_equal(target.points[3, 0], [[13, 10]] * 3)
    # (c) after it: both daughters visible, M invisible at their mean
    assert target.visible[4, 0].tolist() == [False, True, True]
    np.testing.assert_array_equal(target.points[4, 0], [[18, 10.5], [18, 5], [18, 16]])
    # a dead cell: all invisible, no point target
    assert target.visible[5, 2].tolist() == [False] * 3
    assert target.visible_valid[5, 2].all() and not target.point_valid[5, 2].any()


def test_encoding_round_trips_a_lineage_with_a_division_exactly() -> None:
    positions, lineage = _hand_made()
    target = encode(positions, lineage, [1, 4, 5], 0, 8)
    tracks = PointTracks()
    labels = [tracks.new(0, 0, target.points[0, i, 0]) for i in range(3)]
    last, alive = read_window(target.points, target.visible, labels, 0, tracks,
                              stop_at_division=False)
    assert last == 7
    # new labels: 1, 4, 5 -> 1, 2, 3; daughters 2, 3 -> 4, 5
    rename = {1: 1, 4: 2, 5: 3, 2: 4, 3: 5}
    assert sorted(alive) == [2, 4, 5]
    expected = Lineage(Track(rename[t.label], t.begin, t.end, rename.get(t.parent, 0))
                       for t in lineage.values())
    np.testing.assert_array_equal(tracks.lineage().to_array(), expected.to_array())
    for old, new in rename.items():
        assert tracks[new].positions.keys() == positions[old].keys()
        for t, where in positions[old].items():
            np.testing.assert_array_equal(tracks[new].positions[t], where)


def test_encoding_treats_a_single_child_as_the_same_cell_and_skips_gaps() -> None:
    f32 = np.float32
    positions = {1: {0: np.array([5, 5], f32), 1: np.array([6, 5], f32)},
                 2: {3: np.array([8, 5], f32)}}
    lineage = Lineage([Track(1, 0, 1), Track(2, 3, 3, 1)])  # a gap at frame 2
    target = encode(positions, lineage, [1], 0, 4)
    assert target.visible[:, 0, 0].tolist() == [True, True, False, True]
    assert not target.visible_valid[2, 0].any() and not target.point_valid[2, 0].any()
    np.testing.assert_array_equal(target.points[3, 0, 0], [8, 5])


def test_raw_adds_the_daughters_as_queries_and_restarts_at_the_division() -> None:
    calls = []

    def predict(start: int, stop: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append((start, stop, len(queries)))
        steps = stop - start
        points = np.repeat(queries[None, :, None], 3, axis=2).repeat(steps, 0)
        visible = np.zeros((steps, len(queries), 3), bool)
        visible[:, :, 0] = True
        if start == 0:  # the first query divides at frame 5
            dt = 5 - start
            visible[dt:, 0] = [False, True, True]
            points[dt:, 0, 1] += [0, -5]
            points[dt:, 0, 2] += [0, 5]
        return points.astype(np.float32), visible

    queries = np.array([[20, 20], [50, 50]], np.float32)
    tracks = rolling_windows(predict, 20, queries, 8)
    assert calls == [(0, 8, 2), (5, 13, 3), (12, 20, 3)]
    lineage = tracks.lineage()
    assert lineage.to_array().tolist() == [[1, 0, 4, 0], [2, 0, 19, 0], [3, 5, 19, 1],
                                           [4, 5, 19, 1]]
    np.testing.assert_array_equal(tracks[3].positions[5], [20, 15])
    with pytest.raises(ValueError, match="at least 2 frames"):
        rolling_windows(predict, 20, queries, 1)


def test_a_daughter_on_another_cell_is_that_cell() -> None:
    # query 0 (a newborn at (20, 20)) "divides" at frame 1: one daughter stays on it, the other
    # lands on query 1 (at (20, 28)), which stays visible. Within radius 5 that daughter is query
    # 1 itself, so query 0 just moves on (no new track); with radius 0 it is a division.
    points = np.zeros((3, 2, 3, 2), np.float32)
    points[:, 0] = [20, 20]
    points[:, 1] = [20, 28]
    points[1:, 0, 2] = [20, 27]
    points[1:, 0, 1] = [21, 20]
    visible = np.zeros((3, 2, 3), bool)
    visible[:, 1, 0] = visible[0, 0, 0] = True
    visible[1:, 0, 1:] = True
    for radius, expected in ((5.0, [[1, 0, 2, 0], [2, 0, 2, 0]]),
                             (0.0, [[1, 0, 0, 0], [2, 0, 1, 0], [3, 1, 1, 1], [4, 1, 1, 1]])):
        tracks = PointTracks()
        labels = [tracks.new(0, 0, points[0, i, 0]) for i in range(2)]
        last, alive = read_window(points, visible, labels, 0, tracks, radius=radius)
        assert tracks.lineage().to_array().tolist() == expected
    # the division stopped the read at frame 1; without it, query 0 follows its daughter
    assert (last, alive) == (1, [2, 3, 4])
    tracks = PointTracks()
    labels = [tracks.new(0, 0, points[0, i, 0]) for i in range(2)]
    read_window(points, visible, labels, 0, tracks, radius=5.0)
    np.testing.assert_array_equal(tracks[1].positions[2], [21, 20])


def _standing(start: int, stop: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every query stays where it is, visible and undivided."""
    steps = stop - start
    points = np.repeat(queries[None, :, None], 3, axis=2).repeat(steps, 0)
    visible = np.zeros((steps, len(queries), 3), bool)
    visible[:, :, 0] = True
    return points.astype(np.float32), visible


def test_raw_adds_new_cells_and_drops_what_the_review_rejects() -> None:
    calls, seen = [], {}

    def predict(start: int, stop: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append((start, stop, len(queries)))
        return _standing(start, stop, queries)

    def review(t: int, labels: list[int], points: np.ndarray) -> tuple[np.ndarray, ...]:
        seen[t] = labels, points.tolist()
        new = np.array([[80, 80]] if t == 3 else [], np.float32).reshape(-1, 2)
        drop = np.array([t == 6 and i == 1 for i in range(len(points))])
        return points, drop, new, np.zeros(len(new), np.int64)

    queries = np.array([[20, 20], [50, 50]], np.float32)
    tracks = rolling_windows(predict, 12, queries, 8, review=review)
    # the new cell joins at frame 3 and the next window starts there; query 2 is dropped at 6
    assert calls == [(0, 8, 2), (3, 11, 3), (10, 12, 2)]
    assert tracks.lineage().to_array().tolist() == [[1, 0, 11, 0], [2, 0, 5, 0], [3, 3, 11, 0]]
    assert seen[3] == ([1, 2], [[20, 20], [50, 50]]) and seen[7] == ([1, 3], [[20, 20], [80, 80]])


def test_raw_shortens_windows_after_a_cut_and_grows_them_back() -> None:
    calls = []

    def predict(start: int, stop: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append((start, stop))
        return _standing(start, stop, queries)

    def review(t: int, labels: list[int], points: np.ndarray) -> tuple[np.ndarray, ...]:
        new = np.array([[10 * t, 90]] if t in (3, 4) else [], np.float32).reshape(-1, 2)
        return points, np.zeros(len(points), bool), new, np.zeros(len(new), np.int64)

    queries = np.array([[20, 20]], np.float32)
    rolling_windows(predict, 30, queries, 8, review=review, shortest=2)
    # cut after 3 frames read (next: 6), after 1 (next: the shortest, 2); a window read to its
    # end is followed by one twice as long, up to the full window
    assert calls == [(0, 8), (3, 9), (4, 6), (5, 9), (8, 16), (15, 23), (22, 30)]


def test_raw_makes_a_division_of_a_new_cell_the_review_gives_a_mother() -> None:
    calls = []

    def predict(start: int, stop: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append((start, stop, len(queries)))
        return _standing(start, stop, queries)

    def review(t: int, labels: list[int], points: np.ndarray) -> tuple[np.ndarray, ...]:
        new = np.array([[20, 30]] if t == 3 else [], np.float32).reshape(-1, 2)
        return points, np.zeros(len(points), bool), new, np.ones(len(new), np.int64)

    queries = np.array([[20, 20], [50, 50]], np.float32)
    tracks = rolling_windows(predict, 8, queries, 8, review=review)
    # track 1 ends at frame 2; her point and the new cell are her daughters from frame 3
    assert calls == [(0, 8, 2), (3, 8, 3)]
    assert tracks.lineage().to_array().tolist() == [[1, 0, 2, 0], [2, 0, 7, 0], [3, 3, 7, 1],
                                                    [4, 3, 7, 1]]
    np.testing.assert_array_equal(tracks[3].positions[3], [20, 20])
    np.testing.assert_array_equal(tracks[4].positions[3], [20, 30])


def test_mothers_are_found_by_the_linkers_division_test() -> None:
    before = {1: np.array([50.0, 50.0]), 2: np.array([10.0, 10.0])}
    # mother 1's point moved onto one daughter (50, 42); the new cell (50, 59) is the other.
    # (50, 75) is too far from her, (12, 10) lies beside cell 2, which has not moved: not
    # between two daughters. Diameter 20: gate 16 px, relaxed 24, daughters within 40 px.
    found = np.array([[50, 75], [50, 59], [12, 10]], np.float32)
    points = {1: np.array([50.0, 42.0]), 2: np.array([10.0, 10.0])}
    assert mothers_of(found, points, before, 20.0).tolist() == [0, 1, 0]
    # a mother gets one new daughter: the one that puts her nearest the daughters' midpoint
    twins = np.array([[50, 59], [50, 58]], np.float32)
    assert mothers_of(twins, points, before, 20.0).tolist() == [0, 1]


def test_a_division_stands_only_if_both_daughters_last() -> None:
    tracks = PointTracks()
    for parent, start, stop in ((0, 0, 3), (1, 3, 6), (1, 3, 5), (0, 0, 9), (4, 3, 9),
                                (4, 3, 9), (2, 6, 9), (2, 6, 8)):
        label = tracks.new(parent, start, np.zeros(2))
        tracks[label].positions.update({t: np.full(2, label, np.float32)
                                        for t in range(start, stop)})
    confirm_divisions(tracks, 3)
    # 1's daughter 3 lasts 2 frames: 2 goes back into 1 and 3 has no parent; 2's daughters are
    # then 1's, and 8 lasts 2 frames: 7 goes back into 1 too. 4's daughters both last 6 frames.
    assert tracks.lineage().to_array().tolist() == [
        [1, 0, 8, 0], [3, 3, 4, 0], [4, 0, 8, 0], [5, 3, 8, 4], [6, 3, 8, 4], [8, 6, 7, 0]]
    assert [tracks[1].positions[t][0] for t in (2, 5, 8)] == [1, 2, 7]


def test_persist_keeps_an_invisible_cell_on_its_point() -> None:
    points, visible = _standing(0, 4, np.array([[5, 5]], np.float32))
    points[2:, 0, 0] = [6, 6]
    visible[2:] = False  # the model loses the cell at frame 2
    for persist, end in ((False, 1), (True, 3)):
        tracks = PointTracks()
        labels = [tracks.new(0, 0, points[0, 0, 0])]
        read_window(points, visible, labels, 0, tracks, persist=persist)
        assert max(tracks[1].positions) == end
    np.testing.assert_array_equal(tracks[1].positions[3], [6, 6])


def test_raw_looks_for_cells_when_none_is_left() -> None:
    def review(t: int, labels: list[int], points: np.ndarray) -> tuple[np.ndarray, ...]:
        drop = np.full(len(points), t == 2)  # the only cell is lost at frame 2
        new = np.array([[9, 9]] if t == 5 else [], np.float32).reshape(-1, 2)
        return points, drop, new, np.zeros(len(new), np.int64)

    tracks = rolling_windows(_standing, 8, np.array([[1, 1]], np.float32), 4, review=review)
    assert tracks.lineage().to_array().tolist() == [[1, 0, 1, 0], [2, 5, 7, 0]]


def test_review_keeps_one_point_per_detected_cell_and_finds_new_cells() -> None:
    yy, xx = np.mgrid[:64, :96]
    image = np.full((64, 96), 10, np.uint16)
    for cy, cx in ((20, 20), (40, 70)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = 200
    tracker, detector = CAPTracker(), Segmenter("fluo-nuclei", 12)
    images = ArraySequence(np.stack([image, image]))
    check = tracker.review(images, 5.0, detector)
    # oldest first: a point on the background 3 px from cell B's point, one on B (whose
    # segment reaches x = 60), one on A, a younger one 2.8 px from it, one off the image. B's
    # point wins over the older background one.
    points = np.array([[40, 58], [40, 61], [20, 21], [22, 23], [-1, 30]], np.float32)
    where, drop, new, _ = check(1, [1, 2, 3, 4, 5], points)
    assert drop.tolist() == [True, False, False, True, True]
    np.testing.assert_array_equal(where, points)
    assert new.shape == (0, 2)
    # with cell B uncovered, it is a new cell at its centroid
    _, drop, new, _ = check(1, [3, 4], points[2:4])
    assert drop.tolist() == [False, True]
    np.testing.assert_allclose(new, [[40, 70]], atol=0.01)
    # a point on the background within a radius (15 px) of free cell B's centre moves there
    where, drop, new, _ = tracker.review(images, 15.0, detector)(
        1, [1, 2], np.array([[20, 21], [40, 57]], np.float32))
    assert drop.tolist() == [False, False] and new.shape == (0, 2)
    np.testing.assert_allclose(where[1], [40, 70], atol=0.01)


def test_review_lets_a_point_on_no_cell_go_on_for_a_short_gap() -> None:
    yy, xx = np.mgrid[:64, :96]
    image = np.full((64, 96), 10, np.uint16)
    image[(yy - 20) ** 2 + (xx - 20) ** 2 <= 36] = 200
    images, detector = ArraySequence(np.stack([image] * 8)), Segmenter("fluo-nuclei", 12)
    coasting: dict[int, list[int]] = {}
    check = CAPTracker().review(images, 5.0, detector, coasting)
    on_cell, background = [20, 20], [40, 70]
    # track 2 sits on the background: kept MAX_GAP frames in a row, dropped on the next
    dropped = [check(t, [1, 2], np.array([on_cell, background], np.float32))[1].tolist()
               for t in range(1, MAX_GAP + 3)]
    assert MAX_GAP == 2
    assert dropped == [[False, False]] * MAX_GAP + [[False, True]] * 2
    assert coasting == {1: [], 2: [1, 2, 3, 4]}
    # back on a cell, the count starts again
    check(5, [2], np.array([on_cell], np.float32))
    assert coasting[2] == []
    assert check(6, [1, 2], np.array([background, on_cell], np.float32))[1].tolist() == [
        False, False]
    # a point on no cell yields to a younger one on a cell within the radius
    where, drop, *_ = CAPTracker().review(images, 15.0, detector)(
        1, [1, 2], np.array([[20, 33], on_cell], np.float32))
    assert drop.tolist() == [True, False]
    np.testing.assert_array_equal(where[0], [20, 33])


def test_a_cell_that_vanishes_ends_its_track_in_its_last_frame(
        monkeypatch: pytest.MonkeyPatch) -> None:
    yy, xx = np.mgrid[:64, :96]
    frames = np.full((8, 64, 96), 10, np.uint16)
    for t, cy, cx in [(t, 32, 48) for t in range(4)] + [(t, 20, 20) for t in range(6, 8)]:
        frames[t][(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = 200
    seen: list[int] = []
    detect = Segmenter.__call__
    monkeypatch.setattr(Segmenter, "__call__",
                        lambda self, image: seen.append(0) or detect(self, image))
    result = CAPTracker(preset="fluo-nuclei", diameter=12).track(ArraySequence(frames))
    assert len(seen) == 8  # the detector sees each frame once, the first included
    # the first cell's point went on for MAX_GAP frames on no cell (4, 5); those are not kept.
    # The second cell is new in frame 6.
    assert result.lineage.to_array().tolist() == [[1, 0, 3, 0], [2, 6, 7, 0]]


def test_review_without_the_detector_drops_only_off_image_and_crowded_points() -> None:
    tracker = CAPTracker(new_cells=False)
    check = tracker.review(ArraySequence(np.zeros((2, 64, 96), np.uint16)), 5.0, None)
    _, drop, new, _ = check(1, [1, 2, 3, 4],
                         np.array([[40, 62], [42, 64], [-1, 30], [63.9, 5]], np.float32))
    assert drop.tolist() == [False, True, True, False]
    assert new.shape == (0, 2)


def test_correlation_is_the_inner_product_at_each_offset() -> None:
    torch.manual_seed(0)
    net = CAPNet(TINY)
    fmap = torch.randn(1, 16, 8, 8)
    feature = torch.randn(1, 1, 16)
    # the centre of feature pixel (2, 3) at stride 4 is image position (9.5, 13.5)
    points = torch.tensor([9.5, 13.5]).expand(1, 1, 3, 2)
    corr = net.correlation(net.pyramid(fmap), feature, points, (32, 32))
    assert corr.shape == (1, 1, 3 * 2 * 9)
    scale = math.sqrt(16)
    for index, (y, x) in ((4, (2, 3)), (1, (1, 3)), (5, (2, 4))):  # centre, up, right
        expected = float(feature[0, 0] @ fmap[0, :, y, x]) / scale
        assert float(corr[0, 0, index]) == pytest.approx(expected, abs=1e-5)


def _whole_map_correlation(net: CAPNet, levels: list[torch.Tensor], features: torch.Tensor,
                           points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Eq. (1) the direct way: inner products with whole maps, sampled by ``grid_sample``."""
    steps, cells = points.shape[:2]
    out = []
    for s, fmap in enumerate(levels):
        maps = torch.einsum("tnc,tchw->tnhw", features, fmap) / math.sqrt(features.shape[-1])
        around = (points[:, :, :, None] + net.grid * (4 * 2**s)).reshape(steps * cells, -1, 2)
        xy = torch.stack([(around[..., 1] + 0.5) / size[1], (around[..., 0] + 0.5) / size[0]], -1)
        sampled = F.grid_sample(maps.reshape(steps * cells, 1, *maps.shape[2:]),
                                xy[:, :, None] * 2 - 1, align_corners=False, padding_mode="border")
        out.append(sampled.reshape(steps, cells, -1))
    return torch.cat(out, -1)


def test_correlation_equals_whole_map_products_sampled() -> None:
    torch.manual_seed(0)
    net = CAPNet(TINY)
    levels = net.pyramid(torch.randn(3, 16, 16, 24))  # a 64 × 96 image
    features = torch.randn(3, 5, 16)
    points = torch.rand(3, 5, 3, 2) * torch.tensor([84.0, 116.0]) - 10  # some off the image
    points[0, 0, 0] = torch.tensor([-40.0, 200.0])  # far off: border values only
    expected = _whole_map_correlation(net, levels, features, points, (64, 96))
    corr = net.correlation(levels, features, points, (64, 96))
    torch.testing.assert_close(corr, expected, atol=1e-5, rtol=1e-5)
    # per frame, as the tracker passes its cached pyramid
    frames = [[level[t] for t in range(3)] for level in levels]
    torch.testing.assert_close(net.correlation(frames, features, points, (64, 96)), corr)


def test_correlation_memory_does_not_grow_with_the_image() -> None:
    """Products with whole maps would make a (frames × cells × h × w) tensor: 64 times larger
    on the larger map. Only the pixels around the points may be read."""
    torch.manual_seed(0)
    net = CAPNet(TINY)
    features, points = torch.randn(2, 40, 16), torch.rand(2, 40, 3, 2) * 120

    def largest(side: int) -> int:
        levels = net.pyramid(torch.randn(2, 16, side, side))
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                    profile_memory=True) as prof, torch.inference_mode():
            net.correlation(levels, features, points, (4 * side, 4 * side))
        return max(event.cpu_memory_usage for event in prof.events())

    small, large = largest(32), largest(256)
    assert 0 < large <= small < 2 * 40 * 32 * 32 * 4  # under one small whole-map product


def test_losses_known_values() -> None:
    target = torch.zeros(1, 1, 3, 2)
    valid = torch.tensor([[[True, True, False]]])
    points = target.clone()
    points[0, 0, 0] = torch.tensor([3.0, 4.0])  # 5 px off: 1.25 feature pixels
    assert float(trajectory_loss([points], target, valid)) == pytest.approx(0.625)
    assert float(trajectory_loss([points, points], target, valid)) == pytest.approx(0.625 * 1.8)
    logits = torch.zeros(1, 1, 3)
    visible = torch.tensor([[[True, False, True]]])
    assert float(visibility_loss(logits, visible, torch.ones(1, 1, 3, dtype=torch.bool))) \
        == pytest.approx(math.log(2))
    target = torch.tensor([[[[0.0, 0], [0, 0], [0, 10]]]])
    swapped = torch.tensor([[[[0.0, 0], [0, 10], [0, 0]]]])
    everywhere = torch.ones(1, 1, 3, dtype=torch.bool)
    assert match_daughters(swapped, target, everywhere).tolist() == [True]
    assert match_daughters(target, target, everywhere).tolist() == [False]


def test_paint_markers_gives_overlaps_to_the_nearest_centre() -> None:
    out = paint_markers((30, 30), np.array([[10, 10], [10, 16], [0, 29]], np.float32),
                      np.array([1, 2, 3]), 5.0)
    assert out[10, 12] == 1 and out[10, 14] == 2 and out[10, 21] == 2
    assert out[10, 22] == 0 and out[0, 29] == 3
    ys, xs = np.nonzero(out == 1)
    assert np.all((ys - 10) ** 2 + (xs - 10) ** 2 <= (ys - 10) ** 2 + (xs - 16) ** 2)
    assert (out == 3).sum() == sum(1 for y in range(30) for x in range(30)
                                   if y**2 + (x - 29) ** 2 <= 25)


def test_paint_markers_take_the_detected_cell_within_a_diameter() -> None:
    foreground = np.zeros((30, 40), bool)
    foreground[5:15, 5:35] = True  # one long cell; the point sits near its left end
    out = paint_markers((30, 40), np.array([[10, 10]], np.float32), np.array([7]), 5.0,
                        foreground)
    # the disc (radius 5) on and off the cell, the cell out to a diameter (10), nothing beyond
    assert out[10, 15] == 7 and out[14, 10] == 7 and out[15, 10] == 7
    assert out[10, 20] == 7 and out[10, 21] == 0 and out[18, 10] == 0
    assert (out == 7).sum() == sum(
        1 for y in range(30) for x in range(40)
        if (d2 := (y - 10) ** 2 + (x - 10) ** 2) <= 25 or (foreground[y, x] and d2 <= 100))
    # a second point on the cell takes the pixels nearer to it
    two = paint_markers((30, 40), np.array([[10, 10], [10, 24]], np.float32),
                        np.array([7, 8]), 5.0, foreground)
    assert two[10, 16] == 7 and two[10, 18] == 8 and two[10, 34] == 8


def test_foreground_packs_to_a_few_bytes_and_back() -> None:
    y, x = np.mgrid[:101, :203]
    cells = ((y - 30) ** 2 + (x - 40) ** 2 < 400) | ((y - 70) ** 2 + (x - 150) ** 2 < 300)
    data = pack(cells)
    assert np.array_equal(unpack(data, cells.shape), cells) and cells.any()
    assert len(data) < cells.size / 16  # half what the bits alone would take


@pytest.mark.parametrize("turns", range(4))
@pytest.mark.parametrize("flip", [False, True])
def test_turning_a_crop_moves_its_points_with_it(turns: int, flip: bool) -> None:
    frames = torch.zeros(1, 1, 16, 16)
    frames[0, 0, 3, 12] = 1.0
    points = np.array([[[[3, 12]] * 3]], np.float32)
    target = Trajectories(points, np.ones((1, 1, 3), bool), np.ones((1, 1, 3), bool),
                          np.ones((1, 1, 3), bool))
    frames, target = _turn(frames, target, turns, flip)
    y, x = target.points[0, 0, 0].astype(int)
    assert frames[0, 0, y, x] == 1.0


def test_relief_is_the_derivative_along_the_angle() -> None:
    ramp = torch.arange(10.0).expand(1, 1, 10, 10).clone()  # rises by 1 per column
    along = relief(ramp, 0.0)[0, 0, 1:-1, 1:-1]
    assert torch.allclose(along, torch.ones_like(along))  # derivative 1, scaled to 1
    across = relief(ramp, math.pi / 2)[0, 0]
    assert torch.allclose(across, torch.full_like(across, 0.5), atol=1e-5)  # flat: background


@pytest.fixture(scope="module")
def sim_sequence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sim")
    params = SimParams(frames=16, size=96, cells=8, cell_diameter=18.0, displacement=0.2,
                       division_rate=0.1, mitosis_frames=2)
    simulate(root, params, seed=3)  # 5 divisions
    return root / "01"


def test_aeg_windows_hold_a_whole_division(sim_sequence: Path) -> None:
    sequence = load_sequence(sim_sequence)
    assert sequence.divisions
    sampler = Sampler([sequence], SampleParams(length=8, crop=96, aeg=1.0, zoom=1.0),
                      np.random.default_rng(0))
    for _ in range(5):
        window = sampler.sample()
        mothers = window.target.visible[0, :, 0]
        daughters = window.target.visible[:, :, 1:].any(axis=(0, 2))
        assert (mothers & daughters).any()  # a query that divides inside the window
        assert window.frames.shape == (8, 1, 96, 96)


def test_tiny_model_overfits_one_window(sim_sequence: Path) -> None:
    torch.manual_seed(0)
    sampler = Sampler([load_sequence(sim_sequence)],
                      SampleParams(length=12, crop=96, aeg=1.0), np.random.default_rng(1))
    window = sampler.sample()
    net = CAPNet(TINY)
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(200):
        loss, _ = window_loss(net, window)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] / 10


def test_saved_model_reloads_with_weights_only_and_gives_identical_outputs(tmp_path: Path
                                                                          ) -> None:
    torch.manual_seed(0)
    net = CAPNet(TINY).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.half().float())  # the finished model is saved in half precision
    path = tmp_path / "m.pt"
    save_checkpoint(net, path, {"kind": "cap", "window": 8, "spacing": 40.0})
    again = network_from(load_checkpoint(path))
    frames, queries = torch.randn(6, 1, 32, 32), torch.tensor([[10.0, 12.0], [20.0, 5.0]])
    with torch.no_grad():
        a, b = net(frames, queries), again(frames, queries)
    assert torch.equal(a.points[-1], b.points[-1]) and torch.equal(a.visibility, b.visibility)


def test_training_resumes_after_an_interruption(sim_sequence: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cap_loop, "CHECKPOINT_EVERY", 2)
    params = TrainParams(steps=4, sample=SampleParams(length=8, crop=64), config=TINY)
    sequence = load_sequence(sim_sequence)

    def stop(step: int, _: float) -> None:
        if step == 2:
            raise KeyboardInterrupt

    out = tmp_path / "m.pt"
    with pytest.raises(KeyboardInterrupt):
        train([sequence], out, params, progress=stop)
    assert load_checkpoint(out)["step"] == 2 and "optimiser" in load_checkpoint(out)
    train([sequence], out, params, resume=out)
    state = load_checkpoint(out)
    assert state["step"] == 4 and [h[0] for h in state["history"]] == [2, 4]
    assert "optimiser" not in state


def test_cli_train_then_track(sim_sequence: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.pt"
    result = run("train", "cap", "--data", sim_sequence, "--out", model, "--steps", "2",
                 "--no-simulated")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(model)["step"] == 2
    out = tmp_path / "res"
    result = run("track", sim_sequence, "--out", out, "--method", "cap", "--model", model,
                 "--queries-from-gt", sim_sequence.with_name("01_GT"))
    assert result.exit_code == 0, result.output
    assert read_result(out).errors() == []
    # without the detector's new cells, every track without parent starts in frame 0
    result = run("track", sim_sequence, "--out", tmp_path / "alone", "--method", "cap",
                 "--model", model, "--no-new-cells")
    assert result.exit_code == 0, result.output
    tracks = read_result(tmp_path / "alone").lineage.values()
    assert {t.begin for t in tracks if not t.parent} == {0}
    result = run("track", sim_sequence, "--out", tmp_path / "x", "--queries-from-gt",
                 sim_sequence.with_name("01_GT"))
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: --queries-from-gt: applies to --method cap only"


def test_shipped_model_tracks_the_sample(sample: Path) -> None:
    """The default model was not trained on GOWT1: the sample is unseen data."""
    assert len(model_names("cap")) == 3
    for new_cells, least in ((True, 0.95), (False, 0.85)):  # 0.989 and 0.879 measured
        tracker = CAPTracker(new_cells=new_cells)
        result = tracker.track(open_sequence(sample / "01"), sample / "01_GT")
        scores = evaluate_result(result, sample / "01_GT", threads=1)
        assert scores["TRA"] > least
