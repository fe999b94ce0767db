"""``celltrail track``: every method and option comes from the method registry.

The command's signature is built from :mod:`celltrail.methods.registry`: one ``--method``
choice per method, one flag per option (its help and defaults from the options classes; the
flag itself defaults to unset, meaning "the method's default"), and the prompt flags of the
prompt kinds the methods take. Adding a method adds it here without editing this module.
"""

from __future__ import annotations

import enum
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from celltrail.cli.common import (
    INPUTS,
    AllowGaps,
    Channel,
    Interval,
    Overwrite,
    PixelSize,
    Position,
    open_input,
    run_tracker,
    write_result_movie,
)
from celltrail.cli.errors import reports_errors
from celltrail.core.errors import OptionError
from celltrail.io.outputs import check_output, model_input
from celltrail.methods.base import make_options
from celltrail.methods.options import Field
from celltrail.methods.registry import (
    DEFAULT_METHOD,
    METHODS,
    Method,
    check_applies,
    either,
    fields_by_name,
    get_method,
)
from celltrail.summary import summary_lines
from celltrail.viz.movie import MOVIE_FORMATS, MOVIE_SUFFIXES

#: The prompt flags of each prompt kind: name, help. Each names a file or folder.
PROMPT_FLAGS = {
    "boxes": (("boxes", "One box per cell, a CSV or bbox.txt of 'frame,id,x,y,w,h' rows or "
                        "COCO JSON."),
              ("boxes_from_gt", "Prompt with the boxes of the cells of frame 0 of this CTC "
                                "ground truth (NN_GT).")),
    "queries": (("queries_from_gt", "Track the cells of frame 0 of this CTC ground truth "
                                    "(NN_GT) instead of those the detector finds."),),
}
KEYWORD = inspect.Parameter.KEYWORD_ONLY
#: The options that say how to read the input, in :func:`open_input`'s order.
INPUT_OPTIONS = ("allow_gaps", "channel", "position", "pixel_size", "interval")


def choice_type(name: str, choices: tuple[str, ...]) -> type[enum.Enum]:
    """A string enum of ``choices``, so typer checks and lists them."""
    return enum.Enum(f"{name.title().replace('_', '')}Choice",  # type: ignore[return-value]
                     {c: c for c in choices}, type=str)


def describe(entries: list[tuple[Method, Field]]) -> str:
    """An option's help: per group of methods with the same help, the methods, the help and
    each one's default."""
    groups: dict[str, list[tuple[Method, Field]]] = {}
    for method, f in entries:
        groups.setdefault(f.help, []).append((method, f))
    lines = []
    for text, group in groups.items():
        defaults = {_shown(f) for _, f in group}
        default = (f"default: {defaults.pop()}" if len(defaults) == 1 else "default: " +
                   ", ".join(f"{m.name} {_shown(f)}" for m, f in group))
        lines.append(f"{', '.join(m.name for m, _ in group)}: {text} ({default})")
    return " ".join(lines)


def _shown(f: Field) -> str:
    if f.default is None:
        return "required" if f.required else "unset"
    if isinstance(f.default, bool):
        return f"--{'' if f.default else 'no-'}{f.name.replace('_', '-')}"
    return str(f.default)


def option_parameter(name: str, entries: list[tuple[Method, Field]]) -> inspect.Parameter:
    """The typer parameter of the option ``name`` shared by the methods of ``entries``."""
    kind = entries[0][1].type
    choices = tuple(dict.fromkeys(c for _, f in entries for c in f.choices or ()))
    annotation: Any = choice_type(name, choices) if choices else kind
    option = typer.Option(help=describe(entries), show_default=False)
    return inspect.Parameter(name, KEYWORD, default=None,
                             annotation=Annotated[annotation | None, option])


