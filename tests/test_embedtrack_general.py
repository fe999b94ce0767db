"""EmbedTrack's scale-normalised (generalist) models: training data rescaled to a canonical cell
size, inference resized to it and back, per-dataset models untouched; seeded appearance and zoom
augmentations that keep labels aligned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from skimage.transform import resize
from typer.testing import CliRunner

from celltrail.cli import app
from celltrail.core.errors import InputError
from celltrail.core.sequence import open_sequence
from celltrail.methods.embedtrack import EmbedTracker
from celltrail.methods.embedtrack.linking import BackwardLinker
from celltrail.models.prompt_segmenter import CANONICAL_DIAMETER
from celltrail.simulate import SimParams, simulate
from celltrail.training.embedtrack import SampleParams, load_sequence
from celltrail.training.embedtrack.data import (
    Sampler,
    appearance,
    load_stills,
    rescale_sequence,
)


@pytest.fixture(scope="module")
def general_model(tiny_embedtrack: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint of conftest made scale-normalised: it carries a canonical diameter."""
    state = torch.load(tiny_embedtrack, weights_only=True)
    state["canonical_diameter"] = CANONICAL_DIAMETER
    path = tmp_path_factory.mktemp("general") / "general-tiny.pt"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    """Simulated fluorescent nuclei of 12 px and of 48 px, three frames each."""
    out = {}
    for diameter, size in ((12.0, 72), (48.0, 192)):
        root = tmp_path_factory.mktemp(f"d{diameter:g}")
        simulate(root, SimParams(frames=3, size=size, cells=int(size**2 / (4 * diameter**2)),
                                 cell_diameter=diameter, displacement=0.1, division_rate=0.0),
                 seed=5)
        out[diameter] = root / "01"
    return out


