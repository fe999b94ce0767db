"""CellBoxify: the box-only losses on hand-made inputs, box operations and NMS against hand
values, anchors, pasting masks, a tiny model learning on a simulated image, self-training's
masks, the CLI (train, segment, track) and its one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

from celltrail.cli import app
from celltrail.core.errors import InputError
from celltrail.core.sequence import open_sequence
from celltrail.io.coco import ctc_to_coco
from celltrail.methods.cellboxify import (
    CellBoxifySegmenter,
    CellBoxifyTracker,
    box_labels,
    paint,
    paint_scored,
)
from celltrail.metrics import evaluate_result
from celltrail.models.cellboxify import (
    ANCHOR_SIZES,
    ASPECT_RATIOS,
    BOX_WEIGHTS,
    TRAIN_SIDES,
    CellBoxifyConfig,
    CellBoxifyNet,
    Detections,
    anchors,
    decode,
    encode,
    load_checkpoint,
    polygon_box,
    pool,
    rasterise,
    reframe,
    vertices,
)
from celltrail.models.ops import box_iou, nms, roi_align
from celltrail.models.zoo import model_names, model_path
from celltrail.simulate import SimParams, simulate
from celltrail.training.cellboxify import (
    Sample,
    Sampler,
    TrainParams,
    box_only_teacher,
    detector_losses,
    training_images,
)
from celltrail.training.cellboxify.held_out import held_out_ap
from celltrail.training.cellboxify.loop import in_frame
from celltrail.training.cellboxify.losses import (
    box_mask_loss,
    box_region,
    ciou,
    global_pairwise,
    local_pairwise,
    mask_box,
    texture,
)

TINY = CellBoxifyConfig(widths=(8, 16, 16, 16), blocks=(1, 1, 1, 1), fpn=16, fc=32,
                        mask_convs=1)
runner = CliRunner()
#: SEG of the shipped box-only SIM+ model on the bundled GOWT1 crop was 0.475 when measured.
SAMPLE_SEG = 0.45


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result, message: str) -> None:
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: {message}"]


def test_ciou_known_values() -> None:
    box = torch.tensor([[2.0, 3.0, 10.0, 12.0]])
    assert ciou(box, box).item() == pytest.approx(1.0)
    # IoU 2/6, centres 1 apart, enclosing box 3 x 2 (diagonal² 13), same aspect ratio
    shifted = ciou(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 0.0, 3.0, 2.0]]))
    assert shifted.item() == pytest.approx(1 / 3 - 1 / 13, abs=1e-6)
    # nested boxes with the same centre: only the aspect-ratio term joins the IoU
    tall, wide = torch.tensor([[0.0, 0.0, 2.0, 4.0]]), torch.tensor([[-1.0, 1.0, 3.0, 3.0]])
    v = 4 / math.pi**2 * (math.atan(0.5) - math.atan(2.0)) ** 2
    iou = 4 / 12
    assert ciou(tall, wide).item() == pytest.approx(iou - v * v / (1 - iou + v), abs=1e-6)


def test_mask_box_is_exact_for_binary_masks() -> None:
    mask = torch.zeros(1, 28, 28)
    mask[0, 5:20, 7:15] = 1
    assert mask_box(mask).tolist() == [[7.0, 5.0, 15.0, 20.0]]
    assert ciou(mask_box(mask), torch.tensor([[7.0, 5.0, 15.0, 20.0]])).item() == \
        pytest.approx(1.0)


def _edge_image() -> torch.Tensor:
    """Dark left half, bright right half, with a little noise."""
    generator = torch.Generator().manual_seed(0)
    image = torch.zeros(1, 28, 28)
    image[0, :, 14:] = 1
    return image + 0.05 * torch.randn(1, 28, 28, generator=generator)


def test_pairwise_terms_prefer_a_mask_along_the_edge() -> None:
    image, region = _edge_image(), torch.ones(1, 28, 28)
    follows = torch.zeros(1, 28, 28)
    follows[0, :, 14:] = 1
    crosses = torch.zeros(1, 28, 28)
    crosses[0, 14:, :] = 1
    assert local_pairwise(follows, image, region) < 0.01
    assert local_pairwise(crosses, image, region) > 0.02
    assert local_pairwise(follows, image, region) < local_pairwise(crosses, image, region) / 10
    assert global_pairwise(follows, image, region).item() < 0.02  # two flat regions
    assert global_pairwise(crosses, image, region).item() == pytest.approx(1.0, abs=0.02)
    assert global_pairwise(torch.full((1, 28, 28), 0.5), image, region).item() == \
        pytest.approx(1.0)


def test_texture_is_the_local_standard_deviation() -> None:
    stripes = torch.ones(1, 1, 40, 40)
    stripes[..., ::2] = -1  # mean 0 and variance 1 in any window
    assert torch.allclose(texture(stripes, 2.0)[..., 10:30, 10:30], torch.ones(20, 20),
                          atol=0.01)
    assert texture(torch.full((1, 1, 20, 20), 3.0), 2.0).abs().max().item() < 0.01  # float32


def test_texture_guide_finds_a_textured_cell_of_background_brightness() -> None:
    """A DIC-like cell: ±1 texture inside a disc on a flat background of its mean brightness.
    On the texture, the pairwise terms prefer the mask on the disc to one crossing it."""
    generator = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    disc = (((yy - 13.5) ** 2 + (xx - 13.5) ** 2) <= 64).float()[None]
    noise = torch.randint(0, 2, (1, 28, 28), generator=generator).float() * 2 - 1
    image = (disc * noise)[:, None]
    guide, region = texture(image, 1.0)[:, 0], torch.ones(1, 28, 28)
    crosses = torch.zeros(1, 28, 28)
    crosses[0, 14:, :] = 1
    assert local_pairwise(disc, guide, region) < local_pairwise(crosses, guide, region) / 2
    assert global_pairwise(disc, guide, region) < global_pairwise(crosses, guide, region) / 2


def test_box_region_and_joint_loss() -> None:
    region = box_region(torch.tensor([[2.0, 4.0, 6.0, 5.0]]), 8)
    assert region[0].nonzero().tolist() == [[4, 2], [4, 3], [4, 4], [4, 5]]
    # a bright disc in a grid that reaches beyond its box: the disc beats the filled box
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    disc = (((yy - 13.5) ** 2 + (xx - 13.5) ** 2) <= 64).float()[None]
    image = disc + 0.05 * torch.randn(1, 28, 28, generator=torch.Generator().manual_seed(0))
    box = mask_box(disc)
    filled = box_region(box, 28)
    assert box.tolist() == [[6.0, 6.0, 22.0, 22.0]]
    good, bad = box_mask_loss(disc, image, box), box_mask_loss(filled, image, box)
    assert good["unary"].item() < 1e-6 and bad["unary"].item() < 1e-6
    assert good["local"] < bad["local"] / 5
    assert good["global"] < bad["global"] / 5
    assert good["mask"] < bad["mask"] / 5


def test_boxes_in_grid_coordinates() -> None:
    boxes = torch.tensor([[10.0, 20.0, 30.0, 30.0]])
    frames = torch.tensor([[0.0, 10.0, 40.0, 50.0]])
    assert in_frame(boxes, frames, 28).tolist() == [[7.0, 7.0, 21.0, 14.0]]


def test_box_iou_and_nms_match_hand_values() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9],
                          [21, 20, 31, 30]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95, 0.6])
    iou = box_iou(boxes, boxes)
    assert iou[0, 1].item() == pytest.approx(81 / 119)
    assert iou[0, 3].item() == pytest.approx(0.9)
    assert iou[1, 3].item() == pytest.approx(72 / 118)
    assert iou[2, 4].item() == pytest.approx(90 / 110)
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    # greedy: box 0 is suppressed by box 3, so it cannot suppress box 1 (IoU 0.68 > 0.65)
    assert nms(boxes, scores, 0.65).tolist() == [3, 1, 2]
    assert nms(boxes, scores, 0.95).tolist() == [3, 0, 1, 2, 4]
    assert nms(boxes[:0], scores[:0], 0.5).tolist() == []


def test_anchors_and_box_coding() -> None:
    grid = anchors(0, (2, 3))
    assert grid.shape == (2 * 3 * len(ASPECT_RATIOS), 4)
    first = grid[0]  # pixel (0, 0) at stride 4: centre (2, 2), ratio 0.5 (wide)
    side = ANCHOR_SIZES[0]
    assert first.tolist() == pytest.approx([2 - side / math.sqrt(0.5) / 2,
                                            2 - side * math.sqrt(0.5) / 2,
                                            2 + side / math.sqrt(0.5) / 2,
                                            2 + side * math.sqrt(0.5) / 2])
    areas = (grid[:, 2] - grid[:, 0]) * (grid[:, 3] - grid[:, 1])
    assert torch.allclose(areas, torch.full_like(areas, side**2))
    assert grid[len(ASPECT_RATIOS)].tolist()[0] == pytest.approx(first.tolist()[0] + 4)
    reference = torch.tensor([[10.0, 10.0, 30.0, 50.0]])
    target = torch.tensor([[12.0, 5.0, 40.0, 45.0]])
    assert torch.allclose(decode(encode(target, reference, BOX_WEIGHTS), reference,
                                 BOX_WEIGHTS), target, atol=1e-4)


def test_pool_picks_the_level_of_the_box_size() -> None:
    levels = [torch.full((1, 1, 64 // 2**i, 64 // 2**i), float(i)) for i in range(5)]
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 32.0, 32.0], [0, 0, 128.0, 128.0]])
    pooled = pool(levels, boxes, 2)
    assert pooled[:, 0, 0, 0].tolist() == [0.0, 2.0, 3.0]  # P2, P4, and P5 for the largest


def test_paint_pastes_masks_into_their_boxes() -> None:
    found = Detections(torch.tensor([[2.0, 3.0, 6.0, 9.0], [4.0, 3.0, 8.0, 9.0],
                                     [20.0, 20.0, 24.0, 24.0]]),
                       torch.tensor([0.9, 0.8, 0.3]), torch.ones(3, 28, 28))
    labels = paint(found, (16, 16))
    assert (labels == 1).sum() == 4 * 6 and labels[3:9, 2:6].min() == 1
    assert (labels == 2).sum() == 2 * 6  # the overlap went to the better cell
    assert labels.max() == 2  # the third scored below 0.5 (and lies outside)


def test_paint_gives_a_contested_pixel_to_the_surer_mask_and_drops_duplicates() -> None:
    boxes = torch.tensor([[0.0, 0.0, 12.0, 10.0], [8.0, 0.0, 20.0, 10.0], [8.0, 0.0, 20.0, 10.0]])
    sureness = torch.tensor([0.6, 0.9, 0.95])[:, None, None].expand(3, 28, 28)
    labels = paint(Detections(boxes, torch.tensor([0.9, 0.8, 0.7]), sureness), (10, 20))
    assert (labels[:, :8] == 1).all()  # the better-scored cell, less sure of columns 8-11
    assert (labels[:, 8:] == 2).all()  # the surer one; the third, a duplicate, kept nothing


def test_paint_scored_gives_each_label_its_score_after_a_cell_lost_every_pixel() -> None:
    # the first cell is better scored but less sure than the second, which covers it
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 20.0, 10.0], [30.0, 0, 40, 10]])
    sureness = torch.tensor([0.6, 0.7, 0.8])[:, None, None].expand(3, 28, 28)
    found = Detections(boxes, torch.tensor([0.9, 0.8, 0.6]), sureness)
    labels, scores = paint_scored(found, (10, 40))
    assert (labels[:, :20] == 1).all() and (labels[:, 30:] == 2).all()
    assert scores.tolist() == pytest.approx([0.8, 0.6])
    assert (paint(found, (10, 40)) == labels).all()


def test_box_labels_keep_every_detection_and_part_them_by_sureness() -> None:
    boxes = torch.tensor([[0.0, 0.0, 12.0, 10.0], [8.0, 0.0, 20.0, 10.0], [8.0, 0.0, 20.0, 10.0],
                          [0.0, 0.0, 4.0, 4.0]])
    sureness = torch.tensor([0.6, 0.9, 0.95, 0.4])[:, None, None].expand(4, 28, 28)
    labels = box_labels(Detections(boxes, torch.tensor([0.9, 0.8, 0.7, 0.6]), sureness), (10, 20))
    # label k + 1 is detection k: the third, surest of columns 8-19, keeps them; the second
    # lost every pixel to it, and the fourth (below 0.5) holds none
    assert (labels[:, :8] == 1).all() and (labels[:, 8:] == 3).all()
    # paint drops the third as a duplicate of the second, and numbers the labels anew
    painted = paint(Detections(boxes, torch.tensor([0.9, 0.8, 0.7, 0.6]), sureness), (10, 20))
    assert (painted[:, :8] == 1).all() and (painted[:, 8:] == 2).all()


class _FillingTeacher:
    """A stand-in teacher whose mask fills every box it is given."""

    def segment_boxes(self, image: np.ndarray, boxes: np.ndarray) -> Detections:
        given = torch.as_tensor(np.asarray(boxes, dtype=np.float32))
        return Detections(given, torch.ones(len(given)), torch.ones(len(given), 28, 28))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated sequence with its COCO file (masks)."""
    root = tmp_path_factory.mktemp("sim")
    seq = simulate(root, SimParams(frames=3, size=128, cells=8, cell_diameter=20), seed=1)
    ctc_to_coco(seq, root / "train.json", "gt")
    return seq


