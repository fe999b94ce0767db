"""The ``celltrail`` command line: track, batch, segment, link, convert, coco, evaluate,
validate, view, report, simulate, models, train, demo (one module per command group)."""

from celltrail.cli.app import build_app

#: The application the ``celltrail`` script runs.
app = build_app()

__all__ = ["app", "build_app"]
