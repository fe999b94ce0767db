"""COCO average precision of cell detections and instance masks, as LIVECell reports it.

pycocotools' COCOeval with LIVECell's limits: up to 100, 500 and 2000 detections per image
(read at 2000, as dense images hold more cells than COCO's 100) and cell sizes small below
18² pixels, medium to 36², large above. The numbers are computed from COCOeval's precision
table, since its ``summarize`` hard-codes COCO's detection limits.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from celltrail.core.errors import InputError
from celltrail.io.coco import (
    CATEGORIES,
    check_coco,
    load_coco,
    masks_to_coco_results,
    segmentation_rle,
)

MAX_DETS = (100, 500, 2000)
AREA_RANGES = {"all": (0, 1e10), "small": (0, 18**2), "medium": (18**2, 36**2),
               "large": (36**2, 1e10)}
IOU_TYPES = ("segm", "bbox")


def coco_ap(gt: str | Path | dict, results: list[dict], iou_type: str = "segm"
            ) -> dict[str, float | None]:
    """AP (mean over IoU 0.5:0.95), AP50, AP75 and APs, APm, APl of ``results`` against the
    ground truth ``gt`` (a COCO JSON file or its dict), as fractions in 0-1.

    ``results`` are COCO result dicts (``image_id, score`` and ``segmentation`` for ``"segm"``,
    ``bbox`` or ``segmentation`` for ``"bbox"``; ``category_id`` defaults to 1). A number with
    no ground truth to score against (e.g. APl without large cells) is ``None`` (pycocotools
    writes -1). Mask AP sizes detections by their mask area, not their box's.
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be 'segm' or 'bbox', found {iou_type!r}")
    source = None if isinstance(gt, dict) else Path(gt)
    if source is None:
        check_coco(gt, None)
        data = gt
    else:
        data = load_coco(source)
    sizes = {image["id"]: (image["height"], image["width"]) for image in data["images"]}
    truth = [_truth(n, ann, iou_type, sizes, source) for n, ann in enumerate(data["annotations"])]
    found = [_detection(n, result, iou_type, sizes) for n, result in enumerate(results)]
    categories = data.get("categories", CATEGORIES)
    evaluator = COCOeval(_coco(data["images"], truth, categories),
                         _coco(data["images"], found, categories), iou_type)
    evaluator.params.maxDets = list(MAX_DETS)
    evaluator.params.areaRng = [list(r) for r in AREA_RANGES.values()]
    evaluator.params.areaRngLbl = list(AREA_RANGES)
    with redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][..., -1]  # (IoU, recall, class, area) at 2000 dets
    iou = evaluator.params.iouThrs
    at50, at75 = (int(np.argmin(np.abs(iou - t))) for t in (0.5, 0.75))
    return {"AP": _mean(precision[..., 0]), "AP50": _mean(precision[at50, ..., 0]),
            "AP75": _mean(precision[at75, ..., 0]), "APs": _mean(precision[..., 1]),
            "APm": _mean(precision[..., 2]), "APl": _mean(precision[..., 3])}


def segmentation_scores(
    gt: str | Path | dict,
    labels: Mapping[int, np.ndarray],
    scores: Mapping[int, Mapping[int, float]] | None = None,
) -> dict[str, dict[str, float | None]]:
    """:func:`coco_ap` of predicted label images ``{image_id: labels}`` (with confidences
    ``{image_id: {label: score}}``, default 1), as ``{"bbox": ..., "segm": ...}``; ``segm`` only
    when the ground truth has masks. Images without a prediction count as all cells missed."""
    data = gt if isinstance(gt, dict) else load_coco(gt)
    results = [result for image_id, image in labels.items()
               for result in masks_to_coco_results(
                   image_id, image, None if scores is None else scores[image_id])]
    out = {"bbox": coco_ap(data, results, "bbox")}
    if all(ann.get("segmentation") for ann in data["annotations"]):
        out["segm"] = coco_ap(data, results, "segm")
    return out


def _mean(precision: np.ndarray) -> float | None:
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else None


def _coco(images: list[dict], annotations: list[dict], categories: list[dict]) -> COCO:
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _truth(n: int, ann: dict, iou_type: str, sizes: dict[int, tuple[int, int]],
           source: Path | None) -> dict:
    """A ground-truth annotation as COCOeval needs it: ids from 1 (COCOeval takes id 0 for
    "unmatched"), ``iscrowd`` 0 and ``area`` the box's where absent, RLE masks for ``segm``."""
    out = {**ann, "id": n + 1, "iscrowd": ann.get("iscrowd", 0),
           "category_id": ann.get("category_id", 1),
           "area": ann.get("area", ann["bbox"][2] * ann["bbox"][3])}
    if iou_type == "segm":
        if not ann.get("segmentation"):
            raise InputError(source, f"annotation {ann['id']} has no segmentation: mask AP "
                                     f"needs masks (score boxes with iou_type='bbox')")
        try:
            out["segmentation"] = segmentation_rle(ann["segmentation"], *sizes[ann["image_id"]])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(source, f"annotation {ann['id']}: bad segmentation ({exc})") from exc
    return out


def _detection(n: int, result: dict, iou_type: str, sizes: dict[int, tuple[int, int]]) -> dict:
    """A result as COCOeval needs it: ``id``, ``area`` (the mask's for ``segm``) and ``bbox``."""
    where = f"result {n}"
    for key in ("image_id", "score"):
        if key not in result:
            raise InputError(None, f"{where}: missing key '{key}'")
    if result["image_id"] not in sizes:
        raise InputError(None, f"{where}: image_id {result['image_id']} is not in the ground "
                               f"truth")
    out = {"id": n + 1, "image_id": result["image_id"], "score": float(result["score"]),
           "category_id": result.get("category_id", 1), "iscrowd": 0}
    if iou_type == "segm" or "bbox" not in result:
        if "segmentation" not in result:
            raise InputError(None, f"{where}: missing key 'segmentation'" if iou_type == "segm"
                             else f"{where}: neither 'bbox' nor 'segmentation'")
        try:
            rle = segmentation_rle(result["segmentation"], *sizes[result["image_id"]])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(None, f"{where}: bad segmentation ({exc})") from exc
        out.update(segmentation=rle, area=float(mask_util.area(rle)),
                   bbox=mask_util.toBbox(rle).tolist())
    if iou_type == "bbox":
        bbox = [float(v) for v in (result.get("bbox") or out["bbox"])]
        out.update(bbox=bbox, area=bbox[2] * bbox[3])
    return out
