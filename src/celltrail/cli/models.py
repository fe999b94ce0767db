"""``celltrail models``: the models celltrail can load, and what each was trained on."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from celltrail.cli.common import console
from celltrail.cli.errors import reports_errors
from celltrail.models.zoo import ENV, KINDS, available_models, search_path, user_cache


def trained_on(path: object) -> str:
    """The training data a checkpoint names (its ``trained_on`` entry)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)  # type: ignore[arg-type]
    data = state.get("trained_on", []) if isinstance(state, dict) else []
    return ", ".join(map(str, data)) or "not recorded"


@reports_errors
def models(
    kind: Annotated[str | None, typer.Option(help=f"Only models of this kind: "
                                                  f"{', '.join(KINDS)}.")] = None,
) -> None:
    """List every model by kind and name (use the name as --model), where it was found and
    the data it was trained on. Your own models go in $CELLTRAIL_MODELS/KIND/NAME.pt or the
    user cache (KIND/NAME.pt there), and hide a shipped model of the same name."""
    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"must be one of {', '.join(KINDS)}", param_hint="--kind")
    table = Table(title="celltrail models")
    for column in ("kind", "method", "name", "from", "MB", "trained on"):
        table.add_column(column, overflow="fold")
    for info in available_models(kind):
        table.add_row(info.kind, KINDS[info.kind], info.name, info.origin,
                      f"{info.path.stat().st_size / 1e6:.1f}", trained_on(info.path))
    Console().print(table)
    places = ", ".join(f"{origin} {folder}" for origin, folder in search_path())
    console.print(f"looked in: {places} (set {ENV} to add a folder; user cache: "
                  f"{user_cache()})")
