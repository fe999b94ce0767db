"""Lineage tree plot: time across, one line per track, connectors from mothers to daughters.

Tracks take the movie's family colours (:func:`celltrail.viz.overlay.family_colours`) on a dark
background like a fluorescence frame's. Leaves get one row each; a mother sits midway between
her children, so every family reads as a small tree. In SVG each track line is a group with the
id ``track-<label>`` and each connector ``link-<parent>-<child>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from celltrail.core.errors import InputError
from celltrail.core.lineage import Lineage
from celltrail.io.atomic import SIGNATURE, atomic_file
from celltrail.viz.overlay import Colour, family_colours

PLOT_SUFFIXES = (".png", ".svg")
BACKGROUND = "#1e1e1e"
#: Height of one row of the tree, in inches (about 10 points: room for a 5-point id).
ROW_HEIGHT = 0.14


def check_plot_path(path: str | Path) -> Path:
    """``path`` as a Path, or :class:`InputError` unless it names a .png or .svg file."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise InputError(path, "a lineage plot must be written as .png or .svg")
    return path


def tree_rows(lineage: Lineage) -> dict[int, float]:
    """The row of every track: leaves on consecutive rows (families in order of their roots'
    first frames), each mother midway between her first and last child."""
    kids = lineage.children()
    roots = sorted((t for t in lineage.values() if t.parent not in lineage),
                   key=lambda t: (t.begin, t.label))
    rows: dict[int, float] = {}
    leaves = 0
    todo = [(root.label, False) for root in reversed(roots)]
    while todo:  # depth first, children before their mother
        label, expanded = todo.pop()
        children = sorted(kids.get(label, []))
        if not children:
            rows[label] = float(leaves)
            leaves += 1
        elif expanded:
            rows[label] = (rows[children[0]] + rows[children[-1]]) / 2
        else:
            todo.append((label, True))
            todo.extend((child, False) for child in reversed(children))
    return rows


def _hex(colour: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def lineage_figure(lineage: Lineage, frames: int | None = None) -> Figure:
    """The lineage tree as a matplotlib figure (Agg canvas, no pyplot state); ``frames`` sets
    the time axis to frames ``0..frames-1`` (default: the span of the tracks)."""
    errors = lineage.structure_errors()
    if errors:
        raise InputError(None, f"cannot plot an invalid lineage: {errors[0]}")
    rows = tree_rows(lineage)
    kids = lineage.children()
    colours = family_colours(lineage)
    n_rows = max(sum(label not in kids for label in lineage), 1)
    figure = Figure(figsize=(9, min(max(ROW_HEIGHT * n_rows + 1.2, 3), 60)))
    FigureCanvasAgg(figure)
    ax = figure.add_axes((0.06, 0.6 / figure.get_figheight(), 0.92,
                          1 - 1.1 / figure.get_figheight()))
    ax.set_facecolor(BACKGROUND)
    first = 0 if frames is not None else min((t.begin for t in lineage.values()), default=0)
    last = frames - 1 if frames is not None else max((t.end for t in lineage.values()), default=0)
    ax.set_xlim(first - 1, last + 1)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_yticks([])
    ax.set_xlabel("frame")
    ax.set_title(f"lineage: {len(lineage)} tracks, {len(lineage.divisions())} divisions",
                 fontsize=10)
    for label, track in lineage.items():
        colour, row = _hex(colours[label]), rows[label]
        (line,) = ax.plot([track.begin, track.end], [row, row], color=colour, linewidth=2,
                          solid_capstyle="round", marker="o" if track.begin == track.end else "",
                          markersize=3)
        line.set_gid(f"track-{label}")
        ax.annotate(str(label), (track.begin, row), xytext=(1, 1.5), textcoords="offset points",
                    color=colour, fontsize=5, ha="left", va="bottom")
        if track.parent in lineage:
            mother = lineage[track.parent]
            mid = (mother.end + track.begin) / 2
            x = [mother.end, mid, mid, track.begin]
            y = [rows[mother.label], rows[mother.label], row, row]
            gap = len(kids[mother.label]) == 1
            (link,) = ax.plot(x, y, color=colour, linewidth=0.8,
                              linestyle=(0, (2, 2)) if gap else "solid")
            link.set_gid(f"link-{mother.label}-{label}")
    return figure


def plot_lineage(
    lineage: Lineage, path: str | Path, masks: Sequence[np.ndarray] | None = None
) -> Path:
    """Draw the lineage tree (:func:`lineage_figure`) to a PNG or SVG file (by its suffix),
    atomically; with the result's ``masks`` the time axis spans all their frames."""
    path = check_plot_path(path)
    figure = lineage_figure(lineage, None if masks is None else len(masks))
    with atomic_file(path) as tmp:
        save_figure(figure, tmp, path.suffix.lower()[1:])
    return path


def save_figure(figure: Figure, target: object, fmt: str) -> None:
    """Save to a file name or file object without a date, so a file drawn twice from the same
    lineage is the same file; celltrail is named as its creator."""
    metadata = {"Date": None, "Creator": SIGNATURE, "Type": None} if fmt == "svg" else {
        "Software": SIGNATURE}
    figure.savefig(target, format=fmt, dpi=150, facecolor="white", metadata=metadata)
