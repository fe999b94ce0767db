"""Scale, modality and never-empty defaults on every shared real set, with no option given.

(a) The cell diameter measured from each image (``celltrail.segmentation.resolve_scale``, the
    preset ``auto``, the generalist network's fixed point where the blob estimate is refused,
    as ``celltrail track`` does) against the median equivalent diameter of the reference masks:
    CTC sequences on their first frame, the seg sets on every image.
(b) ``celltrail track INPUT --out RES`` with no other option on each CTC sequence and each seg
    set (usiigaci train+val and the bacteria frames as stacks, the StarDist image alone): cells
    per frame (min/median/max) against the reference masks, and DET/TRA on the CTC sequences.
    A CTC run that stops to ask for ``--diameter`` is run again with the reference diameter.

Nothing here was fitted to these sets: every constant of the estimator is explained in
``src/celltrail/segmentation/scale.py`` and ``src/celltrail/methods/embedtrack/size.py``. The
network that measures a CTC sequence never saw it: ``general-without-<sequence>`` from
``.cache/embedtrack`` (``tools/train_embedtrack.py --general --holdout NAME``) stands in for the
shipped ``general``, which trained on every sequence's first 90%; the seg sets are measured by
the shipped ``general``, which saw none of them.

    python benchmarks/scale.py [--data ../shared/data] [--part a|b|ab|t] [--only NAME]

``--part t`` times the generalist's size measurement on each CTC sequence's first frame.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, partial
from pathlib import Path

import numpy as np
import tifffile
import torch
from common import finished_model
from typer.testing import CliRunner

from celltrail.cli import app
from celltrail.core.errors import InputError
from celltrail.core.sequence import read_tiff
from celltrail.io.ctc import read_result, read_segmentation_gt, read_tracking_gt
from celltrail.methods.embedtrack import size
from celltrail.metrics import evaluate
from celltrail.models.zoo import ENV
from celltrail.segmentation import resolve_scale
from celltrail.segmentation.scale import look

CTC = ("DIC-C2DH-HeLa", "Fluo-N2DH-GOWT1", "Fluo-N2DH-SIM+")
#: ±25 %: the target of issue 26.
TOLERANCE = 0.25


def equivalent_diameter(mask: np.ndarray) -> float:
    """Median equivalent diameter of the objects of one label image."""
    areas = np.bincount(np.asarray(mask).ravel())[1:]
    return float(np.median(np.sqrt(4 * areas[areas > 0] / np.pi)))


def counts(masks: list[np.ndarray]) -> np.ndarray:
    """Objects per label image."""
    return np.array([len(np.unique(m)) - 1 for m in masks])


def seg_sets(data: Path) -> Iterator[tuple[str, list[np.ndarray], list[np.ndarray]]]:
    """(name, images, reference masks) of every seg set."""
    usiigaci = sorted((data / "seg/usiigaci-phase").glob("*/set*_image.tif"),
                      key=lambda p: int(p.name[3:].split("_")[0]))
    yield ("usiigaci-phase (train+val)", [tifffile.imread(p) for p in usiigaci],
           [tifffile.imread(str(p).replace("_image", "_masks")) for p in usiigaci])
    star = data / "seg/stardist-nuclei"
    yield ("stardist-nuclei", [tifffile.imread(star / "image.tif")],
           [tifffile.imread(star / "masks.tif")])
    bacteria = data / "seg/bacteria-trpL"
    yield ("bacteria-trpL", list(tifffile.imread(bacteria / "images.tif")),
           list(tifffile.imread(bacteria / "masks.tif")))


def ctc_reference(data: Path, name: str) -> tuple[Path, Path, float]:
    """Image folder, GT folder and reference diameter (GT SEG, else silver truth) of ``01``."""
    seq, gt = data / "ctc" / name / "01", data / "ctc" / name / "01_GT"
    seg = gt if (gt / "SEG").is_dir() and name != "DIC-C2DH-HeLa" else gt.with_name("01_ST")
    masks = [read_tiff(p) for p in read_segmentation_gt(seg).values()]
    return seq, gt, float(np.median([equivalent_diameter(m) for m in masks]))


#: Where ``tools/train_embedtrack.py --general --holdout NAME`` leaves its generalists.
GENERAL = Path(".cache/embedtrack")


@contextmanager
def size_model(held_out: str | None) -> Iterator[str]:
    """Run with the generalist that never saw ``held_out`` standing in for the shipped one
    (through the model folder ``CELLTRAIL_MODELS``), or with no network at all where that one
    is not trained; the shipped one for None. Yields what measures."""
    if held_out is None:
        yield "general (saw none of them)"
        return
    path = GENERAL / f"general-without-{held_out}.pt"
    before, shipped, trained = os.environ.get(ENV), size._generalist, finished_model(path)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "embedtrack").mkdir()
        if trained:
            (Path(folder) / "embedtrack" / "general.pt").symlink_to(path.resolve())
        else:  # the shipped model saw this sequence: no network answers
            size._generalist = cache(partial(_no_network, path))
        os.environ[ENV] = folder
        size._generalist.cache_clear()
        try:
            yield f"{path.stem} (never saw it)" if trained else f"none ({path.stem} not trained)"
        finally:
            if before is None:
                del os.environ[ENV]
            else:
                os.environ[ENV] = before
            size._generalist = shipped
            size._generalist.cache_clear()


def _no_network(path: Path) -> None:
    raise ValueError(f"no network that never saw this sequence ({path} is not trained: "
                     "tools/train_embedtrack.py --general --holdout NAME)")


def measured(image: np.ndarray) -> tuple[str, float | None, bool]:
    """Preset and diameter chosen for ``image`` (None when unsure) and whether the network
    measured it."""
    try:
        scale = resolve_scale(image, fallback=size.generalist_diameter)
    except InputError:
        return look(image)[0], None, False
    return scale.preset, scale.diameter, scale.diameter_from.startswith("measured by")


def part_a(data: Path, only: str | None = None) -> None:
    print("| set | images | preset chosen | network measuring where the blobs do not | "
          "reference d (px) | estimated d (px), median | estimate / reference | "
          "images within ±25 % | measured by the network | unsure |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in CTC:
        seq, _, ref = ctc_reference(data, name)
        first = read_tiff(sorted(seq.glob("t*.tif"))[0])
        rows.append((name + " 01 (frame 0)", name, [first], [ref]))
    for name, images, masks in seg_sets(data):
        rows.append((name, None, images, [equivalent_diameter(m) for m in masks]))
    for name, held_out, images, refs in rows:
        if only and only not in name:
            continue
        with size_model(held_out) as network:
            found = [measured(image) for image in images]
        ratios = [d / r for (_, d, _), r in zip(found, refs, strict=True) if d is not None]
        presets = sorted({p for p, _, _ in found})
        within = sum(abs(r - 1) <= TOLERANCE for r in ratios)
        estimate = np.median([d for _, d, _ in found if d is not None]) if ratios else np.nan
        print(f"| {name} | {len(images)} | {', '.join(presets)} | {network} | "
              f"{np.median(refs):.1f} | {estimate:.1f} | "
              f"{np.median(ratios) if ratios else np.nan:.2f} | {within} / {len(images)} | "
              f"{sum(by for _, _, by in found)} | {len(images) - len(ratios)} |", flush=True)


def track(images: Path, out: Path, *options: str) -> tuple[str, np.ndarray | None]:
    """Run ``celltrail track images --out out [options]``; what it says and cells per frame."""
    result = CliRunner().invoke(app, ["track", str(images), "--out", str(out), *options])
    lines = result.stderr.splitlines()
    if result.exit_code != 0:
        return lines[-1] if lines else "failed", None
    chosen = [line for line in lines if line.startswith(("preset:", "diameter:", "warning:"))]
    return "; ".join(line.split(" (")[0] for line in chosen), counts(list(read_result(out).masks))


def stats(values: np.ndarray) -> str:
    return f"{values.min()} / {np.median(values):g} / {values.max()}"


def part_b(data: Path) -> None:
    print("| set | frames | run says | cells per frame min / median / max | reference | "
          "empty frames | DET | TRA |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in CTC:
            seq, gt, diameter = ctc_reference(data, name)
            reference = counts(list(read_tracking_gt(gt).masks))
            runs = [(name + " 01", ())]
            for label, options in runs:
                out = Path(tmp) / label.replace(" ", "_")
                with size_model(name):
                    said, found = track(seq, out, *options)
                if found is None and not options:  # refused: run as the error asks
                    runs.append((f"{label}, --diameter {diameter:.0f} (asked for)",
                                 ("--diameter", f"{diameter:.0f}")))
                scores = evaluate(gt, out, threads=1) if found is not None else {}
                row(label, len(reference), said, found, reference,
                    f"{scores.get('DET', float('nan')):.3f} | "
                    f"{scores.get('TRA', float('nan')):.3f}")
        for name, images, masks in seg_sets(data):
            stack = Path(tmp) / f"{name.split()[0]}.tif"
            tifffile.imwrite(stack, np.stack(images))
            said, found = track(stack, Path(tmp) / f"{name.split()[0]}-res")
            row(name, len(images), said, found, counts(masks), "– | –")


def row(name: str, frames: int, said: str, found: np.ndarray | None, reference: np.ndarray,
        scores: str) -> None:
    cells = "–" if found is None else stats(found)
    empty = "–" if found is None else str(int(np.sum(found == 0)))
    print(f"| {name} | {frames} | {said} | {cells} | {stats(reference)} | {empty} | {scores} |")


def part_t(data: Path, repeats: int = 3) -> None:
    """Seconds the shipped generalist takes to measure the cell size of each CTC sequence's
    first frame (best of ``repeats``, one thread, the model already loaded)."""
    torch.set_num_threads(1)
    size._generalist()
    print("| frame | size (px) | seconds, best of 3 (one thread) |")
    print("|---|---|---|")
    for name in CTC:
        first = read_tiff(sorted((data / "ctc" / name / "01").glob("t*.tif"))[0])
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            size.generalist_diameter(first)
            seconds.append(time.perf_counter() - start)
        print(f"| {name} 01 frame 0 | {first.shape[1]} × {first.shape[0]} | "
              f"{min(seconds):.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--part", default="ab", choices=("a", "b", "ab", "t"),
                        help="t: the time the network's size measurement takes")
    parser.add_argument("--only", help="(a) only the sets whose name holds this")
    args = parser.parse_args()
    if "a" in args.part:
        part_a(args.data, args.only)
    if "b" in args.part:
        part_b(args.data)
    if args.part == "t":
        part_t(args.data)


if __name__ == "__main__":
    main()
