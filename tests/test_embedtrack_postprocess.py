"""EmbedTrack post-processing on hand-made network outputs: clustering recovers the instances
the offsets point at (boundary pixels go to the closer centre), and backward linking gives the
exact lineage, divisions included."""

from __future__ import annotations

import numpy as np
import pytest

from celltrail.core.result import TrackingResult
from celltrail.methods.embedtrack.clustering import cluster
from celltrail.methods.embedtrack.linking import BackwardLinker, parent_candidates
from celltrail.models.embedtrack import COORD_UNIT, W_S
from tests.conftest import disc

SHAPE = (64, 80)


def bandwidth_for(reach: float) -> float:
    """The bandwidth output whose score falls to 0.5 at ``reach`` pixels from the centre."""
    s = (reach / COORD_UNIT) ** 2 / np.log(2.0)
    return float(np.log(s) / W_S)


def pointing(targets: dict[tuple[int, int], tuple[float, float]], shape: tuple[int, int]
             ) -> np.ndarray:
    """(2, H, W) offsets sending each listed pixel to its target pixel, the others nowhere."""
    offsets = np.zeros((2, *shape))
    for (row, col), (ty, tx) in targets.items():
        offsets[:, row, col] = ((ty - row) / COORD_UNIT, (tx - col) / COORD_UNIT)
    return offsets


def offsets_to(labels: np.ndarray, centres: dict[int, tuple[float, float]]) -> np.ndarray:
    """(2, H, W) offsets sending every pixel of instance ``k`` to ``centres[k]``."""
    rows, cols = np.nonzero(labels)
    return pointing({(r, c): centres[labels[r, c]] for r, c in zip(rows, cols, strict=True)},
                    labels.shape)


def prediction(truth: np.ndarray, centres: dict[int, tuple[float, float]], reach: float = 6.0,
               seediness: dict[int, float] | None = None) -> np.ndarray:
    """(5, H, W) network output that clusters exactly into ``truth``."""
    out = np.zeros((5, *truth.shape))
    out[:2] = offsets_to(truth, centres)
    out[2:4] = bandwidth_for(reach)
    out[4] = np.where(truth > 0, 0.9, 0.1)
    for label, value in (seediness or {}).items():
        out[4][truth == label] = value
    return out


def assert_same_instances(result: np.ndarray, truth: np.ndarray) -> None:
    """Equal up to a permutation of labels; result labels are 1..n."""
    pairs = np.unique(np.stack([truth.ravel(), result.ravel()]), axis=1)
    assert len(set(pairs[0])) == len(set(pairs[1])) == pairs.shape[1], pairs
    assert pairs[1, pairs[0] == 0].tolist() == [0]
    assert np.unique(result).tolist() == list(range(pairs.shape[1]))


@pytest.fixture
def scene() -> tuple[np.ndarray, dict[int, tuple[float, float]]]:
    """A disc, a rectangle touching it, a large disc and a small rectangle, with centres."""
    truth = np.zeros(SHAPE, dtype=np.int32)
    truth[disc(SHAPE, (15, 15), 10)] = 1
    truth[5:26, 26:46] = 2  # touches disc 1 at (15, 25)-(15, 26)
    truth[disc(SHAPE, (45, 60), 12)] = 3
    truth[40:56, 8:30] = 4
    return truth, {1: (15, 15), 2: (15, 35), 3: (45, 60), 4: (47, 19)}


def test_cluster_recovers_instances(scene) -> None:
    truth, centres = scene
    labels = cluster(prediction(truth, centres), min_size=20)
    assert labels.dtype == np.int32
    assert_same_instances(labels, truth)


def test_cluster_drops_instances_below_min_size(scene) -> None:
    truth, centres = scene
    truth[2:5, 60:63] = 5  # 9 pixels, all voting for (3, 61)
    labels = cluster(prediction(truth, {**centres, 5: (3, 61)}), min_size=20)
    truth[truth == 5] = 0
    assert_same_instances(labels, truth)
    assert_same_instances(cluster(prediction(truth, centres), min_size=9), truth)


def test_cluster_recovers_instances_from_noisy_prediction(scene) -> None:
    truth, centres = scene
    rng = np.random.default_rng(7)
    noisy = prediction(truth, centres)
    noisy[:2] += rng.uniform(-1.5, 1.5, (2, *SHAPE)) / COORD_UNIT
    noisy[2:4] += rng.uniform(-0.01, 0.01, (2, *SHAPE))
    noisy[4] += rng.uniform(-0.05, 0.05, SHAPE)
    assert_same_instances(cluster(noisy, min_size=20), truth)


