"""The ``celltrail`` application, assembled from one module per command group."""

from __future__ import annotations

from typing import Annotated

import typer

from celltrail import __version__
from celltrail.cli import batch, demo, draw, models, results, segment, simulate, train
from celltrail.cli.errors import STATE, catch_signals, reports_errors
from celltrail.cli.track import track_command
from celltrail.methods.registry import METHODS, Method
from celltrail.threads import default_threads, set_threads

HELP = "Cell masks, tracks and lineages from 2D time-lapse microscopy."


def _version(value: bool) -> None:
    if value:
        print(f"celltrail {__version__}")
        raise typer.Exit()


def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error "
                                                        "instead of one line.")] = False,
    threads: Annotated[int | None, typer.Option(
        help="Threads a command may use (torch's, and the classical pipeline's workers; batch: "
             "each sequence's). Default: the cores this process may run on, or OMP_NUM_THREADS "
             "where set (batch workers: 1).", show_default=False)] = None,
) -> None:
    """Cell masks, tracks and lineages from 2D time-lapse microscopy."""
    STATE["debug"] = debug
    STATE["threads"] = threads  # as given: batch passes it on to its workers
    set_threads(default_threads() if threads is None else threads)
    catch_signals()


def build_app(methods: dict[str, Method] | None = None) -> typer.Typer:
    """The command line over ``methods`` (default: the registry)."""
    app = typer.Typer(name="celltrail", help=HELP, no_args_is_help=True, add_completion=False)
    app.callback()(reports_errors(main))
    app.command("track")(track_command(METHODS if methods is None else methods))
    app.command("batch")(batch.batch)
    for command in (segment.segment, segment.link):
        app.command()(command)
    app.command("convert")(results.convert)
    app.command("coco")(results.coco)
    app.command("evaluate")(results.evaluate_command)
    app.command("validate")(results.validate)
    app.command("view")(draw.view)
    app.command("report")(draw.report)
    app.command("simulate")(simulate.simulate)
    app.command("models")(models.models)
    app.add_typer(train.train_app(), name="train")
    app.command("demo")(demo.demo)
    return app
