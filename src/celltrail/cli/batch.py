"""``celltrail batch``: many sequences in parallel on a dask cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from celltrail.cli.common import (
    Overwrite,
    batch_table,
    console,
    progress_bar,
)
from celltrail.cli.errors import STATE, reports_errors
from celltrail.io.outputs import check_output
from celltrail.io.tables import write_table


@reports_errors
def batch(
    manifest: Annotated[Path, typer.Argument(help="CSV, one sequence per row: columns input,out "
                                                  "and optionally method, preset, diameter, "
                                                  "frame_step, boxes, boxes_from_gt, "
                                                  "box_frame_base, backend, model (as for track;"
                                                  " paths relative to the manifest's folder).")],
    scheduler: Annotated[str | None, typer.Option(help="A running dask scheduler, "
                                                       "tcp://HOST:PORT (e.g. of a SLURM "
                                                       "cluster); default: a local one.")]
    = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes of the local cluster, "
                                                     "one sequence each at a time.")] = 2,
    summary: Annotated[Path | None, typer.Option(help="Also save the summary table (.csv or "
                                                      ".parquet).")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Track every sequence of MANIFEST in parallel on a dask cluster.

    Outputs are those of `celltrail track`, written atomically: run the same manifest again after
    an interruption and the finished sequences are skipped. Exit status 1 if any sequence failed.
    """
    from celltrail.batch import read_manifest, run_batch  # here: keeps `celltrail --help` fast

    jobs = read_manifest(manifest)
    if summary is not None:
        check_output(summary, (manifest, *(p for job in jobs for p in job.inputs()),
                               *(job.out for job in jobs)),
                     suffixes=(".csv", ".parquet"), overwrite=overwrite)
    with progress_bar(len(jobs), "sequences") as on_done:
        table = run_batch(manifest, scheduler=scheduler, workers=workers, overwrite=overwrite,
                          threads=STATE["threads"],
                          progress=lambda done, _: on_done(done - 1))
    Console().print(batch_table(table))
    if summary is not None:
        write_table(table, summary)
        console.print(f"saved {summary}")
    counts = table["status"].value_counts()
    console.print(", ".join(f"{counts.get(s, 0)} {s}" for s in ("done", "skipped", "failed")))
    if counts.get("failed", 0):
        raise typer.Exit(1)