def test_sampler_keeps_boxes_on_their_masks(simulated: Path) -> None:
    images = training_images(simulated.parent / "train.json", simulated, "mask")
    sampler = Sampler(images[:1], np.random.default_rng(3))
    flips = set()
    for _ in range(6):
        sample = sampler.sample()
        assert min(sample.image.shape[-2:]) in TRAIN_SIDES
        assert sample.masks is not None and len(sample.masks) == len(sample.boxes)
        inside = roi_align(sample.masks, sample.boxes, torch.arange(len(sample.boxes)), 8,
                           stride=sample.scale)
        # each cell's mask fills its box (flipped or not) and reaches all four sides
        assert inside.mean(dim=(1, 2, 3)).min() > 0.5
        assert inside[:, 0, 0, :].amax(dim=1).min() > 0 and inside[:, 0, :, -1].amax(1).min() > 0
        flips.add(bool(sample.masks[0, 0].sum(0).argmax() != images[0].masks[0].sum(0).argmax()))
    assert flips == {True, False}


def test_polygon_rasterises_to_its_shape() -> None:
    # four rays of 0.26 from the grid's centre: the diamond |x| + |y| < 0.26 (grid units)
    centres = torch.tensor([[0.5, 0.5]])
    coords = (torch.arange(16) + 0.5) / 16 - 0.5
    inside = coords.abs()[None, :] + coords.abs()[:, None] < 0.26
    diamond = vertices(centres, torch.full((1, 4), 0.26))
    assert torch.equal(rasterise(centres, diamond, 16)[0] > 0, inside)
    # the logit is the distance to the edge along the ray from the centre, in grid pixels:
    # pixel (8, 8) lies 0.03125·√2 out on the diagonal, whose edge is 0.25/√2 away
    corners = vertices(centres, torch.full((1, 4), 0.25))
    assert rasterise(centres, corners, 16)[0, 8, 8].item() == pytest.approx(
        (0.25 / math.sqrt(2) - 0.03125 * math.sqrt(2)) * 16, abs=1e-4)
    assert polygon_box(corners, 16)[0].tolist() == pytest.approx([4.0, 4.0, 12.0, 12.0])
    # a 32-ray circle of radius 0.3 covers close to its area
    circle = vertices(centres, torch.full((1, 32), 0.3))
    assert (rasterise(centres, circle, 28) > 0).sum().item() == pytest.approx(
        math.pi * (0.3 * 28) ** 2, rel=0.03)
    # on a frame twice the box's width and as high, the circle becomes an ellipse of half
    # the width: semi-axes 0.15 and 0.3 of the frame, centred at (0.25, 0.5)
    box, frame = torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([[0.0, 0.0, 20.0, 10.0]])
    assert reframe(centres, box, frame).tolist() == [[0.25, 0.5]]
    ellipse = rasterise(reframe(centres, box, frame), reframe(circle, box, frame), 40) > 0
    xs, ys = (torch.arange(40) + 0.5) / 40 - 0.25, (torch.arange(40) + 0.5) / 40 - 0.5
    exact = (xs[None, :] / 0.15) ** 2 + (ys[:, None] / 0.3) ** 2 <= 1
    assert (ellipse ^ exact).sum().item() <= 0.05 * exact.sum().item()


