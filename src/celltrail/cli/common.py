"""What the commands share: option types, progress bars, tables, and writing a tracking run
into a result folder."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from celltrail.cli.errors import raise_if_stopped
from celltrail.core.errors import OptionError
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence, open_labels, open_sequence
from celltrail.io.atomic import atomic_dir
from celltrail.io.ctc import frame_digits, read_result
from celltrail.io.results import write_tables
from celltrail.metrics.ctc import AOGM_PARTS, HEADLINE

#: Messages and progress go to stderr; tables a user may pipe go to stdout.
console = Console(stderr=True)

Overwrite = Annotated[bool, typer.Option(help="Replace an existing output even if celltrail "
                                              "did not write it (never an input).")]
AllowGaps = Annotated[bool, typer.Option(help="Accept numbered frame files with numbers "
                                              "missing (t000, t002, ...), tracked as "
                                              "consecutive frames.")]
Channel = Annotated[str | None, typer.Option(help="The channel to read, by index (0, 1, ...) "
                                                  "or name, of a multichannel input (OME-TIFF, "
                                                  "OME-Zarr, CZI, ND2, LIF).")]
Position = Annotated[str | None, typer.Option(help="The position (scene, series) to read, by "
                                                   "index or name, of a file holding several.")]
PixelSize = Annotated[float | None, typer.Option(help="Pixel size in µm (instead of the "
                                                      "metadata's): tracks tables get µm.")]
Interval = Annotated[float | None, typer.Option(help="Minutes between frames (instead of the "
                                                     "metadata's): tracks tables get minutes "
                                                     "and speeds.")]
#: What INPUT may be, for the commands' help.
INPUTS = ("Images: a folder of TIFF, PNG or JPEG frames (CTC: tTTT.tif), a TIFF stack, an "
          "OME-TIFF, an OME-Zarr, or CZI, ND2, LIF (with the formats extra).")
#: A run: ``run(store, on_frame)`` fills the store and returns the result.
Run = Callable[[MaskStore, Callable[[int], None]], TrackingResult]


def positive(name: str, value: float | None) -> None:
    """Refuse an option value that is not a positive finite number."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise OptionError(name, f"must be a positive finite number, not {value:g}")


def open_input(path: Path, allow_gaps: bool, channel: str | None, position: str | None,
               pixel_size: float | None, interval: float | None,
               labels: bool = False) -> ImageSequence:
    """The images (or, with ``labels``, label images) at ``path`` with the input options."""
    positive("pixel_size", pixel_size)
    positive("interval", interval)
    opener = open_labels if labels else open_sequence
    return opener(path, allow_gaps, channel=channel, position=position,  # type: ignore[operator]
                  pixel_size=pixel_size, interval=interval)


@contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over frames; yields a callback taking the frame just finished."""
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(what, total=total)

        def done(t: int) -> None:
            raise_if_stopped()
            progress.update(task, completed=t + 1)

        yield done


def run_tracker(images: ImageSequence, out: Path, run: Run,
                overwrite: bool = False) -> TrackingResult:
    """Call ``run(store, on_frame)`` writing into ``out`` atomically, with a progress bar, then
    the tables and extra outputs beside the masks (as ``TrackingResult.save``)."""
    with atomic_dir(out, overwrite) as tmp, progress_bar(len(images), "tracking") as on_frame:
        store = MaskStore(tmp, frame_digits(len(images)), images.pixel_size, images.interval)
        result = run(store, on_frame)
        result.pixel_size, result.interval = images.pixel_size, images.interval
        write_tables(result, tmp)
        raise_if_stopped()  # nothing is written when a stop came, even one that went astray
    console.print(f"wrote {len(images)} frames to {out}")
    return result


def write_result_movie(images: ImageSequence, res: Path, movie: Path) -> None:
    """Write the overlay movie of the result folder ``res`` on ``images``, with a progress bar."""
    from celltrail.viz import write_movie

    result = read_result(res)
    with progress_bar(len(images), "movie") as on_frame:
        write_movie(images, result.masks, movie, progress=lambda done, _: on_frame(done - 1),
                    lineage=result.lineage)
    console.print(f"wrote {movie}")


def metrics_table(scores: dict[str, object], title: str) -> Table:
    """A rich table of the headline metrics and the AOGM parts behind TRA."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (*HEADLINE, *AOGM_PARTS):
        value = scores.get(key)
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
        else:
            table.add_row(key, "n/a" if value is None else str(value))
    return table


def batch_table(summary: pd.DataFrame) -> Table:
    """A rich table of a batch summary, one row per sequence; failures in red."""
    table = Table(title="batch summary")
    for column in summary.columns:
        table.add_column(column, justify="right" if column in ("frames", "tracks", "seconds")
                         else "left", overflow="fold")
    for row in summary.itertuples(index=False):
        cells = ["" if pd.isna(v) else f"{v:.1f}" if isinstance(v, float) else str(v)
                 for v in row]
        table.add_row(*cells, style="red" if row.status == "failed" else None)
    return table
