"""Overlay of cell contours, track ids and trails on a frame, in colours that show families,
captioned with the frame number (and the time, where the frame interval is known).

Without a lineage every track has its own colour. With one, a root track keeps that colour and a
daughter takes a shade of her mother's (same hue: the first daughter lighter, the second darker),
so a family reads as one hue; a track that continues another over a gap keeps its colour.
"""

from __future__ import annotations

import colorsys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin
from scipy import ndimage
from skimage.measure import regionprops
from skimage.segmentation import find_boundaries

from celltrail.core.lineage import Lineage
from celltrail.core.sequence import normalise
from celltrail.io.atomic import SIGNATURE, atomic_file

Colour = tuple[int, int, int]
#: A position ``(y, x)`` in pixels.
Point = tuple[float, float]
#: A trail: centroids in time order, each with the label of the track it belongs to.
Trail = Sequence[tuple[Point, int]]

#: Lightness range of daughters' shades: the darkest still shows on a dark frame, the lightest
#: is still coloured.
LIGHTEST, DARKEST = 0.85, 0.4
#: How far a daughter's lightness moves from her mother's toward ``LIGHTEST`` or ``DARKEST``.
SHADE_STEP = 0.5
#: Centroids in a trail, by default.
TRAIL = 10
#: The caption's font size as a fraction of the frame's smaller side (so it reads alike at any
#: size), and its least size in pixels.
CAPTION_SCALE, CAPTION_LEAST = 1 / 32, 10
#: Margin in pixels around the caption's text, inside its black box.
CAPTION_PAD = 2


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Contrast-stretch a frame to 8 bits between its 1st and 99.8th percentiles."""
    return (np.clip(normalise(image), 0, 1) * 255).astype(np.uint8)


def label_colour(label: int) -> Colour:
    """A bright colour fixed by the label, so a track keeps its colour over time."""
    rng = np.random.default_rng(int(label))
    hue = rng.random()
    rgb = np.array([abs(hue * 6 - 3) - 1, 2 - abs(hue * 6 - 2), 2 - abs(hue * 6 - 4)])
    return tuple(int(c) for c in (np.clip(rgb, 0, 1) * 200 + 55))


def shade(colour: Colour, amount: float) -> Colour:
    """``colour`` with the same hue and saturation, lighter for ``amount > 0`` and darker for
    ``amount < 0``: its lightness moves that fraction of the way to ``LIGHTEST`` or ``DARKEST``."""
    hue, light, saturation = colorsys.rgb_to_hls(*(c / 255 for c in colour))
    bound = LIGHTEST if amount > 0 else DARKEST
    light += abs(amount) * (bound - light)
    return tuple(round(c * 255) for c in colorsys.hls_to_rgb(hue, light, saturation))


def daughter_colours(mother: Colour, count: int) -> list[Colour]:
    """Colours of ``count`` children of a track coloured ``mother``, in label order.

    One child (a track continued after a gap) keeps the colour; of two daughters the first is
    lighter and the second darker than the mother; more spread evenly between those shades.
    """
    if count == 1:
        return [mother]
    return [shade(mother, amount) for amount in np.linspace(SHADE_STEP, -SHADE_STEP, count)]


def family_colours(lineage: Lineage) -> dict[int, Colour]:
    """The colour of every track: :func:`label_colour` for a root, shades of the mother's
    (:func:`daughter_colours`) down the parent links."""
    kids = lineage.children()
    colours: dict[int, Colour] = {}
    roots = [label for label, track in lineage.items() if track.parent not in lineage]
    todo = [(label, label_colour(label)) for label in roots]
    while todo:
        label, colour = todo.pop()
        if label in colours:  # only an invalid lineage (a cycle) comes back to a track
            continue
        colours[label] = colour
        children = sorted(kids.get(label, []))
        todo.extend(zip(children, daughter_colours(colour, len(children)), strict=True))
    return colours


def centroids(mask: np.ndarray) -> dict[int, Point]:
    """Centroid ``(y, x)`` of every labelled cell in a mask."""
    labels = np.unique(mask[mask > 0])
    points = ndimage.center_of_mass(np.ones(mask.shape), mask, labels)
    return {int(label): (float(y), float(x)) for label, (y, x) in zip(labels, points, strict=True)}


class TrailHistory:
    """The recent centroids of every track, fed one frame at a time.

    A track's trail holds its centroids in the last ``length`` frames; where the track began
    within them, the trail goes on back through its parent (a daughter's trail starts on her
    mother's path, a track continued after a gap joins its earlier part).
    """

    def __init__(self, lineage: Lineage, length: int = TRAIL) -> None:
        self.parents = {label: track.parent for label, track in lineage.items()}
        self.length = length
        self._recent: dict[int, deque[tuple[int, Point]]] = {}

    def add(self, t: int, points: Mapping[int, Point]) -> list[Trail]:
        """Record the centroids of frame ``t``; return the trails of the tracks in that frame."""
        for label, point in points.items():
            self._recent.setdefault(label, deque(maxlen=self.length)).append((t, point))
        return [self._trail(label, t) for label in points]

    def _trail(self, label: int, t: int) -> Trail:
        trail: list[tuple[Point, int]] = []
        start = t + 1  # frames before this are not in the trail yet
        first = t - self.length + 1
        while label:
            earlier = [(s, p) for s, p in self._recent.get(label, ()) if first <= s < start]
            if not earlier:
                break
            trail[:0] = [(point, label) for _, point in earlier]
            start = earlier[0][0]
            label = self.parents.get(label, 0)
        return trail


def frame_caption(t: int, interval: float | None = None) -> str:
    """``frame 12``, or with the frame interval (minutes) known, ``frame 12, 60 min``: the time
    since the first frame, to a tenth of a minute."""
    if interval is None:
        return f"frame {t}"
    minutes = f"{t * interval:.1f}".removesuffix(".0")
    return f"frame {t}, {minutes} min"


@lru_cache(maxsize=8)
def _caption_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own font at ``size`` pixels, loaded once per size rather than per frame."""
    return ImageFont.load_default(size)


def draw_caption(picture: Image.Image, text: str) -> Image.Image:
    """Draw ``text`` in white on a black box in the top-left corner of ``picture`` (in place),
    in a font sized to the picture (:data:`CAPTION_SCALE`); returns the picture."""
    size = max(CAPTION_LEAST, round(min(picture.size) * CAPTION_SCALE))
    font = _caption_font(size)
    draw = ImageDraw.Draw(picture)
    _, _, right, bottom = draw.textbbox((CAPTION_PAD, CAPTION_PAD), text, font=font)
    draw.rectangle((0, 0, right + CAPTION_PAD, bottom + CAPTION_PAD), fill=(0, 0, 0))
    draw.text((CAPTION_PAD, CAPTION_PAD), text, fill=(255, 255, 255), font=font)
    return picture


def overlay_frame(
    image: np.ndarray,
    mask: np.ndarray,
    colours: Mapping[int, Colour] | None = None,
    trails: Iterable[Trail] = (),
    caption: str | None = None,
) -> Image.Image:
    """RGB picture of ``image`` with each labelled cell's contour and id drawn in its colour
    (``colours``, else :func:`label_colour`) and each trail as a line through its centroids,
    every piece in the colour of the track it belongs to; ``caption`` (such as
    :func:`frame_caption`'s) in the top-left corner."""
    colours = {} if colours is None else colours

    def colour(label: int) -> Colour:
        return colours.get(label) or label_colour(label)

    grey = to_uint8(image)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    edges = find_boundaries(mask, mode="inner")
    regions = regionprops(mask)
    for region in regions:
        sl = region.slice
        sel = edges[sl] & (mask[sl] == region.label)
        rgb[sl][sel] = colour(region.label)
    picture = Image.fromarray(rgb)
    draw = ImageDraw.Draw(picture)
    for trail in trails:
        for ((y0, x0), _), ((y1, x1), label) in pairwise(trail):
            draw.line([(x0, y0), (x1, y1)], fill=colour(label), width=2)
    for region in regions:
        y, x = region.centroid
        draw.text((x, y), str(region.label), fill=colour(region.label), anchor="mm",
                  stroke_width=1, stroke_fill=(0, 0, 0))
    return picture if caption is None else draw_caption(picture, caption)


def interval_of(images: Sequence[np.ndarray]) -> float | None:
    """Minutes between frames where the images know it (an :class:`~celltrail.core.sequence.
    ImageSequence`'s ``interval``), else None."""
    return getattr(images, "interval", None)


def overlay_frames(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    lineage: Lineage | None = None,
    trail: int = TRAIL,
    frames: Iterable[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    numbers: bool = True,
) -> Iterator[tuple[int, Image.Image]]:
    """``(t, overlay)`` for the frames ``t`` in ``frames`` (default: all), one at a time, so a
    long movie never sits in memory whole.

    With a lineage, cells take their family colours (:func:`family_colours`) and carry trails
    of their last ``trail`` centroids (0: none); every mask is then read, as trails need the
    frames between those drawn. With ``numbers`` each overlay is captioned with its frame
    number and, where the images know their interval, the time (:func:`frame_caption`).
    ``progress(done, total)`` is called after each mask.
    """
    wanted = range(len(masks)) if frames is None else set(frames)
    interval = interval_of(images)
    history = None if lineage is None or trail < 1 else TrailHistory(lineage, trail)
    colours = None if lineage is None else family_colours(lineage)
    for t in range(len(masks)):
        if t in wanted:
            mask = masks[t]
            trails = () if history is None else history.add(t, centroids(mask))
            caption = frame_caption(t, interval) if numbers else None
            yield t, overlay_frame(images[t], mask, colours, trails, caption)
        elif history is not None:
            history.add(t, centroids(masks[t]))
        if progress is not None:
            progress(t + 1, len(masks))


def write_overlay(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray], frames: Sequence[int], path: Path
) -> Path:
    """Write the overlays of ``frames`` side by side as one PNG, each captioned with its frame
    number (and time, where the images know their interval)."""
    interval = interval_of(images)
    tiles = [overlay_frame(images[t], masks[t], caption=frame_caption(t, interval))
             for t in frames]
    width = sum(tile.width for tile in tiles) + 4 * (len(tiles) - 1)
    sheet = Image.new("RGB", (width, max(tile.height for tile in tiles)), (255, 255, 255))
    x = 0
    for tile in tiles:
        sheet.paste(tile, (x, 0))
        x += tile.width + 4
    with atomic_file(path) as tmp:
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", SIGNATURE)
        sheet.save(tmp, format="PNG", pnginfo=info)
    return path
