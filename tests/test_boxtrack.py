"""BoxTrack with the classical backend: Kalman motion, memory eviction, tracking from first-frame
boxes on simulated data, divisions, and its input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from celltrail.core import InputError, open_sequence
from celltrail.io.boxes import boxes_from_gt
from celltrail.io.ctc import read_tracking_gt
from celltrail.linking.kalman import BoxKalman
from celltrail.methods.boxtrack import (
    BoxTrackConfig,
    BoxTracker,
    ClassicalPromptSegmenter,
    MemoryBank,
    MemoryEntry,
)
from celltrail.methods.boxtrack.calibrate import distinct_presets
from celltrail.methods.boxtrack.roundtrip import round_trip
from celltrail.methods.boxtrack.tracker import follow, prompted_frame
from celltrail.metrics.ctc import evaluate_result
from celltrail.simulate import SimParams, simulate
from tests.conftest import disc


def spans(lineage) -> dict[int, tuple[int, int, int]]:
    """``label: (begin, end, parent)`` of every track."""
    return {t.label: (t.begin, t.end, t.parent) for t in lineage.values()}


def moving_box(t: int) -> np.ndarray:
    """A 20x30 box moving 3 px right and 2 px up per frame."""
    return np.array([[10 + 3 * t, 50 - 2 * t, 30 + 3 * t, 80 - 2 * t]], dtype=float)


def test_kalman_learns_constant_velocity() -> None:
    kalman = BoxKalman.start(moving_box(0))
    for t in range(1, 7):
        kalman.predict()
        kalman.update(np.array([0]), moving_box(t))
    kalman.predict()
    assert np.abs(kalman.boxes() - moving_box(7)).max() < 1.0


def test_fresh_kalman_state_stays_put() -> None:
    kalman = BoxKalman.start(moving_box(0))
    kalman.predict()
    np.testing.assert_allclose(kalman.boxes(), moving_box(0))


def bank(policy: str, scores: list[float]) -> MemoryBank:
    memory = MemoryBank(size=3, policy=policy)
    for t, score in enumerate(scores):
        memory.add(MemoryEntry(t, np.ones(2), score))
    return memory


def test_memory_score_policy_keeps_the_best() -> None:
    memory = bank("score", [0.9, 0.2, 0.8, 0.5])
    assert sorted(e.score for e in memory.entries) == [0.5, 0.8, 0.9]
    assert not memory.add(MemoryEntry(4, np.ones(2), 0.1))
    assert sorted(e.score for e in memory.entries) == [0.5, 0.8, 0.9]


def test_memory_fifo_policy_keeps_the_latest() -> None:
    memory = bank("fifo", [0.9, 0.2, 0.8, 0.5])
    assert [e.frame for e in memory.entries] == [1, 2, 3]
    assert memory.add(MemoryEntry(4, np.ones(2), 0.1))
    assert [e.frame for e in memory.entries] == [2, 3, 4]


def test_tracks_every_cell_of_a_clean_simulation(tmp_path: Path) -> None:
    """Well separated nuclei that never divide, die or leave: every track is recovered whole,
    with the prompts' ids as labels."""
    params = SimParams(frames=10, size=192, cells=6, division_rate=0, apoptosis_rate=0,
                       displacement=0.05, overlap=0, irregularity=0.3)
    simulate(tmp_path, params, seed=2)
    gt = tmp_path / "01_GT"
    truth = read_tracking_gt(gt)
    assert {(b, e, p) for b, e, p in spans(truth.lineage).values()} == {(0, 9, 0)}
    boxes, source = boxes_from_gt(gt)
    assert source == "SEG" and len(boxes) == 6
    result = BoxTracker(segmenter=ClassicalPromptSegmenter()).track(
        open_sequence(tmp_path / "01"), boxes)
    assert spans(result.lineage) == spans(truth.lineage)
    scores = evaluate_result(result, gt, threads=1)
    assert (scores["IDF1"], scores["MOTA"], scores["IDS"]) == (1.0, 1.0, 0)
    assert scores["SEG"] > 0.6  # measured 0.652: the classical masks are coarse


def dividing_cell() -> tuple[np.ndarray, pd.DataFrame, list[tuple[float, float]]]:
    """Eight noisy frames: a cell (id 1) sitting still, and one (id 2) that divides at frame 4
    into two daughters moving apart; returns the frames, the first frame's boxes and the
    daughters' centres in the last frame."""
    rng = np.random.default_rng(0)
    shape = (96, 96)
    frames = []
    for t in range(8):
        cells = disc(shape, (24, 70), 9)
        if t < 4:
            cells |= disc(shape, (60, 40), 10)
        else:
            half = 12 + 2 * (t - 4)
            daughters = [(60, 40 - half), (60, 40 + half)]
            cells |= disc(shape, daughters[0], 7) | disc(shape, daughters[1], 7)
        image = ndi.gaussian_filter(np.where(cells, 200.0, 20.0), 1) + rng.normal(0, 8, shape)
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    boxes = pd.DataFrame({"frame": [0, 0], "id": [1, 2], "x": [61.0, 30.0], "y": [15.0, 50.0],
                          "w": [19.0, 21.0], "h": [19.0, 21.0]})
    return np.stack(frames), boxes, daughters


