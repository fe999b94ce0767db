"""laptrack (Fukai & Kawaguchi 2023) as an alternative linker, behind the same call as ours.

laptrack solves frame-to-frame linking, gap closing and splitting as linear assignment problems
over the whole sequence, so unlike :func:`celltrail.linking.link` it is not online: it measures
every frame first (keeping each frame's object pixels, to paint the track labels afterwards)
and writes the relabelled frames at the end. Its cutoffs are the review's distance gate,
``max_step`` cell diameters (squared pixels, laptrack's default metric), for frame-to-frame
links, gap closing (up to ``max_gap`` missing frames) and splitting alike.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx
import numpy as np

from celltrail.core.lineage import Lineage, TrackBook
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.linking.constraint import LinkParams
from celltrail.linking.objects import FrameObjects, equivalent_diameters, measure


def link_laptrack(
    frames: Iterable[np.ndarray],
    store: MaskStore | None = None,
    params: LinkParams | None = None,
    cell_diameter: float | None = None,
) -> TrackingResult:
    """Track label frames into a CTC result with laptrack (splitting and gap closing on).

    ``cell_diameter`` sets the cutoffs; when None it is the median equivalent diameter of the
    first non-empty frame's objects (as for our linker).
    """
    from laptrack import LapTrack

    params = params or LinkParams()
    store = MaskStore() if store is None else store
    objects = [measure(f) for f in frames]
    if cell_diameter is None:
        first = next((o for o in objects if len(o)), None)
        cell_diameter = 1.0 if first is None else float(
            np.median(equivalent_diameters(first.areas, len(first.shape))))
    cutoff = (params.max_step * cell_diameter) ** 2
    tracker = LapTrack(cutoff=cutoff, splitting_cutoff=cutoff, gap_closing_cutoff=cutoff,
                       gap_closing_max_frame_count=params.max_gap)
    graph = tracker.predict([o.centroids for o in objects]) if objects else nx.DiGraph()
    lineage = _paint(graph, objects, store)
    return TrackingResult(store, lineage)


def _paint(graph: nx.DiGraph, objects: list[FrameObjects], store: MaskStore) -> Lineage:
    """Append to ``store`` the frames painted with track labels for laptrack's (frame, index)
    graph: a node continues its predecessor's track when that is the predecessor's only
    successor and one frame earlier; otherwise (division, gap) it starts a new track whose
    parent is the predecessor's."""
    undirected = graph.to_undirected(as_view=True)
    label_of: dict[tuple[int, int], int] = {}
    book = TrackBook()
    for t, obj in enumerate(objects):
        labels = np.zeros(len(obj), dtype=np.int64)
        for k in range(len(obj)):
            node = (t, k)
            preds = [n for n in undirected.neighbors(node) if n[0] < t] if node in graph else []
            pred = preds[0] if preds else None
            succs = [n for n in undirected.neighbors(pred) if n[0] > pred[0]] if pred else []
            if pred is not None and pred[0] == t - 1 and len(succs) == 1:
                label = label_of[pred]
                book.extend(label, t)
            else:
                label = book.new(t, 0 if pred is None else label_of[pred])
            label_of[node] = labels[k] = label
        store.append(obj.relabel(labels))
    return book.lineage()
