"""The simulator writes valid CTC ground truth whose statistics follow its parameters."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from celltrail.core.errors import InputError
from celltrail.core.lineage import Lineage, Track
from celltrail.io.ctc import numbered_files, read_man_track, read_tracking_gt, write_man_track
from celltrail.metrics import evaluate
from celltrail.simulate import MODALITIES, SimParams, simulate, subsample


def _markers(gt: Path) -> list[np.ndarray]:
    return [np.asarray(m) for m in read_tracking_gt(gt).masks]


@pytest.mark.parametrize("modality", MODALITIES)
def test_ground_truth_is_valid_and_scores_perfectly(tmp_path: Path, modality: str) -> None:
    params = SimParams(frames=12, size=96, cells=8, modality=modality, cell_diameter=20,
                       division_rate=0.06, apoptosis_rate=0.02, displacement=0.3)
    calls = []
    seq = simulate(tmp_path, params, seed=3, progress=lambda done, total: calls.append(done))
    gt = tmp_path / "01_GT"
    assert seq == tmp_path / "01"
    assert calls == list(range(1, 13))
    truth = read_tracking_gt(gt)
    truth.validate()
    assert len(truth.lineage) >= 8
    assert sorted(numbered_files(seq, "t")) == list(range(12))
    assert sorted(numbered_files(gt / "SEG", "man_seg")) == list(range(12))
    image = tifffile.imread(seq / "t005.tif")
    assert image.shape == (96, 96) and image.dtype == np.uint8
    assert image.std() > 5  # cells stand out from the background
    seg = tifffile.imread(gt / "SEG" / "man_seg005.tif")
    assert np.array_equal(seg, truth.masks[5])
    scores = evaluate(gt, gt, threads=1)
    assert (scores["TRA"], scores["DET"], scores["SEG"]) == (1.0, 1.0, 1.0)


def test_same_seed_same_files_and_other_seed_differs(tmp_path: Path) -> None:
    params = SimParams(frames=4, size=64, cells=4, cell_diameter=16, dtype="uint16")
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        simulate(tmp_path / name, params, seed=seed)
    for rel in ("01/t003.tif", "01_GT/TRA/man_track003.tif", "01_GT/TRA/man_track.txt"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert not np.array_equal(tifffile.imread(tmp_path / "a/01/t003.tif"),
                              tifffile.imread(tmp_path / "c/01/t003.tif"))
    image = tifffile.imread(tmp_path / "a/01/t003.tif")
    assert image.dtype == np.uint16 and image.max() > 255
    info = json.loads((tmp_path / "a/01_GT/simulation.json").read_text())
    assert info["seed"] == 7 and info["params"]["cells"] == 4


def test_cells_are_irregular_and_varied(tmp_path: Path) -> None:
    simulate(tmp_path, SimParams(frames=1, size=128, cells=10, noise=0), seed=1)
    labels = _markers(tmp_path / "01_GT")[0]
    areas, roundness = [], []
    for region in ndimage.find_objects(labels):
        if region is None:
            continue
        cell = labels[region] > 0
        if cell.shape[0] in (1, 128) or cell.shape[1] in (1, 128):
            continue
        dist = ndimage.distance_transform_edt(cell)
        areas.append(cell.sum())
        roundness.append(cell.sum() / (np.pi * dist.max() ** 2))  # 1 for a disc
    assert np.std(areas) / np.mean(areas) > 0.1
    assert max(roundness) > 1.1


def _division_and_count_stats(tmp_path: Path, params: SimParams, seeds: range):
    divisions, expected, counts = 0, 0.0, []
    for seed in seeds:
        gt = simulate(tmp_path / str(seed), params, seed=seed).parent / "01_GT"
        lineage = read_man_track(gt / "TRA" / "man_track.txt")
        count = [len(np.unique(m)) - 1 for m in _markers(gt)]
        divisions += sum(len(kids) == 2 for kids in lineage.children().values())
        # a division seen at frame t began mitosis_frames + 1 frames earlier
        expected += params.division_rate * sum(count[: params.frames - params.mitosis_frames - 1])
        counts.append(count)
    return divisions, expected, np.array(counts)


def test_division_count_follows_rate(tmp_path: Path) -> None:
    params = SimParams(frames=25, size=160, cells=16, division_rate=0.04, apoptosis_rate=0,
                       noise=0)
    divisions, expected, counts = _division_and_count_stats(tmp_path, params, range(4))
    assert 0.7 * expected <= divisions <= 1.15 * expected
    growth = counts[:, -3:].mean() / counts[:, :3].mean()
    assert 1.4 <= growth <= (1 + params.division_rate) ** params.frames * 1.1


def test_cell_count_is_steady_without_events(tmp_path: Path) -> None:
    params = SimParams(frames=20, size=128, cells=10, division_rate=0, apoptosis_rate=0,
                       displacement=0.3, noise=0)
    divisions, _, counts = _division_and_count_stats(tmp_path, params, range(4))
    assert divisions == 0
    assert counts[:, 0].mean() == pytest.approx(10, abs=1.5)
    assert counts.mean() == pytest.approx(10, rel=0.2)


def test_apoptosis_removes_cells(tmp_path: Path) -> None:
    params = SimParams(frames=20, size=128, cells=12, division_rate=0, apoptosis_rate=0.05,
                       noise=0)
    _, _, counts = _division_and_count_stats(tmp_path, params, range(3))
    assert counts[:, -3:].mean() < 0.75 * counts[:, :3].mean()


@pytest.mark.parametrize("displacement", [0.1, 0.4])
def test_mean_displacement_follows_parameter(tmp_path: Path, displacement: float) -> None:
    params = SimParams(frames=15, size=128, cells=6, division_rate=0, apoptosis_rate=0,
                       displacement=displacement, persistence=0.5, noise=0)
    steps = []
    for seed in range(3):
        markers = _markers(simulate(tmp_path / str(seed), params, seed=seed).parent / "01_GT")
        for before, after in itertools.pairwise(markers):
            for label in set(np.unique(before)) & set(np.unique(after)) - {0}:
                a, b = before == label, after == label
                if any(m[[0, -1]].any() or m[:, [0, -1]].any() for m in (a, b)):
                    continue  # centroids of cells cut by the border are biased
                steps.append(np.hypot(*np.subtract(ndimage.center_of_mass(a),
                                                   ndimage.center_of_mass(b))))
    assert np.mean(steps) == pytest.approx(displacement * params.cell_diameter, rel=0.2)


def test_frame_step_images_every_nth_step(tmp_path: Path) -> None:
    params = SimParams(frames=6, size=96, cells=6, cell_diameter=16, displacement=0.3,
                       division_rate=0.05, noise=0)
    simulate(tmp_path / "fine", params, seed=2)
    simulate(tmp_path / "coarse", SimParams(**{**vars(params), "frames": 3}), seed=2,
             frame_step=2)
    fine = _markers(tmp_path / "fine/01_GT")
    coarse = _markers(tmp_path / "coarse/01_GT")
    read_tracking_gt(tmp_path / "coarse/01_GT").validate()
    for k in range(3):  # the same cells in the same places, whatever their labels
        assert np.array_equal(coarse[k] > 0, fine[2 * k] > 0)


def test_subsample_keeps_every_nth_frame_and_valid_lineage(tmp_path: Path) -> None:
    params = SimParams(frames=11, size=96, cells=8, cell_diameter=20, division_rate=0.08,
                       displacement=0.3)
    seq = simulate(tmp_path / "src", params, seed=5)
    out = subsample(seq, seq.parent / "01_GT", tmp_path / "sub", step=3)
    assert out == tmp_path / "sub/01"
    assert sorted(numbered_files(out, "t")) == [0, 1, 2, 3]
    for new, old in enumerate((0, 3, 6, 9)):
        assert (out / f"t{new:03d}.tif").read_bytes() == (seq / f"t{old:03d}.tif").read_bytes()
        seg = tifffile.imread(tmp_path / f"sub/01_GT/SEG/man_seg{new:03d}.tif")
        assert np.array_equal(seg, tifffile.imread(seq.parent / f"01_GT/SEG/man_seg{old:03d}.tif"))
    read_tracking_gt(tmp_path / "sub/01_GT").validate()
    scores = evaluate(tmp_path / "sub/01_GT", tmp_path / "sub/01_GT", threads=1)
    assert scores["TRA"] == 1.0


def test_subsample_from_a_start_frame_cuts_the_head(tmp_path: Path) -> None:
    params = SimParams(frames=11, size=96, cells=8, cell_diameter=20, division_rate=0.08,
                       displacement=0.3)
    seq = simulate(tmp_path / "src", params, seed=5)
    out = subsample(seq, seq.parent / "01_GT", tmp_path / "tail", step=2, start=6)
    assert sorted(numbered_files(out, "t")) == [0, 1, 2]
    for new, old in enumerate((6, 8, 10)):
        assert (out / f"t{new:03d}.tif").read_bytes() == (seq / f"t{old:03d}.tif").read_bytes()
        seg = tifffile.imread(tmp_path / f"tail/01_GT/SEG/man_seg{new:03d}.tif")
        assert np.array_equal(seg, tifffile.imread(seq.parent / f"01_GT/SEG/man_seg{old:03d}.tif"))
    tail = read_tracking_gt(tmp_path / "tail/01_GT")
    tail.validate()
    assert min(track.begin for track in tail.lineage.values()) == 0
    late = subsample(seq, seq.parent / "01_GT", tmp_path / "late", step=1, start=10)
    assert (late.parent / "01_GT/SEG").is_dir()
    shutil.rmtree(seq.parent / "01_GT/SEG")
    (seq.parent / "01_GT/SEG").mkdir()
    tifffile.imwrite(seq.parent / "01_GT/SEG/man_seg002.tif", np.zeros((96, 96), np.uint16))
    early = subsample(seq, seq.parent / "01_GT", tmp_path / "early", step=1, start=6)
    assert not (early.parent / "01_GT/SEG").exists()  # no kept frame has a mask: no folder
    with pytest.raises(ValueError, match="start 11 is past the last of 11 frames"):
        subsample(seq, seq.parent / "01_GT", tmp_path / "none", step=1, start=11)


def _write_gt(root: Path, frames: list[np.ndarray], lineage: Lineage) -> None:
    (root / "01").mkdir(parents=True)
    (root / "01_GT/TRA").mkdir(parents=True)
    for t, mask in enumerate(frames):
        tifffile.imwrite(root / f"01/t{t:03d}.tif", (mask * 50).astype(np.uint8))
        tifffile.imwrite(root / f"01_GT/TRA/man_track{t:03d}.tif", mask.astype(np.uint16))
    write_man_track(lineage, root / "01_GT/TRA/man_track.txt")


def test_subsample_relinks_children_of_vanished_tracks(tmp_path: Path) -> None:
    # 1 on frames 0-3 divides into 2 (frame 4 only) and 3 (4-7); 2 divides into 4 and 5 (5-7).
    table = Lineage([Track(1, 0, 3), Track(2, 4, 4, 1), Track(3, 4, 7, 1), Track(4, 5, 7, 2),
                     Track(5, 5, 7, 2)])
    frames = []
    for t in range(8):
        mask = np.zeros((20, 20), dtype=np.uint16)
        for track in table.values():
            if track.begin <= t <= track.end:
                mask[3 * track.label: 3 * track.label + 2, 2:5] = track.label
        frames.append(mask)
    _write_gt(tmp_path / "in", frames, table)
    subsample(tmp_path / "in/01", tmp_path / "in/01_GT", tmp_path / "out", step=3)
    truth = read_tracking_gt(tmp_path / "out/01_GT")  # kept frames 0, 3, 6
    truth.validate()
    assert sorted((t.label, t.begin, t.end, t.parent) for t in truth.lineage.values()) == [
        (1, 0, 1, 0), (3, 2, 2, 1), (4, 2, 2, 1), (5, 2, 2, 1)]


def test_subsample_declares_gaps_in_markers(tmp_path: Path) -> None:
    frames = [np.zeros((8, 8), dtype=np.uint16) for _ in range(5)]
    for t in (0, 1, 4):  # label 1 missing from frames 2-3 of the kept ones
        frames[t][2:4, 2:4] = 1
    _write_gt(tmp_path / "in", frames, Lineage([Track(1, 0, 4)]))
    subsample(tmp_path / "in/01", tmp_path / "in/01_GT", tmp_path / "out", step=1)
    truth = read_tracking_gt(tmp_path / "out/01_GT")
    truth.validate()
    assert sorted((t.label, t.begin, t.end, t.parent) for t in truth.lineage.values()) == [
        (1, 0, 1, 0), (2, 4, 4, 1)]
    assert np.asarray(truth.masks[4]).max() == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [({"modality": "xray"}, "modality must be one of"),
     ({"dtype": "float32"}, "dtype must be one of"),
     ({"frames": 0}, "frames must be"),
     ({"size": 8}, "size must be at least 16"),
     ({"cells": 500, "size": 64}, "cannot fit"),
     ({"persistence": 1.0}, "persistence"),
     ({"division_rate": -0.1}, "division_rate")],
)
def test_bad_parameters_are_named(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(tmp_path, SimParams(**change))
    assert not any(tmp_path.iterdir())


def test_subsample_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="step"):
        subsample(tmp_path, tmp_path, tmp_path / "out", step=0)
    with pytest.raises(InputError, match="no image files"):
        subsample(tmp_path / "missing", tmp_path, tmp_path / "out", step=2)
