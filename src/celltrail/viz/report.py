"""The pictures of a CTC result folder: its movie and lineage tree (``celltrail view``) and a
self-contained HTML report (``celltrail report``) that can be mailed or archived as one file."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from celltrail import __version__
from celltrail.core.errors import InputError
from celltrail.core.lineage import Lineage
from celltrail.core.result import TrackingResult
from celltrail.core.sequence import ImageSequence, open_sequence
from celltrail.io.atomic import atomic_file
from celltrail.io.ctc import check_valid, read_result
from celltrail.metrics.ctc import AOGM_PARTS, HEADLINE, evaluate
from celltrail.viz.lineage import check_plot_path, lineage_figure, plot_lineage, save_figure
from celltrail.viz.movie import check_movie_path, write_movie
from celltrail.viz.overlay import TRAIL, overlay_frames

Progress = Callable[[int, int], None]
#: Frames shown in a report.
THUMBNAILS = 6

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 1em; text-align: left; }
td.value { text-align: right; font-variant-numeric: tabular-nums; }
svg { max-width: 100%; height: auto; }
.frames { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1em; }
figure { margin: 0; }
figure img { width: 100%; }
figcaption, footer { color: #666; font-size: 0.9em; }
"""


def open_result(
    result_dir: str | Path, images: str | Path | ImageSequence
) -> tuple[TrackingResult, ImageSequence]:
    """Read a result folder and open its images, checking they have the same frames."""
    result = check_valid(read_result(result_dir), result_dir, "result")
    sequence = images if isinstance(images, ImageSequence) else open_sequence(images)
    if len(sequence) != len(result.masks):
        raise InputError(sequence.name, f"{len(sequence)} frames, but the result {result_dir} "
                                        f"has {len(result.masks)}")
    shape = np.shape(result.masks[0])
    if sequence.shape != shape:
        raise InputError(sequence.name, f"frames of shape {sequence.shape}, but the masks of "
                                        f"{result_dir} have shape {shape}")
    return result, sequence


def view(
    result_dir: str | Path,
    images_dir: str | Path,
    movie_path: str | Path | None = None,
    lineage_path: str | Path | None = None,
    fps: int = 5,
    progress: Progress | None = None,
) -> list[Path]:
    """Draw a result folder: the movie of its masks over ``images_dir`` (.gif or .mp4: contours,
    ids, trails, family colours) and/or its lineage tree (.png or .svg), in those colours.

    Both paths are checked before anything is drawn; ``progress(done, total)`` follows the movie
    frames. Returns the files written.
    """
    if movie_path is None and lineage_path is None:
        raise InputError(None, "nothing to draw: give a movie path, a lineage plot path or both")
    movie = None if movie_path is None else check_movie_path(movie_path)
    plot = None if lineage_path is None else check_plot_path(lineage_path)
    result, images = open_result(result_dir, images_dir)
    written = []
    if movie is not None:
        written.append(write_movie(images, result.masks, movie, fps, progress, result.lineage))
    if plot is not None:
        written.append(plot_lineage(result.lineage, plot, result.masks))
    return written


def summary(lineage: Lineage, frames: int) -> dict[str, str]:
    """Counts that describe a result without ground truth: frames, tracks, divisions and cells
    per frame (from the lineage table, whose tracks cover every frame they span)."""
    spans = np.zeros(frames + 1, dtype=np.int64)
    for track in lineage.values():
        spans[min(track.begin, frames)] += 1
        spans[min(track.end + 1, frames)] -= 1
    cells = np.cumsum(spans)[:frames]
    return {
        "frames": str(frames),
        "tracks": str(len(lineage)),
        "divisions": str(len(lineage.divisions())),
        "cells per frame": f"{cells.mean():.1f} (min {cells.min()}, max {cells.max()})",
    }


def metric_rows(scores: dict[str, object]) -> dict[str, str]:
    """The headline metrics and the AOGM parts behind TRA, formatted as in ``celltrail
    evaluate``."""
    rows = {}
    for key in (*HEADLINE, *AOGM_PARTS):
        value = scores.get(key)
        rows[key] = f"{value:.4f}" if isinstance(value, float) else (
            "n/a" if value is None else str(value))
    return rows


def _table(rows: dict[str, str], head: tuple[str, str] | None = None) -> str:
    cells = "".join(f'<tr><td>{html.escape(k)}</td><td class="value">{html.escape(v)}</td></tr>'
                    for k, v in rows.items())
    thead = "" if head is None else f"<thead><tr><th>{head[0]}</th><th>{head[1]}</th></tr></thead>"
    return f"<table>{thead}<tbody>{cells}</tbody></table>"


def _jpeg_uri(picture: Image.Image) -> str:
    """A JPEG data URI: a third of a PNG's size on noisy frames; full colour resolution keeps
    the one-pixel contours sharp."""
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85, subsampling=0)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _inline_svg(lineage: Lineage, frames: int) -> str:
    """The lineage tree as an ``<svg>`` element (without the XML prolog a file needs)."""
    buffer = io.StringIO()
    save_figure(lineage_figure(lineage, frames), buffer, "svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def write_report(
    result_dir: str | Path,
    images: str | Path | ImageSequence,
    out_html: str | Path,
    gt_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write one self-contained HTML page about a result folder, atomically: the CTC and MOT
    metrics against ``gt_dir`` if given (else only summary counts), the lineage tree (inline
    SVG) and a few evenly spaced overlay frames (JPEG data URIs). It loads nothing else.

    ``progress(done, total)`` follows the masks read for the frames' trails.
    """
    result_dir = Path(result_dir)
    result, sequence = open_result(result_dir, images)
    frames = len(result.masks)
    scores = None if gt_dir is None else evaluate(gt_dir, result_dir, threads=1)
    picks = np.unique(np.linspace(0, frames - 1, min(THUMBNAILS, frames)).round().astype(int))
    figures = [
        f'<figure><img src="{_jpeg_uri(picture)}" alt="frame {t}">'
        f"<figcaption>frame {t}</figcaption></figure>"
        for t, picture in overlay_frames(sequence, result.masks, result.lineage,
                                         frames=picks.tolist(), progress=progress)
    ]
    sources = f"result <code>{html.escape(str(result_dir))}</code> on images " \
              f"<code>{html.escape(sequence.name)}</code>"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>celltrail report: {html.escape(result_dir.name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>celltrail report: {html.escape(result_dir.name)}</h1>",
        f"<p>{sources}</p>",
        "<h2>Summary</h2>",
        _table(summary(result.lineage, frames)),
    ]
    if scores is not None:
        parts += [
            f"<h2>Metrics</h2><p>against <code>{html.escape(str(gt_dir))}</code> "
            "(py-ctcmetrics)</p>",
            _table(metric_rows(scores), ("metric", "value")),
        ]
    parts += [
        "<h2>Lineage</h2>",
        "<p>One line per track over time; daughters in shades of their mother's colour "
        "(the lighter one has the lower label); dashed links join a track resumed after a "
        "gap.</p>",
        _inline_svg(result.lineage, frames),
        "<h2>Frames</h2>",
        f"<p>Contours and track ids; trails through each cell's last {TRAIL} centroids.</p>",
        f'<div class="frames">{"".join(figures)}</div>',
        f"<footer>written by celltrail {__version__}</footer>",
        "</body></html>",
    ]
    out_html = Path(out_html)
    with atomic_file(out_html) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return out_html
