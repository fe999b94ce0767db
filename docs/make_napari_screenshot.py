"""Draw ``docs/napari.png``: the celltrail dock widget in napari after a BoxTrack run.

The bundled sample (a crop of Fluo-N2DH-GOWT1 01) is opened with the plugin's reader, the boxes
of frame 0's ground-truth cells go into a Shapes layer, and BoxTrack (classical backend) runs
from the widget; the picture shows frame 25 with the labels and tracks it added.

Needs ``celltrail[napari]`` and OpenGL: run ``python docs/make_napari_screenshot.py`` from the
repository root on a desktop, or ``xvfb-run -a python docs/make_napari_screenshot.py`` on a
headless machine (Qt's offscreen platform has no OpenGL, so napari cannot draw its canvas).
"""

from __future__ import annotations

import os
import time
from importlib.resources import files
from pathlib import Path

import napari
from npe2 import PluginManager, PluginManifest
from qtpy.QtWidgets import QApplication

from celltrail.io.boxes import boxes_from_gt
from celltrail.napari._widget import TrackWidget, boxes_to_rectangles

SAMPLE = Path(str(files("celltrail") / "sample_data" / "Fluo-N2DH-GOWT1-crop"))
OUT = Path(__file__).with_name("napari.png")
FRAME = 25


def main() -> None:
    """Run the widget on the sample and save the screenshot of the whole window."""
    os.environ.setdefault("NAPARI_APPLICATION_GUI_NOTIFICATION_LEVEL", "error")  # no toasts
    manager = PluginManager.instance()
    if "celltrail" not in manager:  # a checkout not yet reinstalled with the entry point
        manager.register(PluginManifest.from_file(files("celltrail.napari") / "napari.yaml"))
    viewer = napari.Viewer(title="celltrail")
    viewer.window.resize(1400, 860)
    viewer.open(SAMPLE / "01", plugin="celltrail")
    boxes, _ = boxes_from_gt(SAMPLE / "01_GT")
    viewer.add_shapes(boxes_to_rectangles(boxes), shape_type="rectangle", name="cells",
                      features={"id": boxes["id"].to_numpy()}, edge_color="yellow",
                      edge_width=2, face_color="transparent")
    _, widget = viewer.window.add_plugin_dock_widget("celltrail", "Track cells")
    assert isinstance(widget, TrackWidget)
    widget.method.value, widget.backend.value = "boxtrack", "classical"
    widget.run()
    while not widget.run_button.enabled:  # the worker thread is tracking
        QApplication.processEvents()
        time.sleep(0.05)
    if not widget.status.value.startswith("done"):
        raise SystemExit(f"tracking failed: {widget.status.value}")
    viewer.layers["01 boxtrack"].opacity = 0.45
    viewer.layers["01 boxtrack tracks"].tail_length = 15
    viewer.dims.set_current_step(0, FRAME)
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(OUT), canvas_only=False)
    viewer.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
