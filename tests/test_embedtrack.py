"""EmbedTrack: losses on hand-made inputs with known values, training data geometry,
test-time augmentation and tiling, training and reloading a model, and the shipped model on the
bundled sample."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

from celltrail.cli import app
from celltrail.core.errors import InputError
from celltrail.core.sequence import open_sequence
from celltrail.io.ctc import read_result
from celltrail.methods.embedtrack import EmbedTracker
from celltrail.methods.embedtrack.tracker import (
    SYMMETRIES,
    apply_symmetry,
    tile_side,
    tile_starts,
    undo_symmetry,
)
from celltrail.metrics import evaluate_result
from celltrail.models.checkpoint import save_checkpoint
from celltrail.models.embedtrack import (
    COORD_UNIT,
    W_S,
    EmbedTrackConfig,
    EmbedTrackNet,
    load_checkpoint,
    network_from,
    pixel_grid,
)
from celltrail.models.zoo import model_names, model_path
from celltrail.simulate import SimParams, simulate
from celltrail.training.embedtrack import TrainParams, load_sequence, steps_per_epoch, train
from celltrail.training.embedtrack.data import IGNORE, SampleParams, Sampler, medoids
from celltrail.training.embedtrack.loop import FINE_TUNE_LR, batch_loss
from celltrail.training.embedtrack.losses import (
    Instances,
    lovasz_hinge,
    segmentation_loss,
    tracking_loss,
)
from tests.conftest import disc

TINY = EmbedTrackConfig(channels=(4, 8, 16), dropout=0.0)
runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_lovasz_hinge_known_values() -> None:
    # errors 1 - logit*sign = (-1, 0.5, 0.5); the Lovász gradient at the sorted truth is
    # (1/2, 1/6, 1/3) or (1/3, 1/3, 1/3) depending on the tie order; both give 1/3
    loss = lovasz_hinge(torch.tensor([2.0, -0.5, 0.5]), torch.tensor([1, 0, 1]))
    assert float(loss) == pytest.approx(1 / 3)
    assert float(lovasz_hinge(torch.tensor([1.0, -1.0, 3.0]), torch.tensor([1, 0, 1]))) == 0.0
    # all wrong by a margin of 2 on two foreground pixels: Jaccard loss 1, hinge 2
    assert float(lovasz_hinge(torch.tensor([-1.0, -1.0, -5.0]),
                              torch.tensor([1, 1, 0]))) == pytest.approx(2.0)


def two_cells() -> tuple[Instances, torch.Tensor]:
    """Two square cells in a 16x16 crop and a perfect prediction for them: offsets onto each
    centre (the background's far away), a bandwidth whose 0.5-contour is 1 px, seediness =
    score."""
    labels = torch.zeros(16, 16, dtype=torch.int64)
    labels[2:6, 2:6], labels[9:14, 8:13] = 1, 2
    centres = torch.tensor([[3.0, 3.0], [11.0, 10.0]])
    frame = Instances(labels, torch.tensor([1, 2]), centres)
    grid = pixel_grid(16, 16) * COORD_UNIT
    prediction = torch.zeros(5, 16, 16)
    prediction[:2] = -0.5
    for k, centre in zip((1, 2), centres, strict=True):
        inside = labels == k
        prediction[:2, inside] = ((centre[:, None, None] - grid) / COORD_UNIT)[:, inside]
        prediction[4, inside] = 1.0
    s = (1.0 / COORD_UNIT) ** 2 / np.log(2)
    prediction[2:4] = float(np.log(s) / W_S)
    return frame, prediction


def test_segmentation_loss_is_zero_for_a_perfect_prediction() -> None:
    frame, prediction = two_cells()
    terms, means = segmentation_loss(prediction, frame)
    assert float(terms["instance"]) == pytest.approx(0.0, abs=1e-5)
    assert float(terms["variance"]) == pytest.approx(0.0, abs=1e-12)
    assert float(terms["seed"]) == pytest.approx(0.0, abs=1e-6)
    assert sorted(means) == [1, 2]


def test_segmentation_loss_terms_known_values() -> None:
    frame, prediction = two_cells()
    prediction[4] = 0.5  # seediness 0.5 everywhere: (0.5 - 1)^2 on each cell, 0.5^2 outside
    prediction[2, 2:4, 2:6] += 0.1  # cell 1: half its pixels 0.1 higher in y-bandwidth
    terms, _ = segmentation_loss(prediction, frame)
    assert float(terms["seed"]) == pytest.approx(0.25, abs=1e-4)  # summed / (H W)
    assert float(terms["variance"]) == pytest.approx(0.05**2 / 2)  # mean over the 2 cells


def test_tracking_loss_known_values() -> None:
    frame, prediction = two_cells()
    offsets = prediction[:2]
    bandwidths = {1: prediction[2:4, 3, 3], 2: prediction[2:4, 11, 10]}
    valid = torch.tensor([True, True])
    # the cells did not move: the centres at t - 1 are the same
    assert float(tracking_loss(offsets, frame, frame.centres, valid, bandwidths)) == \
        pytest.approx(0.0, abs=1e-5)
    # the centres at t - 1 are far away: every cell pixel has score 0, hinge 2 for each cell,
    # averaged over the cells with a centre at t - 1
    far = frame.centres + 200.0
    assert float(tracking_loss(offsets, frame, far, valid, bandwidths)) == pytest.approx(2.0)
    assert float(tracking_loss(offsets, frame, far, torch.tensor([True, False]),
                               bandwidths)) == pytest.approx(2.0)


@pytest.mark.parametrize("copies", [1, 2, 4])
def test_losses_do_not_grow_with_the_number_of_identical_cells(copies: int) -> None:
    # copies of one 4x4 cell in a 24x24 crop, each with its centre far outside the crop: every
    # cell's hinge is 2 (summed over cells it was 2 * copies); seediness 0.5 everywhere against
    # targets 0: seed 0.25; half of every cell 0.1 higher in y-bandwidth: variance 0.05^2
    labels = torch.zeros(24, 24, dtype=torch.int64)
    for k in range(copies):
        top, left = 2 + 12 * (k // 2), 2 + 12 * (k % 2)
        labels[top:top + 4, left:left + 4] = k + 1
    frame = Instances(labels, torch.arange(1, copies + 1), torch.full((copies, 2), 500.0))
    prediction = torch.zeros(5, 24, 24)
    prediction[2:4] = 0.5
    prediction[2][(labels > 0) & (torch.arange(24)[:, None] % 12 < 4)] += 0.1
    prediction[4] = 0.5
    terms, bandwidths = segmentation_loss(prediction, frame)
    assert float(terms["instance"]) == pytest.approx(2.0)
    assert float(terms["seed"]) == pytest.approx(0.25)
    assert float(terms["variance"]) == pytest.approx(0.05**2)
    track = tracking_loss(prediction[:2], frame, frame.centres,
                          torch.ones(copies, dtype=torch.bool), bandwidths)
    assert float(track) == pytest.approx(2.0)


def test_medoid_lies_inside_a_ring() -> None:
    ring = disc((41, 41), (20, 20), 15) & ~disc((41, 41), (20, 20), 9)
    centre = medoids(ring.astype(np.int32))[1]
    assert ring[int(centre[0]), int(centre[1])]


@pytest.fixture(scope="module")
def sim_sequence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sim")
    params = SimParams(frames=10, size=96, cells=8, cell_diameter=18.0, displacement=0.2,
                       division_rate=0.05)
    simulate(root, params, seed=3)
    return root / "01"


def test_sampler_centres_and_track_targets_follow_rotations_and_shifts(sim_sequence: Path
                                                                        ) -> None:
    seq = load_sequence(sim_sequence)
    assert seq.split == 9
    sampler = Sampler([seq], SampleParams(crop=64, p_clahe=0.0, p_blur=0.0),
                      np.random.default_rng(0))
    checked = 0
    for _ in range(30):
        sample = sampler.sample()
        for frame in (sample.current, sample.before):
            for label, centre in zip(frame.ids.tolist(), frame.centres.tolist(), strict=True):
                row, col = (round(c) for c in centre)
                if 0 <= row < 64 and 0 <= col < 64:  # medoid inside the crop: on its cell
                    assert frame.labels[row, col] == label
                    checked += 1
        for label, target, ok in zip(sample.current.ids.tolist(), sample.track_centres,
                                     sample.track_valid.tolist(), strict=True):
            if ok and label in sample.before.ids.tolist():  # same cell: its centre at t - 1
                j = sample.before.ids.tolist().index(label)
                assert torch.equal(target, sample.before.centres[j])
    assert checked > 50


def test_a_cell_without_mask_is_ignored_not_learnt_as_its_marker(tmp_path: Path) -> None:
    """A SEG frame that leaves a cell out (GOWT1's GT masks 1-2 of 23-25): that cell is no
    instance, all of it is ignored (no background seed loss there), and its marker still gives
    the centre the tracking loss uses."""
    params = SimParams(frames=3, size=96, cells=6, cell_diameter=18.0)
    seq_dir = simulate(tmp_path, params, seed=3)
    seg = seq_dir.with_name("01_GT") / "SEG" / "man_seg001.tif"
    mask = tifffile.imread(seg)
    left_out = int(np.unique(mask)[1])
    tifffile.imwrite(seg, np.where(mask == left_out, 0, mask).astype(mask.dtype))
    markers = tifffile.imread(seq_dir.with_name("01_GT") / "TRA" / "man_track001.tif")
    missing = [int(m) for m in np.unique(markers[mask == left_out]) if m]
    assert len(missing) == 1
    seq = load_sequence(seq_dir)
    frame = seq.frames[1]
    assert missing[0] not in np.unique(frame.labels) and missing[0] in frame.centres
    ignored = frame.labels == IGNORE
    assert ignored[markers == missing[0]].all()
    assert ignored[mask == left_out].all()
    view = Instances(torch.from_numpy(frame.labels.astype(np.int64)),
                     torch.zeros(0, dtype=torch.int64), torch.zeros(0, 2))
    seeds = torch.zeros(5, *frame.labels.shape)
    seeds[4][torch.from_numpy(ignored)] = 1.0  # seediness where nothing is known: free
    assert float(segmentation_loss(seeds, view)[0]["seed"]) == 0.0
    seeds[4][torch.from_numpy(frame.labels == 0)] = 1.0  # and on the background: not
    assert float(segmentation_loss(seeds, view)[0]["seed"]) > 0.5
    # crops of the partly masked frame (the only training pair: (0, 1)) are cut around its
    # masked cells: each holds one
    sampler = Sampler([seq], SampleParams(crop=24), np.random.default_rng(0))
    assert all(len(sampler.sample().current.ids) for _ in range(20))


def fake_outputs(tile: torch.Tensor) -> torch.Tensor:
    """An exactly equivariant stand-in for the network: offsets and tracking offsets point at
    the brightest pixel, the bandwidths are the bright region's extent along each axis."""
    image = tile[0, 0]
    height, width = image.shape
    peak = divmod(int(torch.argmax(image)), width)
    grid = pixel_grid(height, width) * COORD_UNIT
    offsets = (torch.tensor(peak, dtype=torch.float32)[:, None, None] - grid) / COORD_UNIT
    rows, cols = torch.nonzero(image > 0.5, as_tuple=True)
    extent = torch.stack([torch.full_like(image, float(rows.max() - rows.min()) / 100),
                          torch.full_like(image, float(cols.max() - cols.min()) / 100)])
    return torch.cat([offsets, extent, image[None], offsets])


@pytest.mark.parametrize(("k", "flip"), SYMMETRIES)
def test_undoing_a_symmetry_recovers_vectors_and_axes(k: int, flip: bool) -> None:
    image = torch.zeros(1, 1, 20, 28)
    image[0, 0, 3:8, 5:17] = 0.8  # a wide bright bar: different extents along y and x
    image[0, 0, 5, 9] = 1.0
    expected = fake_outputs(image)
    got = undo_symmetry(fake_outputs(apply_symmetry(image, k, flip)), k, flip)
    assert torch.allclose(got, expected, atol=1e-6)


def test_tiles_cover_and_stitch_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tile_starts(100, 64, 16) == [0, 36]
    assert tile_starts(64, 64, 16) == [0]
    assert tile_starts(200, 64, 16) == [0, 48, 96, 136]
    # one tile up to the largest; just over it, two tiles of about half a side, not of 1024
    assert tile_side(700, 500, 1024, 64) == 704
    assert tile_side(1083, 1083, 1024, 64) == 576
    assert tile_starts(1083, 576, 64) == [0, 507]
    assert tile_side(3000, 100, 1024, 64) == 800  # 4 tiles over 3000, as with 1024
    assert tile_starts(3000, 800, 64) == [0, 736, 1472, 2200]
    tracker = EmbedTracker.__new__(EmbedTracker)
    tracker.tile, tracker.overlap, tracker.tta = 64, 16, False
    seen = []

    def positional(tile: torch.Tensor, key: tuple[int, int]) -> torch.Tensor:
        seen.append(key)
        return tile[0].expand(7, -1, -1)  # per pixel: the stitched output is the input

    monkeypatch.setattr(tracker, "_run_tile", positional)
    image = np.random.default_rng(0).random((100, 130)).astype(np.float32)
    out = tracker.predict(image)
    lo, hi = np.percentile(image, (1, 99))
    assert np.allclose(out, (image - lo) / (hi - lo), atol=1e-6)
    assert len(seen) == 2 * 3


def test_tiny_model_loss_falls(sim_sequence: Path) -> None:
    torch.manual_seed(0)
    seq = load_sequence(sim_sequence)
    sampler = Sampler([seq], SampleParams(crop=64), np.random.default_rng(0))
    batch = [sampler.sample() for _ in range(2)]
    net = EmbedTrackNet(TINY)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = batch_loss(net, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0]


def test_saved_model_reloads_with_weights_only_and_gives_identical_outputs(
        tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = EmbedTrackNet(TINY).eval()
    meta = {"kind": "embedtrack", "trained_on": ["x"], "min_size": 12, "diameter": 18.0,
            "step": 3, "history": [], "seconds": 1.0, "params": {}}
    save_checkpoint(net, tmp_path / "m.pt", meta)
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert state["kind"] == "embedtrack" and state["min_size"] == 12
    reloaded = network_from(load_checkpoint(tmp_path / "m.pt"))
    net.half().float()  # the shipped file is half precision
    x, y = torch.rand(1, 1, 32, 40), torch.rand(1, 1, 32, 40)
    with torch.no_grad():
        for a, b in zip(net(x, y), reloaded(x, y), strict=True):
            assert torch.equal(a, b)


def test_folding_batch_norms_keeps_a_shipped_models_outputs(sample: Path) -> None:
    state = load_checkpoint(model_path("embedtrack", "Fluo-N2DH-GOWT1"))
    plain, folded = network_from(state), network_from(state).fold_batchnorm()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.tracking.modules())
    frames = open_sequence(sample / "01")
    x, y = (torch.from_numpy(np.asarray(frames[t], np.float32) / 255)[None, None, :128, :128]
            for t in (1, 0))
    with torch.no_grad():
        for a, b in zip(plain(x, y), folded(x, y), strict=True):
            assert torch.allclose(a, b, atol=1e-4)


def test_train_checkpoints_resume_and_finish(sim_sequence: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    seq = load_sequence(sim_sequence)
    params = TrainParams(steps=3, batch=1, sample=SampleParams(crop=64), config=TINY)
    assert steps_per_epoch([seq], params) == 18  # 8 training pairs x (96 / 64) ** 2 crops
    monkeypatch.setattr("celltrail.training.embedtrack.loop.CHECKPOINT_EVERY", 1)

    def interrupt(step: int, loss: float) -> None:
        if step == 2:
            raise KeyboardInterrupt

    out = tmp_path / "m.pt"
    with pytest.raises(KeyboardInterrupt):
        train([seq], out, params, progress=interrupt)
    interrupted = load_checkpoint(out)
    assert interrupted["step"] == 2 and "optimiser" in interrupted
    steps: list[int] = []
    train([seq], out, params, resume=out, progress=lambda step, _: steps.append(step))
    state = load_checkpoint(out)
    assert steps == [2] and state["step"] == 3 and "optimiser" not in state
    assert state["history"][:2] == interrupted["history"] and len(state["history"]) == 3
    assert state["min_size"] == int(0.5 * np.percentile(seq.areas, 1))
    assert all(v.dtype == torch.float16 for v in state["state_dict"].values()
               if v.is_floating_point())


def test_model_lookup_errors(tmp_path: Path) -> None:
    names = {"DIC-C2DH-HeLa", "Fluo-N2DH-GOWT1", "Fluo-N2DH-SIM+", "general"}
    assert names <= set(model_names("embedtrack"))
    assert model_path("embedtrack", "Fluo-N2DH-GOWT1").is_file()
    with pytest.raises(InputError, match="no such model file, and not the name of a"):
        model_path("embedtrack", tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"bad.pt: not a readable model checkpoint"):
        EmbedTracker(model=str(tmp_path / "bad.pt"))


def test_default_model_is_the_generalist_and_tracks_simulated_cells(sim_sequence: Path) -> None:
    """With no model named, EmbedTrack runs the scale-normalised generalist, at the diameter it
    measures itself, near the simulated 18 px (measured: TRA 0.70, where the model trained on
    SIM+ alone scores 0.30)."""
    tracker = EmbedTracker()
    assert tracker.options.model == "general" and tracker.canonical == 24.0
    scores = evaluate_result(tracker.track(open_sequence(sim_sequence)),
                             sim_sequence.with_name("01_GT"), threads=1)
    assert scores["TRA"] >= 0.65
    assert tracker.settings()["diameter"] == (
        "15.6 px (measured by the network 'general' on the first frame (5 cells))")


def test_shipped_model_tracks_the_sample(sample: Path) -> None:
    """The GOWT1 model on the bundled crop of GOWT1 01 (frames it was trained on): an end-to-end
    check of tiling, clustering and linking with real weights."""
    result = EmbedTracker(model="Fluo-N2DH-GOWT1", tile=256, overlap=32).track(
        open_sequence(sample / "01"))
    result.validate()
    scores = evaluate_result(result, sample / "01_GT", threads=1)
    assert scores["TRA"] > 0.9  # 0.940 measured


def test_cli_train_then_track(sim_sequence: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.pt"
    result = run("train", "embedtrack", "--data", sim_sequence, "--out", model, "--epochs",
                 "0.1")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(model)["step"] == 1  # an epoch: 8 pairs, one crop each, batch 2
    out = tmp_path / "res"
    result = run("track", sim_sequence, "--out", out, "--method", "embedtrack", "--model", model)
    assert result.exit_code == 0, result.output
    assert read_result(out).errors() == []


def test_fine_tuning_that_made_it_worse_says_so(sim_sequence: Path, capsys) -> None:
    from celltrail.cli.train import _report_held_out

    scores = {"start": 0.9, "tuned": 0.5}
    _report_held_out({sim_sequence: [0, 1]}, Path("start.pt"), Path("tuned.pt"),
                     lambda model, *_: scores[model.stem], "SEG")
    line = " ".join(capsys.readouterr().err.split())
    assert line.endswith("SEG 0.900 before (start), 0.500 after fine-tuning warning: fine-tuning "
                         f"made it worse on {sim_sequence}'s held-out frame: keep start, or give "
                         "more annotated frames")


def test_cli_fine_tunes_a_shipped_model_and_scores_a_held_out_frame(
        sim_sequence: Path, tmp_path: Path) -> None:
    shipped = model_path("embedtrack", "Fluo-N2DH-SIM+")
    before = shipped.read_bytes()
    model = tmp_path / "tuned.pt"
    result = run("train", "embedtrack", "--data", sim_sequence, "--from", "Fluo-N2DH-SIM+",
                 "--frames", "2", "--epochs", "0.3", "--out", model)
    assert result.exit_code == 0, result.output
    state = load_checkpoint(model)
    assert state["step"] == 1 and state["params"]["lr"] == FINE_TUNE_LR  # 0.3 epoch: 1 step
    assert state["config"] == load_checkpoint(shipped)["config"]
    assert shipped.read_bytes() == before
    # the last annotated frame is left out and scored with both models (SEG in [0, 1])
    line = " ".join(result.output.split())
    found = re.search(rf"{sim_sequence.name}, held-out frame 9: SEG (0\.\d+|1\.000) before "
                      r"\(Fluo-N2DH-SIM\+\), (0\.\d+|1\.000) after fine-tuning", line)
    assert found, result.output
    worse = float(found.group(2)) < float(found.group(1))
    assert ("fine-tuning made it worse" in line) == worse  # and says what to do then
    result = run("train", "embedtrack", "--data", sim_sequence, "--from", "nope",
                 "--out", tmp_path / "x.pt")
    assert result.exit_code == 1
    assert "not the name of any embedtrack model" in result.stderr
    result = run("train", "embedtrack", "--data", sim_sequence, "--frames", "11",
                 "--out", tmp_path / "y.pt")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: {sim_sequence}: --frames 11: only 10 frames have "
                                     "masks")


def test_cli_embedtrack_errors(sample: Path, tmp_path: Path) -> None:
    result = run("track", sample / "01", "--out", tmp_path / "b", "--tta")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: --tta: applies to method embedtrack only, not "
                                     "classical")
    missing = tmp_path / "none.pt"
    result = run("track", sample / "01", "--out", tmp_path / "c", "--method", "embedtrack",
                 "--model", missing)
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: {missing}: no such model file, and not the name "
                                     "of any embedtrack model (DIC-C2DH-HeLa, Fluo-N2DH-GOWT1, "
                                     "Fluo-N2DH-SIM+, general)")
    assert not (tmp_path / "c").exists()
