"""Checks of options and columns that build the messages of :mod:`didx._errors`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import TypeVar

from didx._errors import ColumnNotFoundError, InvalidOptionError

T = TypeVar("T")


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' hint, or an empty string when nothing is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=3, cutoff=0.6)
    if not close:
        lowered = {str(c).lower(): str(c) for c in choices}
        if str(value).lower() in lowered:
            close = [lowered[str(value).lower()]]
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def check_option(func: str, name: str, value: T, allowed: Sequence[T]) -> T:
    """Return ``value`` if it is one of ``allowed``; otherwise raise a message naming all choices."""
    if value in allowed:
        return value
    choices = "{" + ", ".join(repr(a) for a in allowed) + "}"
    hint = did_you_mean(str(value), [str(a) for a in allowed]) if isinstance(value, str) else ""
    raise InvalidOptionError(
        f"The {name!r} parameter of {func} must be one of {choices}. Got {value!r} instead.{hint}"
    )


def check_columns(func: str, roles: dict[str, str | Sequence[str] | None], available: Sequence[str]) -> None:
    """Raise :class:`ColumnNotFoundError` for the first role whose column is not in ``available``."""
    have = set(available)
    for role, cols in roles.items():
        if cols is None:
            continue
        for col in [cols] if isinstance(cols, str) else list(cols):
            if not isinstance(col, str):
                raise InvalidOptionError(
                    f"The {role!r} parameter of {func} must name a column (a string). Got {col!r}."
                )
            if col not in have:
                hint = did_you_mean(col, available)
                shown = ", ".join(repr(c) for c in list(available)[:12])
                more = ", ..." if len(available) > 12 else ""
                raise ColumnNotFoundError(
                    f"{func}: column {col!r} given as {role}= is not in the data.{hint} "
                    f"Available columns: {shown}{more}. Fix: pass {role}= the name of an existing column."
                )


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """Normalise a column-or-columns argument to a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def check_conf_level(conf_level: float) -> float:
    if not (isinstance(conf_level, int | float) and 0.0 < float(conf_level) < 1.0):
        raise InvalidOptionError(
            f"conf_level must be a number strictly between 0 and 1 (e.g. 0.95). Got {conf_level!r}."
        )
    return float(conf_level)


def fmt_value(v: object) -> str:
    """A value as users wrote it: numpy scalars unwrapped, whole floats without '.0', strings quoted."""
    item = getattr(v, "item", None)
    if callable(item):
        try:
            v = item()
        except (TypeError, ValueError):
            pass
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, str):
        return repr(v)
    return str(v)