@pytest.mark.parametrize("supervision", ["mask", "box"])
@pytest.mark.parametrize("head", ["mask", "polygon"])
def test_tiny_model_loss_falls(simulated: Path, supervision: str, head: str) -> None:
    torch.manual_seed(0)
    images = training_images(simulated.parent / "train.json", simulated, supervision)
    item = images[0]  # at its own 128 x 128 size, to keep the test fast
    masks = None if item.masks is None else torch.from_numpy(item.masks)[:, None].float()
    sample = Sample(torch.from_numpy(item.image)[None, None], torch.from_numpy(item.boxes),
                    masks, 1.0)
    net = CellBoxifyNet(CellBoxifyConfig(**{**TINY.to_dict(), "head": head}))
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    params = TrainParams(supervision=supervision)
    history, mask = [], []
    for _ in range(150):  # the box-only mask term needs ~110 steps to leave its flat start
        losses = detector_losses(net, sample, params)
        optimiser.zero_grad()
        losses["total"].backward()
        optimiser.step()
        history.append(float(losses["total"]))
        mask.append(float(losses["mask"]))
    assert np.mean(history[-5:]) < 0.8 * np.mean(history[:5])
    assert np.mean(mask[-5:]) < 0.9 * np.mean(mask[:5])


def test_mask_supervision_needs_masks(simulated: Path, tmp_path: Path) -> None:
    boxes_only = ctc_to_coco(simulated, tmp_path / "boxes.json", "boxes")
    assert training_images(boxes_only, simulated, "box")[0].masks is None
    one_error_line(run("train", "cellboxify", "--coco", boxes_only, "--images", simulated,
                       "--supervision", "mask", "--out", tmp_path / "m.pt"),
                   f"{boxes_only}: --supervision mask needs a segmentation for every "
                   f"annotation; this dataset has boxes only")


