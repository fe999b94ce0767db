"""COCO instance datasets in the LIVECell layout, for training and scoring cell detectors.

One JSON file holds ``images`` (``id, file_name, width, height``; file names relative to an
images folder), ``annotations`` (``id, image_id, category_id, bbox [x, y, w, h]`` in pixels,
``area, iscrowd`` and a ``segmentation`` as COCO RLE or polygons, or none at all for box-only
annotations) and ``categories`` (one, ``cell``). Predictions are turned into COCO result dicts
(:func:`masks_to_coco_results`, :func:`boxes_to_coco_results`) for :mod:`celltrail.metrics.coco`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_util
from scipy import ndimage

from celltrail.core.errors import InputError
from celltrail.core.sequence import TIFF_SUFFIXES, FolderSequence, check_frame, read_tiff
from celltrail.io.atomic import SIGNATURE, atomic_file
from celltrail.io.ctc import numbered_files

CATEGORIES = [{"id": 1, "name": "cell"}]
TRUTHS = ("gt", "st", "boxes")
_EDGE = 1e-3  # bboxes may pass the image edge by float rounding, no more


def ctc_to_coco(
    seq_dir: str | Path,
    out_json: str | Path,
    truth: str = "gt",
    frames: Collection[int] | None = None,
) -> Path:
    """Write the segmented frames of a CTC sequence ``NN`` as a COCO dataset, atomically.

    One image per frame with a mask in ``NN_GT/SEG`` (``truth="gt"``) or ``NN_ST/SEG``
    (``"st"``), only the frame numbers in ``frames`` (e.g. a ``range``) when given, one
    annotation per label.
    ``"boxes"`` writes the same boxes without segmentations (GT SEG if present, else ST SEG).
    File names are relative to ``seq_dir`` (``t000.tif``); image ids are frame + 1 (COCO tools
    may treat id 0 as missing) and ``frame_id`` holds the frame number.
    """
    seq_dir = Path(seq_dir)
    if not seq_dir.is_dir():
        raise InputError(seq_dir, "sequence folder not found")
    if truth not in TRUTHS:
        raise InputError(None, f"truth must be 'gt', 'st' or 'boxes', found {truth!r}")
    gt_seg, st_seg = (seq_dir.with_name(f"{seq_dir.name}_{kind}") / "SEG" for kind in ("GT", "ST"))
    seg_dir = {"gt": gt_seg, "st": st_seg}.get(truth, gt_seg if gt_seg.is_dir() else st_seg)
    if not seg_dir.is_dir():
        which = "NN_GT/SEG or NN_ST/SEG" if truth == "boxes" else seg_dir.relative_to(
            seq_dir.parent).as_posix()
        raise InputError(seq_dir, f"no segmentation truth ({which}) beside the sequence")
    masks = numbered_files(seg_dir, "man_seg")
    if frames is not None:
        masks = {t: path for t, path in masks.items() if t in frames}
    if not masks:
        raise InputError(seg_dir, "no 'man_segTTT.tif' files" + (" in the frames asked for"
                                                                  if frames is not None else ""))
    images = numbered_files(seq_dir, "t")
    pairs = []
    for t in sorted(masks):
        if t not in images:
            raise InputError(masks[t], f"no image of frame {t} in {seq_dir}")
        pairs.append((images[t], masks[t]))
    return pairs_to_coco(pairs, out_json, boxes_only=truth == "boxes", frame_ids=sorted(masks))


def pairs_to_coco(
    pairs: list[tuple[Path, Path]],
    out_json: str | Path,
    boxes_only: bool = False,
    frame_ids: list[int] | None = None,
) -> Path:
    """Write ``(image, label mask)`` file pairs as a COCO dataset, atomically: one image per
    pair (id = index + 1, or frame + 1 with ``frame_ids``), one annotation per label, with its
    segmentation unless ``boxes_only``. File names are the images' names: all images must
    share one folder, the one given to :func:`read_coco`."""
    if len({image.parent for image, _ in pairs}) > 1:
        raise InputError(pairs[0][0].parent, "the images of one COCO dataset share a folder")
    coco: dict[str, list] = {"images": [], "annotations": [], "categories": CATEGORIES}
    for index, (image, mask) in enumerate(pairs):
        image_id = (index if frame_ids is None else frame_ids[index]) + 1
        labels = _mask_of(mask, FolderSequence([image], str(image)).shape)
        height, width = labels.shape
        entry = {"id": image_id, "file_name": image.name, "width": width, "height": height}
        coco["images"].append(entry if frame_ids is None else {**entry, "frame_id": image_id - 1})
        for _, rle, bbox, area in _instances(labels):
            annotation = {"id": len(coco["annotations"]) + 1, "image_id": image_id,
                          "category_id": 1, "bbox": bbox, "area": area, "iscrowd": 0}
            if not boxes_only:
                annotation["segmentation"] = rle
            coco["annotations"].append(annotation)
    out_json = Path(out_json)
    with atomic_file(out_json) as tmp:
        tmp.write_text(json.dumps({"info": {"description": SIGNATURE}, **coco}))
    return out_json


def _mask_of(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The label image at ``path``, checked to be non-negative integers of ``shape``."""
    labels = read_tiff(path)
    check_frame(labels.shape, labels.dtype, path)
    if labels.dtype.kind not in "biu":
        raise InputError(path, f"labels must be integers, found {labels.dtype}")
    if labels.min() < 0:
        raise InputError(path, f"labels must be non-negative, found {labels.min()}")
    if labels.shape != shape:
        raise InputError(path, f"mask shape {labels.shape} differs from the image's {shape}")
    return labels.astype(np.int64, copy=False)


