"""BoxTrack's learned backend: plain-torch RoIAlign, the prompt-segmenter network, its training,
checkpoints, and the shipped weights tracking the bundled real sample."""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from typer.testing import CliRunner

from celltrail.cli import app
from celltrail.core import InputError, open_sequence
from celltrail.io.boxes import boxes_from_gt
from celltrail.methods.boxtrack import BoxTrackConfig, BoxTracker, make_segmenter
from celltrail.methods.boxtrack.adapt import adapt, box_loss, frame_sequence
from celltrail.methods.boxtrack.config import AdaptParams
from celltrail.methods.boxtrack.learned import (
    DEFAULT_MODEL,
    WEIGHTS,
    LearnedPromptSegmenter,
    model_name,
)
from celltrail.metrics.ctc import evaluate_result
from celltrail.models.checkpoint import save_checkpoint
from celltrail.models.ops import roi_align
from celltrail.models.prompt_segmenter import K, PromptSegNet, box_prompt, crop_boxes
from celltrail.simulate import SimParams, simulate
from celltrail.training.prompt_segmenter import (
    TrainParams,
    TrainSequence,
    _previous,
    _Sampler,
    load_sequence,
    losses,
    train,
)


def test_roi_align_matches_hand_values() -> None:
    features = torch.arange(32.0).reshape(2, 1, 4, 4)  # image 1 holds 16..31
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 4.0, 4.0]])
    out = roi_align(features, boxes, torch.tensor([0, 0, 1]), size=2)
    # bin centres at pixel coordinates 1 and 3: the mean of the 2x2 pixels around each
    assert out[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    # a 2x2 box sampled 2x2: exactly the pixels (1..2, 1..2)
    assert out[1, 0].tolist() == [[5.0, 6.0], [9.0, 10.0]]
    assert out[2, 0].tolist() == [[18.5, 20.5], [26.5, 28.5]]
    # stride: boxes in input pixels of a map with stride 2 read the same feature places
    doubled = roi_align(features, boxes * 2, torch.tensor([0, 0, 1]), size=2, stride=2.0)
    assert torch.equal(doubled, out)


def test_crop_and_box_prompt() -> None:
    boxes = torch.tensor([[10.0, 20.0, 30.0, 30.0]])
    crop = crop_boxes(boxes)
    assert crop.tolist() == [[5.0, 10.0, 35.0, 40.0]]  # square, 1.5x the longer side, centred
    prompt = box_prompt(boxes, crop, 6)[0, 0]  # grid points at 7.5, 12.5, ... 32.5
    assert prompt.tolist() == [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0],
                               [0, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 0],
                               [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]


@pytest.fixture(scope="module")
def sim_sequence(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sim")
    params = SimParams(frames=4, size=96, cells=6, cell_diameter=24.0)
    return load_sequence(simulate(root, params, seed=3))


def test_partial_masks_teach_no_background(tmp_path: Path) -> None:
    """A frame whose SEG mask leaves out a cell (as GOWT1's GT masks do): the cell's marker is
    not taken for its mask, and crops of that frame carry no background prompt and no
    foreground-head weight; complete frames keep both."""
    seq = simulate(tmp_path, SimParams(frames=2, size=96, cells=6, cell_diameter=24.0), seed=3)
    seg = tmp_path / "01_GT" / "SEG" / "man_seg001.tif"
    mask = tifffile.imread(seg)
    left_out = int(np.unique(mask)[1])
    tifffile.imwrite(seg, np.where(mask == left_out, 0, mask).astype(mask.dtype))
    loaded = load_sequence(seq)
    assert loaded.partial == {1}
    markers = tifffile.imread(tmp_path / "01_GT" / "TRA" / "man_track001.tif")
    assert len(np.unique(loaded.labels[1])) == len(np.unique(markers)) - 1  # one cell fewer
    for t in (0, 1):
        only = TrainSequence("one frame", {t: loaded.images[t]}, {t: loaded.labels[t]},
                             partial=loaded.partial & {t})
        batch = _Sampler([only], TrainParams(batch=2), np.random.default_rng(0)).sample()
        assert batch["background"].tolist() == [float(t == 0)] * 2
        assert bool(batch["positive"].all()) == (t == 1)


def test_decoder_outputs(sim_sequence) -> None:
    net = PromptSegNet().eval()
    image = torch.from_numpy(sim_sequence.images[0])[None, None]
    boxes = torch.tensor([[10.0, 10.0, 34.0, 34.0], [40.0, 40.0, 60.0, 70.0]])
    with torch.no_grad():
        out = net.decode(net.encode(image), image, boxes, crop_boxes(boxes),
                         torch.zeros(2, dtype=torch.long), -torch.ones(2, 1, 24, 24))
    assert out.masks.shape == (2, K, 24, 24)
    assert out.quality.shape == (2, K) and bool(((out.quality >= 0) & (out.quality <= 1)).all())
    assert out.objectness.shape == (2,)
    assert out.tokens.shape == (2, K, net.config.decoder_width)


@pytest.mark.parametrize("supervision", ["mask", "box"])
def test_loss_falls_when_fitting_one_batch(sim_sequence, supervision: str) -> None:
    torch.manual_seed(0)
    params = TrainParams(batch=2, crop=96, prompts=4, supervision=supervision)
    batch = _Sampler([sim_sequence], params, np.random.default_rng(0)).sample()
    net = PromptSegNet()
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = losses(net, batch, supervision)["total"]
        first = float(loss.detach()) if first is None else first
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    # box-only losses keep a floor: the best split of a real crop still has Chan–Vese energy
    assert float(loss.detach()) < first * (0.5 if supervision == "mask" else 0.6)


def test_box_only_pairwise_terms_warm_up(sim_sequence) -> None:
    torch.manual_seed(0)
    params = TrainParams(batch=2, crop=96, prompts=4, supervision="box")
    batch = _Sampler([sim_sequence], params, np.random.default_rng(0)).sample()
    flat = {**batch, "guide": torch.zeros_like(batch["guide"])}  # no edge, one colour
    net = PromptSegNet().eval()
    with torch.no_grad():
        for warmup in (0.0, 1.0):
            real, plain = (float(losses(net, b, "box", warmup)["mask"]) for b in (batch, flat))
            # at the start the image does not count: the masks learn their boxes first
            assert (real == plain) == (warmup == 0.0)


def test_box_only_previous_masks_carry_no_shape() -> None:
    yy, xx = np.mgrid[:40, :40]
    diamond = np.abs(yy - 20) + np.abs(xx - 20) <= 8  # same box as the square below
    square = (np.abs(yy - 20) <= 8) & (np.abs(xx - 20) <= 8)
    for masks in (True, False):
        same = [np.array_equal(_previous(diamond, np.roll(diamond, 2, 1), np.random.default_rng(s),
                                         masks),
                               _previous(square, np.roll(square, 2, 1), np.random.default_rng(s),
                                         masks)) for s in range(20)]
        # with masks, a drawn previous mask shows the shape; from boxes alone it cannot
        assert all(same) != masks


def test_train_save_reload_and_resume(sim_sequence, tmp_path: Path) -> None:
    out = tmp_path / "model.pt"
    params = TrainParams(steps=3, batch=1, crop=64, prompts=2)
    train([sim_sequence], out, params)
    state = torch.load(out, weights_only=True)
    assert state["step"] == 3 and state["trained_on"] == [sim_sequence.name]
    first, second = LearnedPromptSegmenter.load(out), LearnedPromptSegmenter.load(out)
    image = (np.random.default_rng(0).random((80, 90)) * 255).astype(np.uint8)
    boxes = np.array([[10.0, 10.0, 40.0, 40.0]])
    a = first.decode(first.encode(image), boxes, [None])
    b = second.decode(second.encode(image), boxes, [None])
    assert np.array_equal(a.quality, b.quality) and np.array_equal(a.tokens, b.tokens)
    steps = []
    train([sim_sequence], tmp_path / "tuned.pt", params, resume=out,
          progress=lambda step, _: steps.append(step))
    assert steps == [0, 1, 2]  # a finished model is fine-tuned from step 0


def test_model_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope: no such model file, and not the name of any "
                                         "prompt_segmenter model \\(general, without-"):
        LearnedPromptSegmenter.load("nope")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError) as err:
        LearnedPromptSegmenter.load(bad)
    assert str(err.value).startswith(f"{bad}: not a readable model checkpoint")