def spy(monkeypatch: pytest.MonkeyPatch) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Record the frames the network is given and the masks the linker makes."""
    frames: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    predict, step = EmbedTracker.predict, BackwardLinker.step

    def seen_predict(self: EmbedTracker, image: np.ndarray) -> np.ndarray:
        frames.append(np.array(image))
        return predict(self, image)

    def seen_step(self: BackwardLinker, *args: object) -> np.ndarray:
        masks.append(step(self, *args))
        return masks[-1]

    monkeypatch.setattr(EmbedTracker, "predict", seen_predict)
    monkeypatch.setattr(BackwardLinker, "step", seen_step)
    return frames, masks


@pytest.mark.parametrize("given", [True, False])
def test_general_model_runs_at_the_canonical_scale_and_answers_in_the_input_shape(
        general_model: Path, two_sizes: dict[float, Path], given: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[float, float] = {}
    for diameter, folder in two_sizes.items():
        frames, masks = spy(monkeypatch)
        images = open_sequence(folder)
        shape = np.asarray(images[0]).shape
        tracker = EmbedTracker(model=str(general_model), diameter=diameter if given else None)
        result = tracker.track(images)
        result.validate()
        used = float(tracker.settings()["diameter"].split()[0])
        seen[diameter] = used
        if given:
            assert used == diameter and "given" in tracker.settings()["diameter"]
        else:  # measured on the first frame: within 25% of the simulated size
            assert used == pytest.approx(diameter, rel=0.25)
        small = tuple(round(n * CANONICAL_DIAMETER / used) for n in shape)
        if not given:  # the first frames the network saw were the size measurement's
            assert len(frames) > len(images)
            del frames[:-len(images)]
        assert [f.shape for f in frames] == [small] * len(images)
        for t, mask in enumerate(masks):
            out = np.asarray(result.masks[t])
            assert out.shape == shape
            assert np.array_equal(out, resize(mask, shape, order=0, preserve_range=True,
                                              anti_aliasing=False).astype(mask.dtype))
        assert np.asarray(result.masks[0]).max() > 0
    # 12 px cells are enlarged twofold, 48 px cells halved
    assert seen[48.0] / seen[12.0] == pytest.approx(4.0, rel=0.3)


def test_general_model_stops_when_the_cell_size_cannot_be_told(
        general_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    folder.mkdir()
    for t in range(2):
        tifffile.imwrite(folder / f"t{t:03d}.tif", np.full((64, 64), 100, np.uint16))
    with pytest.raises(InputError, match=r"t000.tif: cannot tell the cell size: .*give the cell "
                                         r"diameter in pixels \(--diameter\)"):
        EmbedTracker(model=str(general_model)).track(open_sequence(folder))
    result = EmbedTracker(model=str(general_model), diameter=20.0).track(open_sequence(folder))
    assert np.asarray(result.masks[0]).shape == (64, 64)
    out = tmp_path / "res"
    cli = CliRunner().invoke(app, ["track", str(folder), "--out", str(out), "--method",
                                   "embedtrack", "--model", str(general_model)])
    assert cli.exit_code == 1
    assert cli.stderr.splitlines()[-1] == (
        f"error: {folder / 't000.tif'}: cannot tell the cell size: the first frame shows no "
        f"cell-like structure to measure; the network '{general_model.stem}' finds no size at "
        "which the cells it segments match the size it assumes; give the cell diameter in "
        "pixels (--diameter)")
    assert not out.exists()


def test_per_dataset_model_sees_the_input_unchanged(tiny_embedtrack: Path,
                                                    two_sizes: dict[float, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    images = open_sequence(two_sizes[12.0])
    frames, masks = spy(monkeypatch)
    tracker = EmbedTracker(model=str(tiny_embedtrack), diameter=30.0)
    result = tracker.track(images)
    assert tracker.scale_of(images) == 1.0 and tracker.settings() == {"method": "embedtrack"}
    for t in range(len(images)):
        assert frames[t].dtype == np.asarray(images[t]).dtype
        assert np.array_equal(frames[t], np.asarray(images[t]))
        assert np.array_equal(np.asarray(result.masks[t]), masks[t])


def test_rescaled_training_sequence_has_the_canonical_cell_size(two_sizes: dict[float, Path]
                                                                ) -> None:
    for folder in two_sizes.values():
        seq = load_sequence(folder)
        small = rescale_sequence(seq, CANONICAL_DIAMETER)
        assert small.diameter == pytest.approx(CANONICAL_DIAMETER, rel=0.02)
        labelled = [f for f in small.frames if f.labels is not None]
        assert labelled
        for frame in labelled:
            for label, centre in frame.centres.items():
                if (frame.labels == label).any():  # a medoid: on its own cell
                    assert frame.labels[int(centre[0]), int(centre[1])] == label


def test_appearance_is_seeded_and_changes_intensities_only() -> None:
    rng = np.random.default_rng(0)
    images = [rng.random((32, 32)).astype(np.float32) for _ in range(2)]
    first = appearance(images, np.random.default_rng(7))
    again = appearance(images, np.random.default_rng(7))
    other = appearance(images, np.random.default_rng(8))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])
    assert all(a.shape == (32, 32) and a.dtype == np.float32 for a in first)


def test_augmented_samples_are_seeded_and_keep_labels_on_their_cells(
        two_sizes: dict[float, Path]) -> None:
    """On fluorescent nuclei the cells differ in brightness from the background whatever the
    polarity: an aligned crop shows that contrast, a misaligned one would not."""
    seq = rescale_sequence(load_sequence(two_sizes[48.0]), CANONICAL_DIAMETER)
    params = SampleParams(crop=64, appearance=True, zoom=0.3)
    a = Sampler([seq], params, np.random.default_rng(1))
    b = Sampler([seq], params, np.random.default_rng(1))
    contrasts, areas = [], []
    for _ in range(12):
        x, y = a.sample(), b.sample()
        assert torch.equal(x.image, y.image) and torch.equal(x.current.labels, y.current.labels)
        labels, image = x.current.labels.numpy(), x.image[0].numpy()
        if (labels > 0).any() and (labels == 0).any():
            contrasts.append(abs(image[labels > 0].mean() - image[labels == 0].mean()))
            areas.append(np.median(np.bincount(labels.ravel())[1:][
                np.bincount(labels.ravel())[1:] > 0]))
        for label, centre in zip(x.current.ids.tolist(), x.current.centres.tolist(),
                                 strict=True):
            row, col = (round(c) for c in centre)
            if 0 <= row < 64 and 0 <= col < 64:
                assert labels[row, col] == label
    assert np.median(contrasts) > 0.2
    assert max(areas) > 1.3 * min(areas)  # zoomed crops: cells of several sizes
    plain = Sampler([seq], SampleParams(crop=64), np.random.default_rng(1))
    assert not torch.equal(plain.sample().image, Sampler(
        [seq], params, np.random.default_rng(1)).sample().image)



def test_still_images_train_segmentation_and_track_nothing_between_them() -> None:
    images = [np.full((64, 64), 10 * (k + 1), np.uint16) for k in range(2)]
    masks = [np.zeros((64, 64), np.uint16) for _ in range(2)]
    masks[0][5:20, 5:20], masks[0][30:50, 30:50] = 7, 9  # two cells, then the same label 7
    masks[1][10:30, 10:30] = 7
    seq = load_stills("stills", images, masks)
    assert len(seq.frames) == 4 and seq.split == 4  # each image twice; all of them train
    assert [sorted(f.centres) for f in seq.frames] == [[1, 2], [1, 2], [3], [3]]
    assert sorted(np.bincount(np.concatenate([seq.areas])).nonzero()[0]) == [225, 400]
    sampler = Sampler([seq], SampleParams(crop=64), np.random.default_rng(0))
    assert [t for _, t in sampler.pairs] == [1, 2, 3]
    # a still pair tracks each cell onto itself; the pair of two images shares no cell
    shared = [set(seq.frames[t].centres) & set(seq.frames[t - 1].centres) for t in (1, 2, 3)]
    assert shared == [{1, 2}, set(), {3}]