def test_self_training_masks_are_the_teachers_not_the_truth(simulated: Path,
                                                              tmp_path: Path) -> None:
    teacher = _FillingTeacher()
    with_masks = training_images(simulated.parent / "train.json", simulated, "box", teacher)
    boxes_only = ctc_to_coco(simulated, tmp_path / "boxes.json", "boxes")
    for item, other in zip(with_masks, training_images(boxes_only, simulated, "box", teacher),
                           strict=True):
        masks = item.masks
        assert masks is not None and np.array_equal(masks, other.masks)  # no truth read
        assert masks.sum(0).max() == 1  # no pixel in two cells
        for mask, (x0, y0, x1, y1) in zip(masks, item.boxes.astype(int), strict=True):
            outside = mask.copy()
            outside[y0:y1, x0:x1] = False
            assert not outside.any()  # each mask inside its own box
    # the filled boxes are not the simulated cells
    truth = training_images(simulated.parent / "train.json", simulated, "mask")[0].masks
    assert not np.array_equal(with_masks[0].masks, truth)
    # with masks in a sample, box supervision trains the mask head on them by cross-entropy
    item = with_masks[0]
    sample = Sample(torch.from_numpy(item.image)[None, None], torch.from_numpy(item.boxes),
                    torch.from_numpy(item.masks)[:, None].float(), 1.0)
    losses = detector_losses(CellBoxifyNet(TINY), sample, TrainParams(supervision="box"))
    assert "mask" in losses and "mask_unary" not in losses
    with pytest.raises(InputError, match=r"^--teacher applies to --supervision box only$"):
        training_images(simulated.parent / "train.json", simulated, "mask", teacher)