def test_model_names() -> None:
    shared = ("A", "B", "C")
    assert model_name(shared, shared) == DEFAULT_MODEL
    assert model_name(("A", "C"), shared) == "without-B"


def test_shipped_model_tracks_the_sample(sample: Path) -> None:
    """The default weights load and track the bundled crop (from a sequence they were trained
    on: this checks the shipped model, not zero-shot accuracy, which the benchmark measures)."""
    boxes, _ = boxes_from_gt(sample / "01_GT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = BoxTracker(backend="learned", adapt=False).track(
            open_sequence(sample / "01"), boxes)
    scores = evaluate_result(result, sample / "01_GT", threads=1)
    assert scores["MOTA"] > 0.95 and scores["IDF1"] > 0.95  # measured 0.980 and 0.988


def _prompted(root: Path, params: SimParams, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    """A simulated sequence's first frame and its cells' GT boxes."""
    simulate(root, params, seed=seed)
    boxes, _ = boxes_from_gt(root / "01_GT")
    return open_sequence(root / "01")[0], boxes


def _corners(boxes: pd.DataFrame) -> np.ndarray:
    xyxy = boxes[["x", "y", "w", "h"]].to_numpy(dtype=np.float64, copy=True)
    xyxy[:, 2:] += xyxy[:, :2]
    return xyxy


def _weights_digest() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in WEIGHTS.glob("*.pt")}