@pytest.mark.parametrize("first", [1, 2])
def test_cluster_gives_boundary_pixels_to_closer_centre(first: int) -> None:
    # Centres 10 px apart, reach 8 px: p (truth 2) shifts to 6 px from centre 1 and 4 px from
    # centre 2, q (truth 1) the other way round; both score > 0.5 for either centre, so
    # whichever instance comes first takes both and the second must win its pixel back.
    truth = np.zeros(SHAPE, dtype=np.int32)
    truth[10:31, 10:25] = 1
    truth[10:31, 25:40] = 2
    p, q = (20, 24), (21, 25)
    truth[p], truth[q] = 2, 1
    pred = prediction(truth, {1: (20, 20), 2: (20, 30)}, reach=8.0, seediness={first: 0.95})
    pred[:2, p[0], p[1]] = ((20 - p[0]) / COORD_UNIT, (26 - p[1]) / COORD_UNIT)
    pred[:2, q[0], q[1]] = ((21 - q[0]) / COORD_UNIT, (24 - q[1]) / COORD_UNIT)
    assert_same_instances(cluster(pred, min_size=20), truth)


def test_cluster_drops_instance_shrunk_below_min_size_by_reassignment() -> None:
    # Instance 1 (12 px, seedier) first takes all 12; instance 2 then wins back the 4 pixels
    # that shift closer to its centre, leaving 8 < min_size: instance 1 is dropped at the end.
    truth = np.zeros(SHAPE, dtype=np.int32)
    truth[10:13, 10:14] = 1
    truth[10:13, 14:24] = 2
    pred = prediction(truth, {1: (11, 11), 2: (11, 21)}, reach=8.0, seediness={1: 0.95})
    stolen = [(10, 13), (11, 13), (12, 13), (12, 12)]
    for row, col in stolen:
        pred[:2, row, col] = ((11 - row) / COORD_UNIT, (17 - col) / COORD_UNIT)
    labels = cluster(pred, min_size=10)
    expected = (truth == 2).astype(np.int32)
    for pixel in stolen:
        expected[pixel] = 1
    np.testing.assert_array_equal(labels, expected)


LINK_SHAPE = (40, 60)


def frame(cells: dict[int, tuple[tuple[int, int], float]]) -> np.ndarray:
    """Instance labels from ``{label: (centre, radius)}``."""
    labels = np.zeros(LINK_SHAPE, dtype=np.int32)
    for label, (centre, radius) in cells.items():
        labels[disc(LINK_SHAPE, centre, radius)] = label
    return labels


def test_linking_gives_exact_lineage_with_division_and_appearance() -> None:
    a = [(10, 10), (12, 14), (14, 18), (16, 22)]
    b, b1, b2 = (25, 30), [(20, 31), (19, 31)], [(30, 31), (31, 32)]
    c = (10, 50)
    frames = [
        frame({1: (a[0], 4), 2: (b, 5)}),
        frame({8: (b, 5), 5: (a[1], 4)}),
        frame({1: (b2[0], 3), 2: (a[2], 4), 3: (b1[0], 3)}),
        frame({1: (c, 4), 2: (b1[1], 3), 3: (a[3], 4), 4: (b2[1], 3)}),
    ]
    offsets = [
        None,
        offsets_to(frames[1], {8: b, 5: a[0]}),
        offsets_to(frames[2], {1: b, 2: a[1], 3: b}),
        # C points at its own centre, background at t − 1.
        offsets_to(frames[3], {1: c, 2: b1[0], 3: a[2], 4: b2[0]}),
    ]
    linker = BackwardLinker()
    masks = [linker.step(labels, off) for labels, off in zip(frames, offsets, strict=True)]
    tracks = [{1: 1, 2: 2}, {5: 1, 8: 2}, {2: 1, 1: 3, 3: 4}, {3: 1, 2: 4, 4: 3, 1: 5}]
    for mask, labels, track in zip(masks, frames, tracks, strict=True):
        expected = np.zeros(LINK_SHAPE, dtype=np.int64)
        for instance, track_id in track.items():
            expected[labels == instance] = track_id
        np.testing.assert_array_equal(mask, expected)
    assert linker.parents == {3: 2, 4: 2}

    result = TrackingResult.from_masks(masks, linker.parents)
    assert result.errors() == []
    spans = {t.label: (t.begin, t.end, t.parent) for t in result.lineage.values()}
    assert spans == {1: (0, 3, 0), 2: (0, 1, 0), 3: (2, 3, 2), 4: (2, 3, 2), 5: (3, 3, 0)}
    for mask, relabelled in zip(masks, result.masks, strict=True):
        np.testing.assert_array_equal(relabelled, mask)


def test_linking_three_candidates_and_off_image_start_new_tracks() -> None:
    mother = (20, 30)
    linker = BackwardLinker()
    linker.step(frame({1: (mother, 6), 2: ((8, 8), 3)}), None)
    # Three instances claim the mother; the fourth (near cell 2) points off the image.
    labels = frame({1: ((10, 20), 3), 2: ((20, 40), 3), 3: ((30, 20), 3), 4: ((8, 8), 3)})
    off = offsets_to(labels, {1: mother, 2: mother, 3: mother, 4: (-30, -30)})
    np.testing.assert_array_equal(linker.step(labels, off), np.where(labels > 0, labels + 2, 0))
    assert linker.parents == {}