def test_cli_self_training_needs_a_box_only_teacher(simulated: Path, tmp_path: Path) -> None:
    coco = simulated.parent / "train.json"
    for supervision in ("box", "mask"):
        result = run("train", "cellboxify", "--coco", coco, "--images", simulated,
                     "--supervision", supervision, "--steps", "1", "--out",
                     tmp_path / f"{supervision}.pt")
        assert result.exit_code == 0, result.output
    student = tmp_path / "student.pt"
    result = run("train", "cellboxify", "--coco", coco, "--images", simulated, "--teacher",
                 tmp_path / "box.pt", "--steps", "1", "--out", student)
    assert result.exit_code == 0, result.output
    state = load_checkpoint(student)
    assert state["supervision"] == "box" and state["params"]["teacher"] == str(tmp_path / "box.pt")
    assert isinstance(box_only_teacher(student), CellBoxifySegmenter)  # it can teach in turn
    one_error_line(run("train", "cellboxify", "--coco", coco, "--images", simulated,
                       "--teacher", tmp_path / "mask.pt", "--out", tmp_path / "s.pt"),
                   f"{tmp_path / 'mask.pt'}: the teacher was trained with masks; self-training "
                   f"from boxes needs a model trained with --supervision box")
    one_error_line(run("train", "cellboxify", "--coco", coco, "--images", simulated,
                       "--supervision", "mask", "--teacher", tmp_path / "box.pt", "--out",
                       tmp_path / "s.pt"),
                   "--teacher applies to --supervision box only")


