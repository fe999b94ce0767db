"""How well a CellBoxify model does on annotated images it was not trained on: the score
``celltrail train cellboxify`` prints for the model it started from and the one it wrote."""

from __future__ import annotations

from pathlib import Path

from celltrail.io.coco import load_coco, read_coco
from celltrail.methods.cellboxify import CellBoxifySegmenter, coco_results
from celltrail.metrics.coco import coco_ap


def held_out_ids(coco: str | Path, count: int) -> list[int]:
    """The ids of the last ``count`` images of a COCO dataset (in file order), which training
    leaves out; none when fewer than ``count + 1`` images hold cells to train on."""
    data = load_coco(coco)
    annotated = {a["image_id"] for a in data["annotations"]}
    ids = [image["id"] for image in data["images"] if image["id"] in annotated]
    return ids[-count:] if 0 < count < len(ids) else []


def held_out_subset(coco: str | Path, ids: list[int]) -> dict:
    """The COCO dataset restricted to the images ``ids`` and their annotations."""
    data = load_coco(coco)
    keep = set(ids)
    return {**data, "images": [i for i in data["images"] if i["id"] in keep],
            "annotations": [a for a in data["annotations"] if a["image_id"] in keep]}


def held_out_ap(model: str | Path, coco: str | Path, images_dir: str | Path,
                ids: list[int]) -> tuple[str, float | None]:
    """Mask AP of ``model`` on the images ``ids`` (box AP where the dataset has boxes only),
    with its name (``"mask AP"`` or ``"box AP"``)."""
    segmenter = CellBoxifySegmenter(model)
    truth = held_out_subset(coco, ids)
    kind = "segm" if all("segmentation" in a for a in truth["annotations"]) else "bbox"
    results = []
    for entry in read_coco(coco, images_dir):
        if entry.image_id in ids:
            image = entry.load()
            results += coco_results(segmenter.detect(image), entry.image_id, image.shape[:2])
    return ("mask AP" if kind == "segm" else "box AP"), coco_ap(truth, results, kind)["AP"]