def _instances(labels: np.ndarray) -> Iterator[tuple[int, dict, list[float], int]]:
    """``(label, RLE, bbox [x, y, w, h], area)`` of each label of a non-negative label image;
    the RLE's counts are a str, so it can be written as JSON."""
    full = np.zeros(labels.shape, np.uint8, order="F")
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        region = labels[box] == index + 1
        full[box] = region
        rle = mask_util.encode(full)
        full[box] = 0
        rle["counts"] = rle["counts"].decode("ascii")
        rows, cols = box
        bbox = [float(cols.start), float(rows.start), float(cols.stop - cols.start),
                float(rows.stop - rows.start)]
        yield index + 1, rle, bbox, int(region.sum())


def masks_to_coco_results(
    image_id: int, labels: np.ndarray, scores: Mapping[int, float] | None = None
) -> list[dict]:
    """COCO result dicts (``segmentation`` RLE, ``bbox``, ``score``) of the cells of a predicted
    label image, one per label; ``scores`` maps each label to its confidence (default 1)."""
    if labels.ndim != 2 or labels.dtype.kind not in "biu" or (labels < 0).any():
        raise ValueError(f"expected a 2D label image of non-negative integers, found "
                         f"{labels.dtype} of shape {labels.shape}")
    results = []
    for label, rle, bbox, _ in _instances(labels.astype(np.int64, copy=False)):
        if scores is not None and label not in scores:
            raise ValueError(f"no score for label {label} of image {image_id}")
        results.append({"image_id": image_id, "category_id": 1, "segmentation": rle,
                        "bbox": bbox, "score": 1.0 if scores is None else float(scores[label])})
    return results


