"""The method registry and what is derived from it: every method passes the same contract; a
sixth method registered here appears in the CLI, batch manifests and the napari widget without
editing them; defaults live in the options classes only; the top-level API writes what
`celltrail track` writes; the model zoo finds a user's models first."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage as ndi
from typer.testing import CliRunner

import celltrail
from celltrail.batch import read_manifest
from celltrail.cli import build_app
from celltrail.cli.track import track_command
from celltrail.core.errors import OptionError
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ArraySequence, ImageSequence, open_sequence
from celltrail.io.ctc import read_result
from celltrail.linking import link
from celltrail.methods import METHODS, Method, Options, Tracker, register
from celltrail.methods.options import option
from celltrail.models.zoo import ENV, available_models, model_path

#: What each shipped method needs beyond its defaults to run on the bundled sample.
NEEDS = {"embedtrack": {"model": "Fluo-N2DH-GOWT1"},
         "cellboxify": {"model": "Fluo-N2DH-SIM+_box"},
         "boxtrack": {"backend": "learned", "adapt": False}}
#: Frames of the bundled sample the contract runs on.
FRAMES = 4


@dataclass(frozen=True)
class ThresholdOptions(Options):
    """A trivial sixth method's options."""

    method = "threshold"

    level: float = option(0.5, "Share of the frame's intensity range above which a pixel is "
                               "a cell.", positive=True)


class ThresholdTracker(Tracker):
    """Connected regions above a threshold, linked by celltrail's linker (a test method)."""

    name = "threshold"
    Options = ThresholdOptions

    def run(self, images: ImageSequence, prompts: None, store: MaskStore,
            on_frame: Callable[[int], None]) -> TrackingResult:
        def frames() -> Iterator[np.ndarray]:
            for t, image in enumerate(images):
                image = np.asarray(image, dtype=np.float32)
                cut = image.min() + self.options.level * (image.max() - image.min())
                labels, _ = ndi.label(image > cut)
                on_frame(t)
                yield labels

        return link(frames(), store=store)


@pytest.fixture
def sixth() -> Iterator[Method]:
    """The threshold method, registered for one test."""
    method = register(Method("threshold", ThresholdOptions,
                             "tests.test_registry:ThresholdTracker", "a test method"))
    yield method
    del METHODS["threshold"]


def short(sample: Path) -> ArraySequence:
    images = open_sequence(sample / "01")
    return ArraySequence(np.stack([images[t] for t in range(FRAMES)]), name="01")


def check_contract(method: Method, sample: Path, folder: Path) -> None:
    """Streams to a disk store, calls progress once per frame in order, returns a valid result
    that carries its settings, and its tracker's name is its registry key."""
    tracker = method.load(**NEEDS.get(method.name, {}))
    assert tracker.name == method.name and isinstance(tracker.options, method.options)
    prompts = sample / "01_GT" if method.needs_prompts else None
    done: list[int] = []
    store = MaskStore(folder, digits=3)
    result = tracker.track(short(sample), prompts, store, done.append)
    assert done == list(range(FRAMES))
    assert sorted(p.name for p in folder.glob("mask*.tif")) == [
        f"mask{t:03d}.tif" for t in range(FRAMES)]
    assert result.errors() == [] and len(result.lineage) > 0
    assert result.settings["method"] == method.name


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_keeps_the_contract(name: str, sample: Path, tmp_path: Path) -> None:
    check_contract(METHODS[name], sample, tmp_path / "masks")


