"""Checks of options and columns that build the messages of :mod:`didx._errors`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar, cast

import numpy as np
import pandas as pd

from didx._errors import ColumnNotFoundError, DataError, InvalidOptionError

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


LIST_ROLES = frozenset({"covariates", "cluster", "fe", "x", "controls", "wtr", "treatment_weights",
                        "first_stage_fe", "first_stage_covariates", "categorical"})
"""Role arguments that may name several columns (a list); every other role names one column."""

OUTCOME_ROLE = "y"


def _kind(value: object) -> str:
    """'a list', 'an int', ... for messages."""
    name = type(value).__name__
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def column_name(func: str, role: str, value: object, available: Sequence[str],
                labels: Sequence[object] = ()) -> str:
    """The column name (``str`` of the frame's label) a role argument refers to, or a message saying what is wrong.

    A string names a column; an integer names a column whose label is that integer (``y=0`` and ``y='0'`` both
    name a column labelled ``0``). Anything else (a list where one column is expected, None, a float, a boolean)
    is an :class:`InvalidOptionError`; a name not in the data a :class:`ColumnNotFoundError` with suggestions.
    """
    if isinstance(value, str):
        name = value
    elif isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        name = str(value)
        if name not in set(available) and not any(not isinstance(lab, str) for lab in labels):
            raise InvalidOptionError(
                f"The {role!r} parameter of {func} must be a column name (a string). Got {value!r} ({_kind(value)}) "
                f"instead, and the data has no column labelled {value!r}. Fix: pass {role}= the name of a column."
            )
    else:
        many = role in LIST_ROLES
        what = "a column name (a string) or a list of column names" if many else "a column name (a string)"
        hint = ""
        if isinstance(value, list | tuple) and len(value) == 1 and isinstance(value[0], str) and not many:
            hint = f" Fix: pass {role}={value[0]!r} (one column, not a list)."
        elif isinstance(value, list | tuple) and not many:
            hint = f" Fix: {role}= takes one column."
        else:
            hint = f" Fix: pass {role}= the name of a column."
        raise InvalidOptionError(
            f"The {role!r} parameter of {func} must be {what}. Got {value!r} ({_kind(value)}) instead.{hint}"
        )
    if name not in set(available):
        hint = did_you_mean(name, available)
        shown = ", ".join(repr(c) for c in list(available)[:12])
        more = ", ..." if len(available) > 12 else ""
        raise ColumnNotFoundError(
            f"{func}: column {name!r} given as {role}= is not in the data.{hint} "
            f"Available columns: {shown}{more}. Fix: pass {role}= the name of an existing column."
        )
    return name


def role_columns(func: str, role: str, value: object) -> list[object]:
    """The column argument(s) of one role as a list (None: none), refusing a list for a one-column role."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray | pd.Index | pd.Series):
        return [value]
    if role not in LIST_ROLES:
        column_name(func, role, value, ())  # raises: a list where one column is expected
    return list(value)


def check_columns(func: str, roles: Mapping[str, object], available: Sequence[str],
                  labels: Sequence[object] = ()) -> dict[str, list[str]]:
    """Check every role's column argument(s) against ``available`` (the data's column names) and return the
    resolved names per role.

    Raises :class:`InvalidOptionError` for an argument that is not a column name (a list for a one-column role,
    a number that is no column label, None for the outcome) and for an outcome that is also given in another
    role (e.g. ``y`` = the unit column: the estimate would be 0 by construction); :class:`ColumnNotFoundError`
    for a name not in the data.
    """
    out: dict[str, list[str]] = {}
    for role, cols in roles.items():
        if cols is None and role == OUTCOME_ROLE:
            raise InvalidOptionError(
                f"The {role!r} parameter of {func} must be a column name (the outcome). Got None instead. "
                f"Fix: pass {role}= the outcome column."
            )
        out[role] = [column_name(func, role, c, available, labels) for c in role_columns(func, role, cols)]
        seen: set[str] = set()
        for name in out[role]:
            if name in seen:
                raise InvalidOptionError(
                    f"{func}: {role}= names the column {name!r} more than once (got {cols!r}). Fix: list each "
                    f"column once."
                )
            seen.add(name)
    outcome = out.get(OUTCOME_ROLE)
    if outcome:
        for role, names in out.items():
            if role != OUTCOME_ROLE and outcome[0] in names:
                raise InvalidOptionError(
                    f"{func}: the outcome y={outcome[0]!r} is also given as {role}=, which makes the estimate 0 "
                    f"(or meaningless) by construction. Fix: pass y= the outcome column."
                )
    return out


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """Normalise a column-or-columns argument to a list (a single non-sequence value, e.g. an integer label,
    becomes a one-element list, to be checked by :func:`check_columns`)."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray | pd.Index | pd.Series):
        return [cast(str, value)]
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


def distinct_at_most_two(codes: np.ndarray) -> int:
    """0, 1 or 2 (meaning "two or more") distinct values of integer codes, in one min/max pass (no sort or hash):
    what :func:`cluster_count_check` needs."""
    c = np.asarray(codes)
    if c.size == 0:
        return 0
    return 1 if c.min() == c.max() else 2


def cluster_count_check(func: str, name: str, G: int) -> None:
    """Fewer than two clusters cannot give a cluster-robust covariance: an error naming the column."""
    if G < 2:
        raise DataError(
            f"{func}: the cluster variable {name!r} has {G} distinct value{'s' if G != 1 else ''} in the estimation "
            f"sample; a cluster-robust covariance needs at least two clusters. Fix: cluster at a finer level, or "
            f"use a heteroskedasticity-robust covariance."
        )