def test_parent_candidates_majority_and_ties() -> None:
    previous = np.zeros((6, 6), dtype=np.int32)
    previous[:, :2], previous[:, 2:4], previous[:, 4:] = 7, 3, 5
    labels = np.zeros((6, 6), dtype=np.int32)
    labels[0:3, 0:2] = 1  # 6 px: 4 land on 7, 2 on 3 → 7
    labels[3:6, 0:2] = 2  # 6 px: 3 on 5, 3 on 7 → tie, smaller label 5
    labels[0:2, 4:6] = 4  # 4 px: all off the image → no candidate
    targets = {(r, c): (r, c) for r in range(3) for c in range(2)}
    targets.update({(0, 0): (0, 2), (0, 1): (1, 3)})
    targets.update({(r, c): (r, 5 if c == 0 else 0) for r in range(3, 6) for c in range(2)})
    targets.update({(r, c): (r - 10, c) for r in range(2) for c in range(4, 6)})
    assert parent_candidates(labels, previous, pointing(targets, labels.shape)) == {1: 7, 2: 5}


def reference_cluster(prediction: np.ndarray, min_size: int) -> np.ndarray:
    """The clustering as first written: every open candidate's window scanned in turn."""
    from scipy import ndimage as ndi

    from celltrail.methods.embedtrack.clustering import _neighbour_votes

    height, width = prediction.shape[1:]
    bandwidth = ndi.uniform_filter(prediction[2:4], size=(1, 3, 3), mode="mirror")
    rows, cols = np.nonzero(prediction[4] > 0.5)
    ey = rows / COORD_UNIT + prediction[0, rows, cols]
    ex = cols / COORD_UNIT + prediction[1, rows, cols]
    candidates = np.flatnonzero(_neighbour_votes(ey, ex, height, width)[rows, cols] > 5)
    order = candidates[np.argsort(-prediction[4, rows, cols][candidates], kind="stable")]
    scale = np.exp(W_S * bandwidth[:, rows, cols])
    instance, best = np.zeros(rows.size, dtype=np.int32), np.zeros(rows.size)
    open_ = np.zeros(rows.size, dtype=bool)
    open_[candidates] = True
    for j in order[open_[order]]:
        if not open_[j]:
            continue
        score = np.exp(-((ey - ey[j]) ** 2) / scale[0, j] - (ex - ex[j]) ** 2 / scale[1, j])
        proposal = np.flatnonzero(score > 0.5)
        joined = proposal[score[proposal] > best[proposal]]
        if joined.size >= min_size and np.count_nonzero(instance[proposal]) < 0.5 * joined.size:
            instance[joined] = instance.max() + 1
            best[joined] = score[joined]
            open_[joined] = False
    sizes = np.bincount(instance)
    lut = np.zeros(sizes.size, dtype=np.int32)
    kept = np.flatnonzero(sizes >= min_size)
    kept = kept[kept > 0]
    lut[kept] = np.arange(1, kept.size + 1)
    labels = np.zeros((height, width), dtype=np.int32)
    labels[rows, cols] = lut[instance]
    return labels


def false_seeds(side: int, seed: int) -> np.ndarray:
    """A network output on a frame of noise: every pixel a confident seed, its offset a few
    pixels of noise, its bandwidth a cell's (20 px): each pixel is a candidate centre."""
    rng = np.random.default_rng(seed)
    out = np.zeros((5, side, side))
    out[:2] = rng.normal(0.0, 2.0, (2, side, side)) / COORD_UNIT
    out[2:4] = bandwidth_for(20.0)
    out[4] = rng.uniform(0.6, 0.9, (side, side))
    return out


def test_false_seeds_are_judged_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a frame of false seeds the clustering gives exactly what a scan of every candidate
    gives, yet scans few of them: the rest are found hopeless from pixel counts (the cost
    that took EmbedTrack from 0.45 to 17 s a frame on a bad sequence)."""
    from celltrail.methods.embedtrack import clustering

    prediction_ = false_seeds(160, seed=3)
    scanned = []
    try_seed = clustering._Claims.try_seed
    monkeypatch.setattr(clustering._Claims, "try_seed",
                        lambda self, j: scanned.append(j) or try_seed(self, j))
    labels = cluster(prediction_, min_size=61)
    assert np.array_equal(labels, reference_cluster(prediction_, 61))
    assert 10 < labels.max() <= 160 * 160 // 61
    # every pixel is a candidate; without the bound about a tenth of them were scanned
    assert len(scanned) < 0.02 * 160 * 160, len(scanned)


@pytest.mark.parametrize("seed", [0, 1])
def test_bulk_judgement_changes_nothing(scene, seed: int) -> None:
    """Real instances with false seeds around them: same labels as a scan of every
    candidate."""
    truth, centres = scene
    rng = np.random.default_rng(seed)
    pred = prediction(truth, centres)
    background = truth == 0
    pred[:2, background] = rng.normal(0.0, 1.5, (2, int(background.sum()))) / COORD_UNIT
    pred[4, background] = rng.uniform(0.55, 0.95, int(background.sum()))
    pred[2:4, background] = bandwidth_for(4.0)
    assert np.array_equal(cluster(pred, min_size=20), reference_cluster(pred, 20))
