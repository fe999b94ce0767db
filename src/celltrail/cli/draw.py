"""Pictures of a result: ``view`` (movie, lineage tree) and ``report`` (one HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from celltrail.cli.common import (
    Overwrite,
    console,
    progress_bar,
)
from celltrail.cli.errors import reports_errors
from celltrail.core.errors import InputError
from celltrail.core.sequence import open_sequence
from celltrail.io.outputs import check_output
from celltrail.viz.movie import MOVIE_FORMATS, MOVIE_SUFFIXES


@reports_errors
def view(
    result: Annotated[Path, typer.Argument(help="CTC result folder (maskTTT.tif + "
                                                "res_track.txt).")],
    images: Annotated[Path, typer.Option(help="The images the result was tracked on (a CTC "
                                              "image folder or a TIFF stack).")],
    movie: Annotated[Path | None, typer.Option(help=f"Movie to write, {MOVIE_FORMATS}: "
                                                    "contours, ids, trails, daughters in shades "
                                                    "of their mother's colour, frame numbers "
                                                    "(and times, where the images' metadata "
                                                    "give the interval).")] = None,
    lineage: Annotated[Path | None, typer.Option(help="Lineage tree to write (.png or .svg), "
                                                      "in the movie's colours.")] = None,
    fps: Annotated[int, typer.Option(min=1, help="Movie frames per second.")] = 5,
    overwrite: Overwrite = False,
) -> None:
    """Draw a result: a movie of its cells over the images and/or its lineage tree."""
    from celltrail.viz.lineage import PLOT_SUFFIXES
    from celltrail.viz.report import view as draw

    if movie is None and lineage is None:
        raise InputError(None, "nothing to draw: give --movie FILE, --lineage FILE or both")
    if lineage is not None:
        check_output(lineage, (result, images, movie), suffixes=PLOT_SUFFIXES,
                     overwrite=overwrite)
    if movie is None:
        written = draw(result, images, lineage_path=lineage)
    else:
        check_output(movie, (result, images, lineage), suffixes=MOVIE_SUFFIXES,
                     overwrite=overwrite)
        with progress_bar(len(open_sequence(images)), "movie") as on_frame:
            written = draw(result, images, movie, lineage, fps,
                           progress=lambda done, _: on_frame(done - 1))
    for path in written:
        console.print(f"wrote {path}")


@reports_errors
def report(
    result: Annotated[Path, typer.Argument(help="CTC result folder (maskTTT.tif + "
                                                "res_track.txt).")],
    images: Annotated[Path, typer.Option(help="The images the result was tracked on.")],
    out: Annotated[Path, typer.Option(help="HTML page to write (one self-contained file).")],
    gt: Annotated[Path | None, typer.Option(help="CTC ground truth (NN_GT): adds the CTC and "
                                                 "MOT metrics.")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Write one HTML page about a result: metrics (with --gt) or counts, lineage tree, frames."""
    from celltrail.viz.report import write_report

    check_output(out, (result, images, gt), suffixes=(".html", ".htm"), overwrite=overwrite)
    if gt is not None:
        console.print("evaluating with py-ctcmetrics")
    with progress_bar(len(open_sequence(images)), "report") as on_frame:
        write_report(result, images, out, gt_dir=gt, progress=lambda done, _: on_frame(done - 1))
    console.print(f"wrote {out}")