def test_adaptation_lowers_the_box_loss_and_never_writes_the_weights(tmp_path: Path) -> None:
    image, boxes = _prompted(tmp_path, SimParams(frames=1, size=160, cells=10, modality="phase",
                                                 cell_diameter=16.0), seed=5)
    xyxy = _corners(boxes)
    before = _weights_digest()
    shipped = LearnedPromptSegmenter.load()
    shipped.set_scale(float(np.median(np.sqrt(boxes["w"] * boxes["h"]))))
    weights = {k: v.clone() for k, v in shipped.net.state_dict().items()}
    frame = frame_sequence(image, xyxy, shipped.scale)
    run = adapt(shipped, image, xyxy, AdaptParams(steps=15))
    assert (run.steps, run.cut_short) == (15, False) and run.segmenter.scale == shipped.scale
    loss_before = box_loss(shipped.net, frame, batches=4)
    loss_after = box_loss(run.segmenter.net, frame, batches=4)
    # measured 0.99 -> 0.66 after 20 steps (0.75 after 10)
    assert loss_after < 0.85 * loss_before, (loss_before, loss_after)
    # the shipped model is untouched, on disk and in memory
    assert _weights_digest() == before
    assert all(torch.equal(v, shipped.net.state_dict()[k]) for k, v in weights.items())
    # seeded: the same settings give the same weights
    again = [adapt(shipped, image, xyxy, AdaptParams(steps=3)).segmenter.net.state_dict()
             for _ in range(2)]
    assert all(torch.equal(again[0][k], again[1][k]) for k in again[0])


def test_frame_sequence_holds_out_cells() -> None:
    image = np.zeros((60, 80), dtype=np.uint8)
    boxes = np.array([[4.0, 4.0, 24.0, 20.0], [30.0, 30.0, 50.0, 56.0]])
    frame = frame_sequence(image, boxes, 0.5, hidden=[1])
    labels = frame.labels[0]
    assert labels.shape == (30, 40) and frame.hidden == {2}
    rows, cols = np.nonzero(labels == 2)  # the ellipse spans its box, at half scale
    assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (15, 15, 25, 28)