def fixed_parameters(methods: dict[str, Method]) -> list[inspect.Parameter]:
    """The parameters every method shares: input, output, method, frames, movie; and the
    prompt flags of the prompt kinds ``methods`` take."""
    method_type = choice_type("method", tuple(methods))
    lines = "; ".join(f"{m.name}: {m.summary}" for m in methods.values())
    params = [
        ("input", Annotated[Path, typer.Argument(help=INPUTS)], inspect.Parameter.empty),
        ("out", Annotated[Path, typer.Option(help="Result folder (maskTTT.tif, res_track.txt, "
                                                  "tables; boxtrack adds MOT lines, "
                                                  "tracking_results.txt).")],
         inspect.Parameter.empty),
        ("method", Annotated[method_type, typer.Option(help=f"Tracking method ({lines}).")],
         method_type(DEFAULT_METHOD) if DEFAULT_METHOD in methods else next(iter(method_type))),
        ("frame_step", Annotated[int, typer.Option(min=1, help="Track every K-th frame only; "
                                                               "the result holds them as frames "
                                                               "0..n-1.")], 1),
        ("movie", Annotated[Path | None, typer.Option(help="Also write a movie of the result "
                                                           "with track ids and frame numbers, "
                                                           f"{MOVIE_FORMATS}.")],
         None),
        ("allow_gaps", AllowGaps, False),
        ("channel", Channel, None),
        ("position", Position, None),
        ("pixel_size", PixelSize, None),
        ("interval", Interval, None),
        ("overwrite", Overwrite, False),
    ]
    for kind in dict.fromkeys(m.prompts for m in methods.values() if m.prompts):
        owners = either([m.name for m in methods.values() if m.prompts == kind])
        for name, text in PROMPT_FLAGS[kind]:
            params.append((name, Annotated[Path | None, typer.Option(help=f"{owners}: {text}")],
                           None))
    return [inspect.Parameter(n, KEYWORD, annotation=a, default=d) for n, a, d in params]


def prompts_of(method: Method, values: dict[str, Any]) -> Path | None:
    """The prompt file or folder given for ``method``; a prompt flag of another method, or
    two given at once, or none where the method needs them, is refused."""
    given = {name: values[name] for kind in PROMPT_FLAGS for name, _ in PROMPT_FLAGS[kind]
             if values.get(name) is not None}
    own = [name for name, _ in PROMPT_FLAGS.get(method.prompts or "", ())]
    for name in given:
        if name not in own:
            owners = [m.name for m in METHODS.values()
                      if name in [n for n, _ in PROMPT_FLAGS.get(m.prompts or "", ())]]
            raise OptionError(name, f"applies to --method {either(owners)} only")
    flags = " or ".join(f"--{n.replace('_', '-')}" for n in own)
    if len(given) > 1:
        raise OptionError(next(iter(given)), f"give either {flags}, not both")
    if method.needs_prompts and not given:
        raise OptionError("method", f"{method.name} needs its prompts: give {flags}")
    return next(iter(given.values()), None)


def run_track(values: dict[str, Any]) -> None:
    """``celltrail track`` with its parsed ``values``."""
    plain = {k: v.value if isinstance(v, enum.Enum) else v for k, v in values.items()}
    method = get_method(plain.pop("method"))
    names = fields_by_name()
    given = {k: v for k, v in plain.items() if k in names and v is not None}
    check_applies(method, given)
    options = make_options(method.options, None, given)
    prompts = prompts_of(method, plain)
    images = open_input(plain["input"], *(plain[k] for k in INPUT_OPTIONS)).every(
        plain["frame_step"])
    out, movie, overwrite = plain["out"], plain["movie"], plain["overwrite"]
    inputs = (plain["input"], prompts, model_input(getattr(options, "model", None)))
    check_output(out, inputs, folder=True, overwrite=overwrite)
    if movie is not None:
        check_output(movie, (*inputs, out), suffixes=MOVIE_SUFFIXES, overwrite=overwrite)
    tracker = method.load(options)
    read = tracker.read_prompts(prompts, images)  # bad prompts end the run before any work
    result = run_tracker(images, out, lambda store, on_frame: tracker.track(
        images, read, store, on_frame), overwrite=overwrite)
    for line in summary_lines(result.lineage, len(images), result.settings):
        print(line, file=sys.stderr)
    if movie is not None:
        write_result_movie(images, out, movie)


def track_command(methods: dict[str, Method] | None = None) -> Callable[..., None]:
    """The ``track`` command over ``methods`` (default: the registry)."""
    methods = METHODS if methods is None else methods
    params = fixed_parameters(methods)
    params += [option_parameter(name, entries)
               for name, entries in fields_by_name(methods).items()]

    def track(**values: Any) -> None:
        run_track(values)

    track.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    track.__annotations__ = {p.name: p.annotation for p in params}
    track.__doc__ = ("Segment and track cells in INPUT and write a CTC result folder.\n\n"
                     "Options apply to the methods they name; unset ones take the method's "
                     "default.")
    return reports_errors(track)
