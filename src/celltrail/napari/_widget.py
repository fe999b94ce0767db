"""napari dock widget: track the cells of an Image layer with celltrail.

Its methods and their options are built from the method registry (one field per option, shown
for the methods it applies to, set to the chosen method's default). BoxTrack follows the cells
given by one rectangle each in a Shapes layer (drawn on the first frame, or loaded from a box
file); CAP can take its queries from a ground-truth folder; a model is a name of the zoo or a
checkpoint file, which takes precedence. Tracking runs in a napari worker thread so the viewer
stays live; the progress bar moves per frame and Cancel stops the run between frames. The
result is added as a Labels and a Tracks layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    Widget,
)
from napari.layers import Image, Layer, Shapes
from napari.qt.threading import FunctionWorker, thread_worker
from napari.viewer import Viewer
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QFileDialog

from celltrail.core.errors import CellTrailError, InputError, OptionError
from celltrail.core.sequence import ArraySequence, ImageSequence
from celltrail.io.boxes import BOX_COLUMNS, read_boxes
from celltrail.methods.base import Tracker, make_options
from celltrail.methods.options import Field
from celltrail.methods.registry import DEFAULT_METHOD, METHODS, Method, fields_by_name, get_method
from celltrail.napari._reader import PARENTS_KEY, LayerData, tracking_layers

T = TypeVar("T")


def boxes_to_rectangles(boxes: pd.DataFrame, ndim: int = 3) -> list[np.ndarray]:
    """napari rectangles (four corners; ``(frame, y, x)`` with ``ndim=3``, else ``(y, x)``)
    whose edges run along the outer pixel edges of each box of a prompt table."""
    rectangles = []
    for row in boxes.itertuples():
        top, left = row.y - 0.5, row.x - 0.5  # napari centres pixel (0, 0) on (0, 0)
        bottom, right = top + row.h, left + row.w
        corners = np.array([[top, left], [top, right], [bottom, right], [bottom, left]])
        if ndim == 3:
            corners = np.column_stack([np.full(4, float(row.frame)), corners])
        rectangles.append(corners)
    return rectangles


def shapes_to_boxes(shapes: Shapes, image_shape: tuple[int, int]) -> pd.DataFrame:
    """The prompt table (``frame, id, x, y, w, h``) of a Shapes layer.

    Each shape gives its bounding box clipped to the image, on the frame it was drawn in (frame
    0 for 2D shapes). Ids come from an ``id`` feature (set when a box file is loaded); shapes
    without a usable one (drawn by hand, or repeating an id) get the next free ids in order.
    """
    if shapes.ndim not in (2, 3):
        raise InputError(None, f"shapes layer {shapes.name!r} has {shapes.ndim} dimensions; "
                               "expected (frame, y, x) or (y, x)")
    given = shapes.features["id"] if "id" in shapes.features else pd.Series(dtype=float)
    given = pd.to_numeric(given, errors="coerce").reindex(range(len(shapes.data)))
    free = int(given.max()) + 1 if given.notna().any() and given.max() > 0 else 1
    rows, used = [], set()
    height, width = image_shape
    for i, vertices in enumerate(shapes.data):
        frame = round(float(vertices[:, 0].mean())) if shapes.ndim == 3 else 0
        low, high = vertices[:, -2:].min(axis=0) + 0.5, vertices[:, -2:].max(axis=0) + 0.5
        top, left = max(low[0], 0.0), max(low[1], 0.0)
        bottom, right = min(high[0], height), min(high[1], width)
        if bottom <= top or right <= left:
            raise InputError(None, f"shape {i + 1} of {shapes.name!r} lies outside the "
                                   f"{width}x{height} image")
        label = given.iloc[i]
        if pd.isna(label) or label <= 0 or label != round(label) or int(label) in used:
            label, free = free, free + 1
        used.add(int(label))
        rows.append([frame, int(label), left, top, right - left, bottom - top])
    types = {"frame": np.int64, "id": np.int64, "x": np.float64, "y": np.float64,
             "w": np.float64, "h": np.float64}
    return pd.DataFrame(rows, columns=BOX_COLUMNS).astype(types)


def image_sequence(layer: Image) -> ImageSequence:
    """The frames of an Image layer (T, Y, X) or (Y, X), read on demand (dask data stays lazy)."""
    if layer.multiscale or layer.rgb:
        raise InputError(None, f"image layer {layer.name!r} is multiscale or RGB; celltrail "
                               "tracks single-channel (T, Y, X) images")
    data = layer.data[None] if layer.data.ndim == 2 else layer.data
    return ArraySequence(data, name=layer.name)


@dataclass
class TrackJob:
    """What one run tracks, gathered in the main thread; the tracker is built in the worker,
    as loading a model takes a moment."""

    method: str
    options: dict[str, object]
    images: ImageSequence
    prompts: object
    name: str

    def tracker(self) -> Tracker:
        """The tracker this job asks for."""
        return get_method(self.method).load(**self.options)


def option_widget(name: str, entries: list[tuple[Method, Field]]) -> Widget:
    """The widget of one option: a choice, a check box, an on/off/default choice (an option
    that may be unset) or a text field (numbers and models; empty is unset)."""
    first = entries[0][1]
    tooltip = " ".join(f"{m.name}: {f.help}" for m, f in entries)
    label = name.replace("_", " ")
    if first.choices:
        choices = list(dict.fromkeys(c for _, f in entries for c in f.choices or ()))
        return ComboBox(name=name, label=label, choices=choices, tooltip=tooltip)
    if first.type is bool and not any(f.optional for _, f in entries):
        return CheckBox(name=name, label=label, tooltip=tooltip)
    if first.type is bool:
        return ComboBox(name=name, label=label, tooltip=tooltip,
                        choices=[("method's default", None), ("on", True), ("off", False)])
    return LineEdit(name=name, label=label, tooltip=tooltip)


def widget_value(widget: Widget, f: Field) -> object:
    """The option value a widget holds (a text field's text in the option's type)."""
    if not isinstance(widget, LineEdit):
        return widget.value
    text = widget.value.strip()
    if not text:
        return None if f.optional or f.required else f.default
    try:
        return f.type(text)
    except ValueError:
        raise OptionError(f.name, f"must be a number, not {text!r}") from None


class Cancelled(Exception):
    """Raised between frames to stop a run the user cancelled."""


@thread_worker(start_thread=False, ignore_errors=True)
def track_in_thread(job: TrackJob, on_frame: Callable[[int], None]) -> list[LayerData] | None:
    """Track ``job`` in a napari worker thread; returns the Labels and Tracks layer data, or
    None when cancelled (``on_frame`` raises :class:`Cancelled`)."""
    try:
        result = job.tracker().track(job.images, job.prompts, on_frame=on_frame)
    except Cancelled:
        return None
    return tracking_layers(result.masks, result.lineage, f"{job.name} {job.method}")


class _FrameSignal(QObject):
    """Carries "frame t is done" from the worker thread to the widget in the main thread."""

    done = Signal(int)


class TrackWidget(Container):
    """Choose a method, its options, an image and the method's prompts; Run tracks in the
    background."""

    def __init__(self, napari_viewer: Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: FunctionWorker | None = None
        self._warnings: list[str] = []
        self.method = ComboBox(label="method", choices=list(METHODS), value=DEFAULT_METHOD)
        self.fields = fields_by_name()
        self.option_widgets = {name: option_widget(name, entries)
                        for name, entries in self.fields.items()}
        self.checkpoint = FileEdit(label="or checkpoint", filter="*.pt", nullable=True,
                                   tooltip="A trained model (.pt); when given it is used "
                                           "instead of the model named above")
        self.image = ComboBox(label="image", choices=self._layers(Image))
        self.boxes = ComboBox(label="boxes", choices=self._layers(Shapes))
        self.load_button = PushButton(text="Load box file…")
        self.queries = FileEdit(label="queries from GT", mode="d", nullable=True,
                                tooltip="A CTC ground-truth folder (NN_GT) whose first frame's "
                                        "cells are tracked")
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self.status = Label(value="")
        self.extend([self.method, *self.option_widgets.values(), self.checkpoint, self.image,
                     self.boxes, self.load_button, self.queries, self.run_button,
                     self.cancel_button, self.progress, self.status])
        self._frames = _FrameSignal(self.native)
        self._frames.done.connect(self._frame_done)
        self.method.changed.connect(self._show_options)
        self.load_button.clicked.connect(self._choose_box_file)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self._show_options()

    def _layers(self, kind: type[Layer]) -> Callable[[ComboBox], list[tuple[str, Layer]]]:
        """Choices of the layers of one kind (napari resets them as layers change)."""
        return lambda _: [(layer.name, layer) for layer in self.viewer.layers
                          if isinstance(layer, kind)]

    def _show_options(self) -> None:
        """Show the chosen method's options, set to its defaults, and its prompts only."""
        method = get_method(self.method.value)
        own = {f.name: f for f in method.options.fields()}
        for name, widget in self.option_widgets.items():
            widget.visible = name in own
            if name not in own:
                continue
            if (isinstance(widget, ComboBox) and name == "model") or isinstance(widget, LineEdit):
                widget.value = "" if own[name].default is None else str(own[name].default)
            else:
                widget.value = own[name].default
        self.checkpoint.visible = "model" in own
        for widget in (self.boxes, self.load_button):
            widget.visible = method.prompts == "boxes"
        self.queries.visible = method.prompts == "queries"

    def _choose_box_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.native, "Box prompts", "", "Box files (*.csv *.txt *.json);;All files (*)")
        if path:
            self._report(self.load_boxes, path)

    def load_boxes(self, path: str | Path) -> Shapes:
        """Add the boxes of a box file (see :func:`celltrail.io.boxes.read_boxes`) as a Shapes
        layer, keeping the file's cell ids, and choose it as the prompts."""
        image = self.image.value
        boxes = read_boxes(path, image_shape=None if image is None else image.data.shape[-2:])
        layer = self.viewer.add_shapes(
            boxes_to_rectangles(boxes), shape_type="rectangle", name=Path(path).stem,
            features={"id": boxes["id"].to_numpy()}, edge_color="yellow", edge_width=2,
            face_color="transparent")
        self.boxes.reset_choices()
        self.boxes.value = layer
        return layer

    def job(self) -> TrackJob:
        """The run the widget's choices describe; raises a celltrail error if incomplete."""
        image = self.image.value
        if image is None:
            raise InputError(None, "open an image sequence first (an Image layer)")
        images = image_sequence(image)
        method = get_method(self.method.value)
        options = {f.name: widget_value(self.option_widgets[f.name], f)
                   for f in method.options.fields()}
        if "model" in options and self.checkpoint.value is not None:
            options["model"] = str(self.checkpoint.value)
        make_options(method.options, None, options)  # a bad value is reported before the run
        prompts: object = None
        if method.prompts == "boxes":
            if self.boxes.value is None or not len(self.boxes.value.data):
                raise InputError(None, f"{method.name} needs one rectangle per cell: draw them "
                                       "in a Shapes layer on the first frame, or load a box "
                                       "file")
            prompts = shapes_to_boxes(self.boxes.value, images.shape)
        elif method.prompts == "queries" and self.queries.value is not None:
            prompts = Path(self.queries.value)
        return TrackJob(method.name, options, images, prompts, image.name)

    def run(self) -> None:
        """Start tracking in a worker thread (the Run button)."""
        job = self._report(self.job)
        if job is None:
            return
        self._warnings = []
        self.progress.max, self.progress.value = len(job.images), 0

        def on_frame(t: int) -> None:
            if worker.abort_requested:
                raise Cancelled
            self._frames.done.emit(t)

        worker = track_in_thread(job, on_frame)
        worker.returned.connect(self._add_layers)
        worker.errored.connect(lambda exc: self._say(_message(exc)))
        worker.warned.connect(lambda w: self._warnings.append(str(w[0])))
        worker.finished.connect(self._finished)
        self.worker = worker
        self._running(True)
        self._say(f"tracking {len(job.images)} frames of {job.name!r} with {job.method}…")
        worker.start()

    def cancel(self) -> None:
        """Ask the running worker to stop after the current frame (the Cancel button)."""
        if self.worker is not None:
            self.worker.quit()
            self._say("cancelling…")

    def _frame_done(self, t: int) -> None:
        self.progress.value = t + 1

    def _add_layers(self, layers: list[LayerData]) -> None:
        for data, kwargs, kind in layers:
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        daughters = len(layers[0][1]["metadata"][PARENTS_KEY])
        tracks = len(np.unique(layers[1][0][:, 0])) if len(layers) > 1 else 0
        self._say(f"done: {tracks} tracks, {daughters} with a parent"
                  + "".join(f"\nwarning: {w}" for w in self._warnings))

    def _finished(self) -> None:
        if self.worker is not None and self.worker.abort_requested:
            self._say("cancelled")
        self._running(False)

    def _running(self, running: bool) -> None:
        for widget in (self.run_button, self.load_button, self.method, self.checkpoint,
                       *self.option_widgets.values(), self.queries, self.image, self.boxes):
            widget.enabled = not running
        self.cancel_button.enabled = running

    def _report(self, func: Callable[..., T], *args: object) -> T | None:
        """``func(*args)``, showing a celltrail error in the status line instead of raising."""
        try:
            return func(*args)
        except CellTrailError as exc:
            self._say(str(exc))
            return None

    def _say(self, text: str) -> None:
        self.status.value = text


def _message(exc: BaseException) -> str:
    """One line for the status: celltrail's own message, or the exception type and message."""
    return str(exc) if isinstance(exc, CellTrailError) else f"{type(exc).__name__}: {exc}"
