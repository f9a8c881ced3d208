"""Progress bars for long work (bootstraps, placebo replications, sensitivity grids), through tqdm.

A bar is shown only when the session is interactive (standard error is a terminal) and the work lasts longer
than ``DELAY`` seconds; ``progress=False`` silences it everywhere. Long loops take a ``progress`` argument and use
:func:`bar` (a counter you ``update``) or :func:`track` (wrapping an iterable)::

    with bar(n_draws, "wild bootstrap", progress=progress, unit="draws") as pb:
        for start in range(0, n_draws, chunk):
            ...
            pb.update(stop - start)

The environment variable ``DIDX_PROGRESS=0`` silences every bar (``=1`` shows them even when standard error is
not a terminal, e.g. in a log or CI).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sized
from typing import Any, TypeVar

from didx._errors import InvalidOptionError

T = TypeVar("T")
DELAY = 0.5  # seconds of work before a bar appears: quick calls never flash one


def check_progress(func: str, progress: object) -> bool:
    """``progress`` as a bool, or a clear error."""
    if not isinstance(progress, bool):
        raise InvalidOptionError(f"{func}: progress must be True (a bar when interactive) or False (silent); got "
                                 f"{progress!r}.")
    return progress


def interactive(progress: bool = True) -> bool:
    """Whether a bar is shown: ``progress`` is True and standard error is a terminal (``DIDX_PROGRESS`` = 0 or 1
    overrides the terminal check)."""
    if not progress:
        return False
    env = os.environ.get("DIDX_PROGRESS", "").strip()
    if env in ("0", "1"):
        return env == "1"
    stream = sys.stderr
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def bar(total: int | None, desc: str, *, progress: bool = True, unit: str = "it") -> Any:
    """A tqdm counter of ``total`` steps (a context manager with ``update(n)``); disabled, it costs nothing."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not interactive(progress), leave=False, delay=DELAY,
                file=sys.stderr, dynamic_ncols=True, unit_scale=True)


def track(iterable: Iterable[T], desc: str, *, total: int | None = None, progress: bool = True,
          unit: str = "it") -> Iterator[T]:
    """The items of ``iterable``, with a bar when interactive."""
    if not interactive(progress):
        yield from iterable
        return
    if total is None and isinstance(iterable, Sized):
        total = len(iterable)
    with bar(total, desc, progress=progress, unit=unit) as pb:
        for item in iterable:
            yield item
            pb.update(1)
