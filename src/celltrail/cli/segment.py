"""``celltrail segment`` and ``celltrail link``: masks without tracking, and tracks from masks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from celltrail.cli.common import (
    INPUTS,
    AllowGaps,
    Channel,
    Interval,
    Overwrite,
    PixelSize,
    Position,
    console,
    open_input,
    positive,
    progress_bar,
    run_tracker,
)
from celltrail.cli.errors import reports_errors
from celltrail.core.errors import OptionError
from celltrail.core.result import MaskStore
from celltrail.io.atomic import atomic_dir
from celltrail.io.ctc import frame_digits
from celltrail.io.outputs import check_output, model_input
from celltrail.methods.shared_options import DEFAULT_DEVICE, DEFAULT_LINKER, DEVICE_HELP
from celltrail.segmentation import DEFAULT_PRESET


@reports_errors
def segment(
    input: Annotated[Path, typer.Argument(help=INPUTS)],
    out: Annotated[Path, typer.Option(help="Folder of label images, maskTTT.tif.")],
    method: Annotated[str, typer.Option(help="cellboxify or classical.")] = "cellboxify",
    model: Annotated[str | None, typer.Option(help="cellboxify: a shipped model's name or a "
                                                   "checkpoint path.")] = None,
    preset: Annotated[str, typer.Option(help="classical: modality, auto (chosen from the first "
                                             "frame), fluo-nuclei, brightfield, dic, phase.")]
    = DEFAULT_PRESET,
    diameter: Annotated[float | None, typer.Option(help="classical: cell diameter in pixels "
                                                         "(estimated if not given).")] = None,
    device: Annotated[str, typer.Option(help=f"cellboxify: {DEVICE_HELP}")] = DEFAULT_DEVICE,
    allow_gaps: AllowGaps = False,
    channel: Channel = None,
    position: Position = None,
    pixel_size: PixelSize = None,
    interval: Interval = None,
    overwrite: Overwrite = False,
) -> None:
    """Segment every frame of INPUT into label images, without tracking (`celltrail link`
    tracks them later)."""
    from celltrail.methods.cellboxify import CellBoxifyOptions, CellBoxifySegmenter
    from celltrail.methods.classical import ClassicalOptions
    from celltrail.methods.classical.tracker import sequence_segmenter

    if method not in ("cellboxify", "classical"):
        raise OptionError("method", f"must be cellboxify or classical, not {method!r}")
    for name, given in (("model", model is not None), ("device", device != DEFAULT_DEVICE)):
        if method == "classical" and given:
            raise OptionError(name, "applies to --method cellboxify only")
    if method == "classical":
        options = ClassicalOptions(preset=preset, diameter=diameter)
    else:
        options = CellBoxifyOptions(model=model, device=device)
    images = open_input(input, allow_gaps, channel, position, pixel_size, interval)
    check_output(out, (input, model_input(model)), folder=True, overwrite=overwrite)
    if isinstance(options, CellBoxifyOptions):
        segmenter: Callable[[np.ndarray], np.ndarray] = CellBoxifySegmenter(
            options.model, options.min_score, options.device)
    else:
        segmenter = sequence_segmenter(options.preset, options.diameter)
    with atomic_dir(out, overwrite) as tmp, \
            progress_bar(len(images), "segmenting") as on_frame:
        store = MaskStore(tmp, frame_digits(len(images)), images.pixel_size, images.interval)
        for t, image in enumerate(images):
            store.append(segmenter(np.asarray(image)))
            on_frame(t)
    console.print(f"wrote {len(images)} label images to {out}")


@reports_errors
def link(
    masks: Annotated[Path, typer.Argument(help="Label images: a folder of TIFF or PNG files "
                                               "(e.g. Cellpose's *_cp_masks.png), a TIFF stack, "
                                               "an OME-TIFF or an OME-Zarr.")],
    out: Annotated[Path, typer.Option(help="Result folder (maskTTT.tif, res_track.txt, tables).")],
    diameter: Annotated[float | None, typer.Option(help="Cell diameter in pixels (estimated "
                                                         "from the masks if not given).")] = None,
    allow_gaps: AllowGaps = False,
    channel: Channel = None,
    position: Position = None,
    pixel_size: PixelSize = None,
    interval: Interval = None,
    overwrite: Overwrite = False,
    linker: Annotated[str, typer.Option(help="celltrail (ours, online) or laptrack.")]
    = DEFAULT_LINKER,
) -> None:
    """Track a segmentation you already have (e.g. from Cellpose): link its labels over time."""
    from celltrail.linking import get_linker

    link_frames = get_linker(linker)
    positive("diameter", diameter)
    labels = open_input(masks, allow_gaps, channel, position, pixel_size, interval, labels=True)
    check_output(out, (masks,), folder=True, overwrite=overwrite)

    def frames(on_frame: Callable[[int], None]) -> Iterator[np.ndarray]:
        for t, frame in enumerate(labels):
            on_frame(t)
            yield frame

    run_tracker(labels, out, lambda store, on_frame: link_frames(
        frames(on_frame), store=store, cell_diameter=diameter), overwrite=overwrite)