def boxes_to_coco_results(image_id: int, boxes: np.ndarray, scores: np.ndarray) -> list[dict]:
    """COCO result dicts (``bbox``, ``score``) of predicted boxes ``(N, 4)`` as x0, y0, x1, y1
    with their scores ``(N,)``."""
    boxes, scores = np.asarray(boxes, dtype=float), np.asarray(scores, dtype=float)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (len(boxes),):
        raise ValueError(f"expected boxes (N, 4) and scores (N,), found {boxes.shape} and "
                         f"{scores.shape}")
    return [{"image_id": image_id, "category_id": 1, "score": float(score),
             "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]}
            for (x0, y0, x1, y1), score in zip(boxes, scores, strict=True)]


@dataclass(frozen=True, eq=False)
class CocoImage:
    """One image of a COCO dataset: its file, size and cells (boxes, masks decoded on demand)."""

    path: Path
    image_id: int
    height: int
    width: int
    boxes: np.ndarray  # float32 (N, 4): x0, y0, x1, y1 in pixels
    rles: list[dict] | None = field(default=None, repr=False)  # None for a box-only dataset

    @property
    def masks(self) -> np.ndarray | None:
        """The cells' masks, bool ``(N, H, W)`` in the order of ``boxes``, or ``None`` for a
        box-only dataset. Decoded anew on each access: a dataset's masks together would not fit
        in memory."""
        if self.rles is None:
            return None
        if not self.rles:
            return np.zeros((0, self.height, self.width), dtype=bool)
        return np.moveaxis(mask_util.decode(self.rles), -1, 0).astype(bool)

    def load(self) -> np.ndarray:
        """The image's pixels as stored (TIFF by tifffile, PNG/JPEG and others by Pillow)."""
        if self.path.suffix.lower() in TIFF_SUFFIXES:
            pixels = read_tiff(self.path)
        else:
            from PIL import Image

            try:
                with Image.open(self.path) as image:
                    pixels = np.asarray(image)
            except Exception as exc:  # Pillow raises many types for bad files
                raise InputError(self.path, f"not a readable image ({exc})") from exc
        if pixels.shape[:2] != (self.height, self.width):
            raise InputError(self.path, f"image shape {pixels.shape} differs from the "
                                        f"{self.width}x{self.height} of its COCO entry")
        return pixels


def load_coco(json_path: str | Path) -> dict:
    """Read a COCO JSON file, checked as :func:`check_coco` does."""
    path = Path(json_path)
    if not path.is_file():
        raise InputError(path, "COCO file not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read COCO file ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not a JSON file ({exc})") from exc
    check_coco(data, path)
    return data


def check_coco(data: object, source: str | Path | None) -> None:
    """Raise :class:`InputError` (naming ``source``) unless ``data`` is a COCO instance dataset:
    images with ``id, file_name, width, height`` and distinct ids; annotations with ``id,
    image_id`` of a listed image and a ``bbox`` of positive size inside that image."""
    if not isinstance(data, dict):
        raise InputError(source, "not a COCO dataset (expected a JSON object)")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise InputError(source, f"missing key '{key}'" if key not in data
                             else f"'{key}' is not a list")
    sizes: dict[int, tuple[int, int]] = {}
    for index, image in enumerate(data["images"]):
        where = f"images[{index}]"
        _require(image, ("id", "file_name", "width", "height"), where, source)
        if not all(isinstance(image[k], int) and image[k] > 0 for k in ("width", "height")):
            raise InputError(source, f"{where}: width and height must be positive integers")
        if image["id"] in sizes:
            raise InputError(source, f"{where}: duplicate image id {image['id']}")
        sizes[image["id"]] = (image["width"], image["height"])
    for index, ann in enumerate(data["annotations"]):
        _require(ann, ("id", "image_id", "bbox"), f"annotations[{index}]", source)
        where = f"annotation {ann['id']}"
        if ann["image_id"] not in sizes:
            raise InputError(source, f"{where}: image_id {ann['image_id']} is not in 'images'")
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(isinstance(v, int | float) for v in bbox)):
            raise InputError(source, f"{where}: bbox must be 4 numbers [x, y, w, h], found "
                                     f"{bbox!r}")
        x, y, w, h = bbox
        width, height = sizes[ann["image_id"]]
        text = "[" + ", ".join(f"{v:g}" for v in bbox) + "]"
        if w <= 0 or h <= 0:
            raise InputError(source, f"{where}: bbox {text} has non-positive size")
        if x < -_EDGE or y < -_EDGE or x + w > width + _EDGE or y + h > height + _EDGE:
            raise InputError(source, f"{where}: bbox {text} lies outside the {width}x{height} "
                                     f"image {ann['image_id']}")


def _require(entry: object, keys: tuple[str, ...], where: str, source: str | Path | None) -> None:
    if not isinstance(entry, dict):
        raise InputError(source, f"{where}: not a JSON object")
    for key in keys:
        if key not in entry:
            raise InputError(source, f"{where}: missing key '{key}'")


def segmentation_rle(segmentation: list | dict, height: int, width: int) -> dict:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) as compressed RLE."""
    if isinstance(segmentation, list):  # polygons
        return mask_util.merge(mask_util.frPyObjects(segmentation, height, width))
    if list(segmentation["size"]) != [height, width]:
        raise ValueError(f"RLE size {segmentation['size']} differs from the image's "
                         f"{[height, width]}")
    if isinstance(segmentation["counts"], list):  # uncompressed RLE
        return mask_util.frPyObjects(segmentation, height, width)
    return segmentation


def read_coco(json_path: str | Path, images_dir: str | Path) -> list[CocoImage]:
    """The images of a COCO dataset, in file order, with their cells (annotations in file
    order). Masks are ``None`` throughout if any annotation lacks a segmentation."""
    json_path, images_dir = Path(json_path), Path(images_dir)
    data = load_coco(json_path)
    box_only = any(not ann.get("segmentation") for ann in data["annotations"])
    by_image: dict[int, list[dict]] = {image["id"]: [] for image in data["images"]}
    for ann in data["annotations"]:
        by_image[ann["image_id"]].append(ann)
    out = []
    for image in data["images"]:
        path = images_dir / image["file_name"]
        if not path.is_file():
            raise InputError(path, f"image file not found (listed in {json_path})")
        height, width = int(image["height"]), int(image["width"])
        anns = by_image[image["id"]]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)],
                         dtype=np.float32).reshape(-1, 4)
        rles = None
        if not box_only:
            rles = []
            for ann in anns:
                try:
                    rles.append(segmentation_rle(ann["segmentation"], height, width))
                except (KeyError, TypeError, ValueError, IndexError) as exc:
                    raise InputError(json_path, f"annotation {ann['id']}: bad segmentation "
                                                f"({exc})") from exc
        out.append(CocoImage(path, image["id"], height, width, boxes, rles))
    return out