def test_division_gives_a_mother_and_two_daughters() -> None:
    frames, boxes, daughters = dividing_cell()
    result = BoxTracker(segmenter=ClassicalPromptSegmenter()).track(open_sequence(frames), boxes)
    assert result.lineage.divisions() == {2: [3, 4]}
    assert spans(result.lineage) == {1: (0, 7, 0), 2: (0, 3, 0), 3: (4, 7, 2), 4: (4, 7, 2)}
    centres = ndi.center_of_mass(result.masks[7] > 0, result.masks[7], [3, 4])
    np.testing.assert_allclose(sorted(centres, key=lambda c: c[1]), daughters, atol=1)


def test_no_divisions_when_turned_off() -> None:
    frames, boxes, _ = dividing_cell()
    tracker = BoxTracker(segmenter=ClassicalPromptSegmenter(), divisions=False)
    lineage = tracker.track(open_sequence(frames), boxes).lineage
    assert lineage.divisions() == {}
    tracks = spans(lineage)  # the mother follows a daughter or is lost, but never divides
    assert set(tracks) == {1, 2} and tracks[1] == (0, 7, 0)
    assert tracks[2][0] == 0 and tracks[2][1] >= 3 and tracks[2][2] == 0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (BoxTrackConfig(lambda_affinity=0.5), "BoxTrack's lambda weights must sum to 1, got 1.125"),
        (BoxTrackConfig(memory_policy="lru"), "memory policy must be 'score' or 'fifo', got 'lru'"),
    ],
)
def test_config_validation(config: BoxTrackConfig, message: str) -> None:
    with pytest.raises(InputError) as err:
        config.validate()
    assert str(err.value) == message


def test_small_box_is_skipped_with_a_warning() -> None:
    frames, boxes, _ = dividing_cell()
    boxes.loc[0, "w"] = 4.0
    tracker = BoxTracker(segmenter=ClassicalPromptSegmenter(), divisions=False)
    with pytest.warns(UserWarning) as caught:
        result = tracker.track(open_sequence(frames[:4]), boxes)
    assert [str(w.message) for w in caught] == [
        "skipped 1 boxes with a side below 5 px (ids [1])"]
    assert spans(result.lineage) == {2: (0, 3, 0)}


def test_all_boxes_too_small() -> None:
    frames, boxes, _ = dividing_cell()
    boxes["h"] = 3.0
    with pytest.warns(UserWarning, match="skipped 2 boxes"), \
            pytest.raises(InputError, match=r"^no box prompts left to track: all 2 boxes have a "
                                            r"side below 5 px$"):
        BoxTracker(segmenter=ClassicalPromptSegmenter()).track(open_sequence(frames), boxes)


class _Forgetful(ClassicalPromptSegmenter):
    """Segments the first frame it is shown, and sees nothing after it."""

    def __init__(self) -> None:
        super().__init__("fluo-nuclei")
        self.shown = 0

    def encode(self, image: np.ndarray) -> object:
        self.shown += 1
        return super().encode(image if self.shown == 1 else np.zeros_like(image))


def test_the_round_trip_tells_a_tracker_that_loses_its_cells(tmp_path: Path) -> None:
    params = SimParams(frames=4, size=160, cells=6, division_rate=0, apoptosis_rate=0,
                       displacement=0.05, overlap=0, irregularity=0.3)
    simulate(tmp_path, params, seed=2)
    boxes, _ = boxes_from_gt(tmp_path / "01_GT")
    frames = [np.asarray(f) for f in open_sequence(tmp_path / "01")]
    diameter = float(np.median(np.sqrt(boxes["w"] * boxes["h"])))
    steady = ClassicalPromptSegmenter("fluo-nuclei")
    steady.set_scale(diameter)
    forward = list(follow(steady, BoxTrackConfig(), frames, boxes))[-1]
    trip = round_trip(steady, BoxTrackConfig(), frames, boxes, range(len(boxes)), forward)
    assert (trip.recall, trip.precision, trip.growth, trip.score) == (1, 1, 1, 1)
    first = prompted_frame(_Forgetful(), BoxTrackConfig(), frames[0], boxes)
    assert len(np.unique(first)) - 1 == len(boxes)  # the prompted frame alone looks perfect
    forgetful = _Forgetful()
    forgetful.set_scale(diameter)
    forward = list(follow(forgetful, BoxTrackConfig(), frames, boxes))[-1]
    trip = round_trip(forgetful, BoxTrackConfig(), frames, boxes, range(len(boxes)), forward)
    assert (trip.recall, trip.score) == (0, 0)


@pytest.mark.parametrize(("modality", "presets"), [
    ("dic", ["dic", "fluo-nuclei", "brightfield"]),
    ("fluo-nuclei", ["fluo-nuclei", "brightfield", "dic"]),
])
def test_auto_tries_each_set_of_preset_constants_once(tmp_path: Path, modality: str,
                                                      presets: list[str]) -> None:
    """dic and phase share their constants: one classical candidate, named by the frame's look."""
    params = SimParams(frames=1, size=128, cells=6, modality=modality, cell_diameter=24.0)
    frame = open_sequence(simulate(tmp_path, params, seed=2))[0]
    assert distinct_presets(frame) == presets