def test_cli_fine_tunes_and_scores_the_held_out_image(simulated: Path, tmp_path: Path) -> None:
    coco, tuned = simulated.parent / "train.json", tmp_path / "tuned.pt"
    assert [i.name for i in training_images(coco, simulated, "mask", exclude=[3])] == [
        "t000.tif", "t001.tif"]
    result = run("train", "cellboxify", "--coco", coco, "--images", simulated, "--supervision",
                 "mask", "--from", "Fluo-N2DH-SIM+_mask", "--steps", "2", "--out", tuned)
    assert result.exit_code == 0, result.output
    # the last annotated image (frame 2, id 3) was held out and scored by both models
    start = model_path("cellboxify", "Fluo-N2DH-SIM+_mask")
    before, after = (held_out_ap(m, coco, simulated, [3])[1] for m in (start, tuned))
    assert f"held out 1 image(s) (ids 3): mask AP {before:.3f} (Fluo-N2DH-SIM+_mask) -> " \
           f"{after:.3f} (tuned.pt)" in " ".join(result.output.split())
    assert before > 0.3  # the shipped nuclei model finds these simulated nuclei
    one_error_line(run("train", "cellboxify", "--coco", coco, "--images", simulated, "--from",
                       "Fluo-N2DH-SIM+_mask", "--resume", tuned, "--out", tmp_path / "x.pt"),
                   "--from and --resume: give one (--resume continues a run, --from "
                   "fine-tunes a finished model)")


def test_cli_train_segment_track(simulated: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    result = run("train", "cellboxify", "--coco", simulated.parent / "train.json", "--images",
                 simulated, "--supervision", "box", "--head", "polygon", "--guide", "texture",
                 "--steps", "2", "--out", model)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(model)["config"]["head"] == "polygon"
    assert load_checkpoint(model)["params"]["guide"] == "texture"
    masks = tmp_path / "masks"
    result = run("segment", simulated, "--model", model, "--out", masks)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in masks.iterdir()) == [
        ".celltrail", "mask000.tif", "mask001.tif", "mask002.tif"]
    assert tifffile.imread(masks / "mask000.tif").shape == (128, 128)
    result = run("track", simulated, "--method", "cellboxify", "--model", model, "--out",
                 tmp_path / "res")
    assert result.exit_code == 0, result.output
    assert len(open_sequence(tmp_path / "res")) == 3