def _useless_model(path: Path) -> Path:
    """A prompt segmenter whose masks are always empty."""
    net = PromptSegNet()
    with torch.no_grad():
        net.fine[-1].weight.zero_()
        net.fine[-1].bias.fill_(-10.0)
    save_checkpoint(net, path, {"kind": "prompt_segmenter", "trained_on": []})
    return path


def test_auto_picks_the_classical_backend_where_the_learned_one_fails(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    params = SimParams(frames=6, size=160, cells=6, division_rate=0, apoptosis_rate=0,
                       displacement=0.05, overlap=0, irregularity=0.3)
    _, boxes = _prompted(tmp_path / "seq", params, seed=2)
    model = _useless_model(tmp_path / "useless.pt")
    segmenter = make_segmenter("auto", model=model, adapt=False)
    with caplog.at_level(logging.INFO, logger="celltrail"):
        result = BoxTracker(segmenter=segmenter).track(open_sequence(tmp_path / "seq" / "01"),
                                                       boxes)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("prompt check")]
    calibration = segmenter.calibration
    scores = {a.name: a for a in calibration.scores}
    assert scores["learned (useless)"].matched == 0 and scores["learned (useless)"].mean_iou == 0
    assert calibration.chosen.startswith("classical (") and calibration.best().matched == 1
    assert lines == [calibration.table()] and lines[0].endswith(f"backend: {calibration.chosen}")
    assert evaluate_result(result, tmp_path / "seq" / "01_GT", threads=1)["MOTA"] > 0.9
    # the command line prints the check and says which backend it chose
    out = CliRunner().invoke(app, ["track", str(tmp_path / "seq" / "01"), "--out",
                                   str(tmp_path / "res"), "--method", "boxtrack",
                                   "--boxes-from-gt", str(tmp_path / "seq" / "01_GT"),
                                   "--model", str(model), "--no-adapt"])
    assert out.exit_code == 0, out.output
    assert "prompt check" in out.stderr and f"backend: {calibration.chosen}" in out.stderr


def test_a_poor_fit_to_the_prompts_warns(tmp_path: Path) -> None:
    image, boxes = _prompted(tmp_path, SimParams(frames=1, size=160, cells=4, overlap=0),
                             seed=4)
    empty = np.full_like(image, image.min())
    segmenter = make_segmenter("auto", model=_useless_model(tmp_path / "useless.pt"),
                               adapt=False)
    segmenter.set_scale(24.0)
    with pytest.warns(UserWarning, match=r"even the best BoxTrack backend \(.*\) matches only "
                                         r"0% of the prompted cells"):
        segmenter.calibrate([empty], boxes, BoxTrackConfig())


def test_fine_tuning_from_a_shipped_model_reports_a_held_out_frame(tmp_path: Path) -> None:
    """`train prompt-segmenter --from all --frames 2`: learns from the first two annotated
    frames, scores the last one before and after, and leaves the shipped weights as they were."""
    params = SimParams(frames=4, size=96, cells=6, cell_diameter=24.0)
    seq = simulate(tmp_path / "sim", params, seed=5)
    shipped = _weights_digest()
    out = tmp_path / "tuned.pt"
    result = CliRunner().invoke(app, ["train", "prompt-segmenter", "--data", str(seq), "--from",
                                      "general", "--frames", "2", "--steps", "3",
                                      "--out", str(out)],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "held-out frame" in line)
    assert line.startswith(f"{seq}, held-out frame 3: SEG from its true boxes 0.")
    before, after = (float(word) for word in line.split() if word.startswith(("0.", "1.")))
    assert 0.5 < before <= 1 and 0.5 < after <= 1
    state = torch.load(out, weights_only=True)
    assert state["step"] == 3 and state["trained_on"] == ["sim/01"]
    assert _weights_digest() == shipped
    result = CliRunner().invoke(app, ["train", "prompt-segmenter", "--data", str(seq), "--from",
                                      "general", "--frames", "9", "--out", str(tmp_path / "x.pt")])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1].endswith("--frames 9: only 4 frames have masks")