def test_a_sixth_method_appears_everywhere(sixth: Method, sample: Path, tmp_path: Path) -> None:
    """Registered in one line: the contract holds, the CLI offers it with its option, a batch
    manifest accepts its column and refuses it for another method."""
    check_contract(sixth, sample, tmp_path / "masks")
    app, runner = build_app(), CliRunner()
    help_text = runner.invoke(app, ["track", "--help"], env={"COLUMNS": "200"}).output
    assert "threshold" in help_text and "--level" in help_text
    run = runner.invoke(app, ["track", str(sample / "01"), "--out", str(tmp_path / "res"),
                              "--method", "threshold", "--level", "0.4"])
    assert run.exit_code == 0, run.output
    assert read_result(tmp_path / "res").errors() == []
    refused = runner.invoke(app, ["track", str(sample / "01"), "--out", str(tmp_path / "x"),
                                  "--method", "classical", "--level", "0.4"])
    assert refused.exit_code == 1
    assert "error: --level: applies to method threshold only, not classical" in refused.output
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"input,out,method,level\n{sample / '01'},a,threshold,0.3\n")
    assert read_manifest(manifest)[0].options == {"level": 0.3}
    manifest.write_text(f"input,out,method,level\n{sample / '01'},a,classical,0.3\n")
    with pytest.raises(celltrail.InputError, match="line 2: level: applies to method "
                                                    "threshold only, not classical"):
        read_manifest(manifest)


def test_cli_defaults_are_the_options_classes(sixth: Method) -> None:
    """Every option flag defaults to unset, so the options class supplies the default, and its
    help states each method's default as the options class defines it."""
    params = inspect.signature(track_command()).parameters
    for method in METHODS.values():
        for f in method.options.fields():
            assert params[f.name].default is None, f.name
            help_text = params[f.name].annotation.__metadata__[0].help
            shown = (f"--{'' if f.default else 'no-'}{f.name.replace('_', '-')}"
                     if isinstance(f.default, bool) else
                     "unset" if f.default is None and not f.required else
                     "required" if f.required else str(f.default))
            assert method.name in help_text and shown in help_text, (method.name, f.name)


def test_training_defaults_are_the_libraries() -> None:
    """`celltrail train` leaves the step count to each loop's TrainParams and says so."""
    from celltrail.training import cap, cellboxify, embedtrack, prompt_segmenter

    app = CliRunner()
    for command, params in (("prompt-segmenter", prompt_segmenter.TrainParams),
                            ("cap", cap.TrainParams), ("cellboxify", cellboxify.TrainParams)):
        text = app.invoke(build_app(), ["train", command, "--help"],
                          env={"COLUMNS": "300"}).output
        assert f"TrainParams.steps, {params.steps}" in text, command
    assert embedtrack.TrainParams.steps > 0
    text = app.invoke(build_app(), ["train", "prompt-segmenter", "--help"],
                      env={"COLUMNS": "300"}).output
    assert f"FINE_TUNE_STEPS, {prompt_segmenter.FINE_TUNE_STEPS}" in text


def test_options_name_their_field() -> None:
    with pytest.raises(OptionError) as err:
        celltrail.load_tracker("classical", diameter=-3)
    assert (err.value.name, err.value.problem) == ("diameter",
                                                   "must be a positive finite number, not -3")
    with pytest.raises(OptionError, match="not an option of method classical; its options are "
                                          "diameter, linker, preset"):
        celltrail.load_tracker("classical", tta=True)
    with pytest.raises(OptionError,
                       match="must be one of auto, fluo-nuclei, brightfield, dic, phase"):
        celltrail.load_tracker("cap", preset="darkfield")
    with pytest.raises(OptionError, match="cellboxify needs a model"):
        celltrail.load_tracker("cellboxify")
    with pytest.raises(OptionError, match="unknown method 'nope'; choose one of classical"):
        celltrail.track(np.zeros((2, 8, 8)), method="nope")