def test_cli_errors(simulated: Path, tmp_path: Path) -> None:
    names = ", ".join(model_names("cellboxify"))
    one_error_line(run("segment", simulated, "--out", tmp_path / "m"),
                   f"--model: cellboxify needs a model: a checkpoint path or a model by name "
                   f"({names})")
    one_error_line(run("segment", simulated, "--model", tmp_path / "none.pt", "--out",
                       tmp_path / "m"),
                   f"{tmp_path / 'none.pt'}: no such model file, and not the name of any "
                   f"cellboxify model ({names})")
    one_error_line(run("train", "cellboxify", "--coco", tmp_path / "none.json", "--images",
                       simulated, "--out", tmp_path / "m.pt"),
                   f"{tmp_path / 'none.json'}: COCO file not found")
    one_error_line(run("train", "cellboxify", "--coco", simulated.parent / "train.json",
                       "--images", simulated, "--head", "star", "--out", tmp_path / "m.pt"),
                   "--head must be one of mask, polygon, not 'star'")
    one_error_line(run("train", "cellboxify", "--coco", simulated.parent / "train.json",
                       "--images", simulated, "--guide", "colour", "--out", tmp_path / "m.pt"),
                   "--guide must be one of intensity, texture, not 'colour'")


def test_shipped_models() -> None:
    assert model_names("cellboxify") == ["DIC-C2DH-HeLa_box", "DIC-C2DH-HeLa_mask",
                                         "Fluo-N2DH-SIM+_box", "Fluo-N2DH-SIM+_mask"]


def test_shipped_box_only_model_segments_the_sample(sample: Path) -> None:
    """Trained on boxes of simulated GOWT1-like nuclei, it segments the real GOWT1 crop."""
    torch.set_num_threads(2)
    result = CellBoxifyTracker(model="Fluo-N2DH-SIM+_box").track(open_sequence(sample / "01"))
    scores = evaluate_result(result, sample / "01_GT")
    assert scores["SEG"] > SAMPLE_SEG


def test_segment_boxes_gives_the_masks_of_the_detections(sample: Path) -> None:
    """The mask head run on given boxes draws what it draws for the detector's own boxes."""
    torch.set_num_threads(2)
    segmenter = CellBoxifySegmenter("Fluo-N2DH-SIM+_box")
    image = open_sequence(sample / "01")[0]
    found = segmenter.detect(image, min_score=0.5)
    drawn = segmenter.segment_boxes(image, found.boxes.numpy())
    assert len(found.boxes) > 3
    assert torch.equal(drawn.boxes, found.boxes)
    assert torch.equal(drawn.scores, torch.ones(len(found.boxes)))
    # the boxes went to the image's pixels and back: equal up to float rounding
    assert torch.allclose(drawn.masks, found.masks, atol=1e-3)
    assert torch.equal(drawn.masks >= 0.5, found.masks >= 0.5)
    assert segmenter.segment_boxes(image, np.zeros((0, 4))).masks.shape == (0, 28, 28)
    height, width = image.shape
    with pytest.raises(InputError, match=rf"^box 1 \(x0=0 y0=0 x1={width + 5} y1=10\) lies "
                                         rf"outside the {width}x{height} image$"):
        segmenter.segment_boxes(image, [[0, 0, 10, 10], [0, 0, width + 5, 10]])
    with pytest.raises(InputError, match=r"^box 0 \(x0=5 y0=0 x1=5 y1=10\) has no area$"):
        segmenter.segment_boxes(image, [[5, 0, 5, 10]])


def test_segment_classical(sample: Path, tmp_path: Path) -> None:
    result = run("segment", sample / "01", "--method", "classical", "--out", tmp_path / "m")
    assert result.exit_code == 0, result.output
    frames = len(open_sequence(sample / "01"))
    written = sorted((tmp_path / "m").glob("mask*.tif"))
    assert len(written) == frames
    assert tifffile.imread(written[0]).max() > 3  # several nuclei in the first frame
    one_error_line(run("segment", sample / "01", "--method", "classical", "--model", "x.pt",
                       "--out", tmp_path / "n"), "--model: applies to --method cellboxify only")
    one_error_line(run("segment", sample / "01", "--method", "otsu", "--out", tmp_path / "n"),
                   "--method: must be cellboxify or classical, not 'otsu'")
