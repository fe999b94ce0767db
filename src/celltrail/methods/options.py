"""Typed, validated options of a tracking method: each default is defined here, once.

A method declares a frozen dataclass of :class:`Options` whose fields are made with
:func:`option` (a help line, and optionally the allowed choices, a positivity check, or that the
field must be given). The CLI flags, the batch manifest's columns and the napari widget's fields
are derived from these classes; a value out of range raises :class:`OptionError` naming the
field (the CLI turns the field into its flag, a batch into its column).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from celltrail.core.errors import OptionError

#: What an option's choices are: fixed names, or a function listing them (looked up lazily).
Choices = Sequence[str] | Callable[[], Sequence[str]] | None


def option(default: object, help: str, *, choices: Choices = None, positive: bool = False,
           minimum: float | None = None, required: Callable[[], str] | None = None) -> Any:
    """A field of an options class: its ``default`` and ``help``; ``choices`` allowed values;
    ``positive`` a finite number above 0 (or None); ``minimum`` the least value allowed;
    ``required`` (for a default of None that must be replaced) gives the problem to report
    when it is not."""
    return field(default=default, metadata={"help": help, "choices": choices,
                                            "positive": positive, "minimum": minimum,
                                            "required": required})


@dataclass(frozen=True)
class Field:
    """One option as the front ends see it: name, type (``str``, ``float``, ``int``, ``bool``;
    ``optional`` when None is allowed), default, help, choices, and whether it must be given."""

    name: str
    type: type
    optional: bool
    default: object
    help: str
    choices: tuple[str, ...] | None
    required: bool = False


@dataclass(frozen=True)
class Options:
    """Base of every method's options; subclasses are frozen dataclasses of :func:`option`."""

    #: The method these options belong to (for messages).
    method: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in self.fields():
            check_value(f, getattr(self, f.name), dataclasses.fields(self))

    @classmethod
    def fields(cls) -> tuple[Field, ...]:
        """The options, described for front ends."""
        hints = typing.get_type_hints(cls)
        found = []
        for f in dataclasses.fields(cls):
            kind, optional = _base_type(hints[f.name])
            choices = f.metadata.get("choices")
            found.append(Field(f.name, kind, optional, f.default, f.metadata.get("help", ""),
                               None if choices is None else tuple(_listed(choices)),
                               f.metadata.get("required") is not None))
        return tuple(found)

    def changed(self) -> dict[str, object]:
        """The options set to something other than their default."""
        return {f.name: getattr(self, f.name) for f in self.fields()
                if getattr(self, f.name) != f.default}


def _listed(choices: Choices) -> Sequence[str]:
    return choices() if callable(choices) else choices  # type: ignore[return-value]


def _base_type(hint: object) -> tuple[type, bool]:
    """``(type, optional)`` of a field's annotation, e.g. ``float | None`` → ``(float, True)``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if args:
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False  # type: ignore[return-value]


def check_value(f: Field, value: object, raw: tuple[dataclasses.Field, ...]) -> None:
    """Raise :class:`OptionError` naming ``f`` when ``value`` is not one it accepts."""
    meta = next(r.metadata for r in raw if r.name == f.name)
    if value is None:
        if meta.get("required"):
            raise OptionError(f.name, meta["required"]())
        if not f.optional:
            raise OptionError(f.name, "must be given")
        return
    if f.type is bool and not isinstance(value, bool):
        raise OptionError(f.name, f"must be true or false, not {value!r}")
    if f.type in (int, float) and (isinstance(value, bool)
                                   or not isinstance(value, int | float)):
        raise OptionError(f.name, f"must be a number, not {value!r}")
    if f.type is int and not float(value).is_integer():  # type: ignore[arg-type]
        raise OptionError(f.name, f"must be a whole number, not {value!r}")
    if meta.get("positive") and not (math.isfinite(value) and value > 0):  # type: ignore[arg-type]
        raise OptionError(f.name, f"must be a positive finite number, not {value:g}")
    if meta.get("minimum") is not None and value < meta["minimum"]:  # type: ignore[operator]
        raise OptionError(f.name, f"must be at least {meta['minimum']:g}, not {value!r}")
    if f.choices is not None and value not in f.choices:
        raise OptionError(f.name, f"must be one of {', '.join(f.choices)}, not {value!r}")