def test_python_api_writes_what_the_cli_writes(sample: Path, tmp_path: Path) -> None:
    """The README's two lines write the same files, with the same content, as `celltrail
    track`; a loaded tracker runs again on another sequence with its own prompts."""
    celltrail.track(sample / "01", method="classical", preset="fluo-nuclei").save(
        tmp_path / "api")
    run = CliRunner().invoke(build_app(), ["track", str(sample / "01"), "--out",
                                           str(tmp_path / "cli"), "--preset", "fluo-nuclei"])
    assert run.exit_code == 0, run.output
    names = sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert sorted(p.name for p in (tmp_path / "api").iterdir()) == names
    for name in names:
        if name.endswith(".tif"):
            np.testing.assert_array_equal(tifffile.imread(tmp_path / "api" / name),
                                          tifffile.imread(tmp_path / "cli" / name))
        elif name == "tracks.parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "api" / name),
                                          pd.read_parquet(tmp_path / "cli" / name))
        else:
            assert (tmp_path / "api" / name).read_bytes() == (tmp_path / "cli" / name
                                                               ).read_bytes(), name
    tracker = celltrail.load_tracker("boxtrack", backend="classical", preset="fluo-nuclei")
    first = tracker.track(short(sample), sample / "01_GT")
    again = tracker.track(short(sample), sample / "01_GT")
    assert len(first.lineage) == len(again.lineage) >= 10
    assert first.outputs == ("mot",)


def test_detection_graph(sample: Path) -> None:
    """One node per cell per frame; edges along tracks and from a mother to her daughters."""
    masks = [np.zeros((20, 20), np.uint16) for _ in range(3)]
    masks[0][2:6, 2:6] = 1
    masks[1][2:6, 2:6] = 1
    masks[2][2:5, 2:5], masks[2][10:14, 10:14] = 2, 3
    result = TrackingResult.from_masks(masks, {2: 1, 3: 1})
    graph = result.detection_graph()
    assert sorted(graph.nodes) == [(0, 1), (1, 1), (2, 2), (2, 3)]
    assert sorted(graph.edges) == [((0, 1), (1, 1)), ((1, 1), (2, 2)), ((1, 1), (2, 3))]
    assert graph.nodes[(2, 3)] == {"t": 2, "label": 3, "y": 11.5, "x": 11.5, "area": 16}


def test_user_models_come_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model in $CELLTRAIL_MODELS is found by name and hides a shipped one of that name;
    the user cache comes next; `celltrail models` lists where each was found."""
    shipped = model_path("cap", "DIC-C2DH-HeLa+Fluo-N2DH-SIM+")
    (tmp_path / "mine" / "cap").mkdir(parents=True)
    (tmp_path / "mine" / "cap" / "DIC-C2DH-HeLa+Fluo-N2DH-SIM+.pt").write_bytes(
        shipped.read_bytes())
    (tmp_path / "cache" / "celltrail" / "models" / "cap").mkdir(parents=True)
    (tmp_path / "cache" / "celltrail" / "models" / "cap" / "lab.pt").write_bytes(
        shipped.read_bytes())
    monkeypatch.setenv(ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    found = {m.name: m.origin for m in available_models("cap")}
    assert found == {"DIC-C2DH-HeLa+Fluo-N2DH-SIM+": ENV, "lab": "cache",
                     "DIC-C2DH-HeLa+Fluo-N2DH-GOWT1": "package",
                     "Fluo-N2DH-GOWT1+Fluo-N2DH-SIM+": "package"}
    assert model_path("cap", "lab").parent == tmp_path / "cache" / "celltrail" / "models" / "cap"
    assert celltrail.load_tracker("cap", model="lab").window > 0
    listing = CliRunner().invoke(build_app(), ["models", "--kind", "cap"],
                                 env={"COLUMNS": "300"})
    assert listing.exit_code == 0
    assert "lab" in listing.output and ENV in listing.output
    assert "Fluo-N2DH-GOWT1/01" in listing.output  # what the shipped GOWT1 model saw


def test_options_are_frozen_and_validated_on_replace() -> None:
    options = celltrail.METHODS["classical"].options(diameter=30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.diameter = 10  # type: ignore[misc]
    with pytest.raises(OptionError, match="must be one of celltrail, laptrack"):
        dataclasses.replace(options, linker="mine")
