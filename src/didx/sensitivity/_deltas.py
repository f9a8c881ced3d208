"""The restriction sets ``Delta = {delta : A delta <= d}`` of R ``HonestDiD`` and the default test grids.

Columns of every ``A``: the ``n_pre`` pre-period coefficients, then the ``n_post`` post-period ones (the reference
period, normalised to zero, is dropped), as HonestDiD's ``.create_A_*`` functions with ``dropZero = TRUE``.

* ``SD`` (``.create_A_SD``): ``|second differences of delta| <= M`` (the reference included as a zero);
* ``SDB`` / ``SDM``: ``SD`` plus a sign restriction on the post periods (``.create_A_B``) or monotonicity of all
  periods (``.create_A_M``);
* ``RM`` (``.create_A_RM``): polyhedra ``(s, sign)``: every first difference is at most (``Mbar`` times, in the post
  periods) the pre-period first difference ``s`` with that sign; ``RMB``/``RMM`` add the sign/monotone rows;
* ``SDRM`` (``.create_A_SDRM``): the same with second differences ("deviation from a linear trend"); ``SDRMB`` /
  ``SDRMM`` add the sign/monotone rows.

The grid of ``theta`` values each test is inverted on (HonestDiD's ``grid.lb``/``grid.ub``): ``[-20, 20]`` standard
deviations of the target for the relative-magnitude family; for the smoothness family the identified set under
parallel trends (``trueBeta = 0``) widened by 20 standard deviations (ARP, C-LF), or the FLCI at level
``kappa = alpha / 10`` (C-F hybrid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from didx._errors import DesignError


def second_diff_rows(n_pre: int, n_post: int) -> np.ndarray:
    """``Atilde`` of ``.create_A_SD``: rows ``(1, -2, 1)`` over ``n + 1`` periods (reference at column ``n_pre``)."""
    n = n_pre + n_post
    out = np.zeros((n - 1, n + 1))
    r = np.arange(n - 1)
    out[r, r], out[r, r + 1], out[r, r + 2] = 1.0, -2.0, 1.0
    return out


def first_diff_rows(n_pre: int, n_post: int) -> np.ndarray:
    n = n_pre + n_post
    out = np.zeros((n, n + 1))
    r = np.arange(n)
    out[r, r], out[r, r + 1] = -1.0, 1.0
    return out


def sd_matrix(n_pre: int, n_post: int) -> np.ndarray:
    at = np.delete(second_diff_rows(n_pre, n_post), n_pre, axis=1)
    return np.vstack([at, -at])


def bias_rows(n_pre: int, n_post: int, sign: str) -> np.ndarray:
    """``.create_A_B``: ``-delta_post <= 0`` (positive bias) or ``delta_post <= 0`` (negative)."""
    rows = -np.eye(n_pre + n_post)[n_pre:]
    return rows if sign == "positive" else -rows


def monotone_rows(n_pre: int, n_post: int, direction: str) -> np.ndarray:
    """``.create_A_M`` (all periods): ``delta`` weakly increasing (or decreasing) through the reference's zero.

    With one pre-period HonestDiD's loop ``for (r in 1:(numPrePeriods - 1))`` also runs for ``r = 1`` and leaves
    a stray ``-1`` in the first row; didx writes the restriction as documented (``delta_{-1} <= 0``)."""
    n = n_pre + n_post
    A = np.zeros((n, n))
    for r in range(n_pre - 1):
        A[r, r], A[r, r + 1] = 1.0, -1.0
    A[n_pre - 1, n_pre - 1] = 1.0
    A[n_pre, n_pre] = -1.0
    for r in range(n_pre + 1, n):
        A[r, r - 1], A[r, r] = 1.0, -1.0
    return A if direction == "increasing" else -A


def _relative_rows(diffs: np.ndarray, v: np.ndarray, n_bound_pre: int, n_post: int, mbar: float,
                   n_pre: int) -> np.ndarray:
    a_ub = np.vstack([np.tile(v, (n_bound_pre, 1)), np.tile(mbar * v, (n_post, 1))])
    A = np.vstack([diffs - a_ub, -diffs - a_ub])
    A = A[(A * A).sum(axis=1) > 1e-10]
    return np.delete(A, n_pre, axis=1)


def rm_matrix(n_pre: int, n_post: int, mbar: float, s: int, positive: bool) -> np.ndarray:
    """``.create_A_RM``: pre-period first difference ``s`` (``s = 0``: reference minus the last pre period) with
    the given sign is the largest."""
    v = np.zeros(n_pre + n_post + 1)
    v[n_pre + s - 1], v[n_pre + s] = -1.0, 1.0
    return _relative_rows(first_diff_rows(n_pre, n_post), v if positive else -v, n_pre, n_post, mbar, n_pre)


def sdrm_matrix(n_pre: int, n_post: int, mbar: float, s: int, positive: bool) -> np.ndarray:
    """``.create_A_SDRM``: pre-period second difference ``s`` (``s = 0``: the one ending at the reference) with
    the given sign is the largest."""
    v = np.zeros(n_pre + n_post + 1)
    v[n_pre + s - 2], v[n_pre + s - 1], v[n_pre + s] = 1.0, -2.0, 1.0
    return _relative_rows(second_diff_rows(n_pre, n_post), v if positive else -v, n_pre - 1, n_post, mbar, n_pre)


@dataclass(frozen=True)
class Restriction:
    """One HonestDiD ``Delta``: its family (``"SD"``, ``"RM"``, ``"SDRM"``), optional sign / shape rows, and the
    name HonestDiD gives it (``DeltaSDPB``, ``DeltaRMI``, ...)."""

    family: str
    bias_sign: str | None = None
    monotonicity: str | None = None

    @property
    def name(self) -> str:
        suffix = ""
        if self.bias_sign is not None:
            suffix = "PB" if self.bias_sign == "positive" else "NB"
        elif self.monotonicity is not None:
            suffix = "I" if self.monotonicity == "increasing" else "D"
        return f"Delta{self.family}{suffix}"

    def extra_rows(self, n_pre: int, n_post: int) -> np.ndarray:
        if self.bias_sign is not None:
            return bias_rows(n_pre, n_post, self.bias_sign)
        if self.monotonicity is not None:
            return monotone_rows(n_pre, n_post, self.monotonicity)
        return np.zeros((0, n_pre + n_post))

    def polyhedra(self, n_pre: int, n_post: int, m: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """The ``(A, d)`` whose union is ``Delta`` (one for SD; ``2 n_pre`` for RM, ``2 (n_pre - 1)`` for SDRM,
        in HonestDiD's order ``s = min_s..0``, each ``+`` then ``-``)."""
        extra = self.extra_rows(n_pre, n_post)
        if self.family == "SD":
            A = sd_matrix(n_pre, n_post)
            return [(np.vstack([A, extra]), np.concatenate([np.full(A.shape[0], m), np.zeros(extra.shape[0])]))]
        build, first = (rm_matrix, -(n_pre - 1)) if self.family == "RM" else (sdrm_matrix, -(n_pre - 2))
        out = []
        for s in range(first, 1):
            for positive in (True, False):
                A = np.vstack([build(n_pre, n_post, m, s, positive), extra])
                out.append((A, np.zeros(A.shape[0])))
        return out


def _lp_bounds(c: np.ndarray, A: np.ndarray, d: np.ndarray, n_pre: int) -> tuple[float, float] | None:
    """min and max of ``c' delta`` s.t. ``A delta <= d``, ``delta_pre = 0`` (None if either LP fails)."""
    n = A.shape[1]
    eq = np.eye(n)[:n_pre]
    out = []
    for sign in (1.0, -1.0):
        res = optimize.linprog(sign * c, A_ub=A, b_ub=d, A_eq=eq, b_eq=np.zeros(n_pre), bounds=(None, None),
                               method="highs")
        if res.status != 0 or res.fun is None:
            return None
        out.append(sign * float(res.fun))
    return out[0], out[1]


def id_set_parallel_trends(restr: Restriction, n_pre: int, l_vec: np.ndarray, m: float) -> tuple[float, float]:
    """HonestDiD's ``.compute_IDset_Delta*`` at ``trueBeta = 0``: ``theta = -l' delta_post`` over ``Delta`` with
    ``delta_pre = 0`` (``[0, 0]`` when the solver fails, as HonestDiD)."""
    n_post = l_vec.size
    c = np.concatenate([np.zeros(n_pre), l_vec])
    lo_all, hi_all = np.inf, -np.inf
    for A, d in restr.polyhedra(n_pre, n_post, m):
        res = _lp_bounds(c, A, d, n_pre)
        lo, hi = (0.0, 0.0) if res is None else (-res[1], -res[0])
        lo_all, hi_all = min(lo_all, lo), max(hi_all, hi)
    return lo_all, hi_all


def post_rows(A: np.ndarray, n_pre: int) -> np.ndarray:
    """Rows of ``A`` that involve a post period (HonestDiD's ``postPeriodMomentsOnly``)."""
    return np.flatnonzero(np.any(A[:, n_pre:] != 0.0, axis=1))


def check_restriction(restr: Restriction, n_pre: int, func: str) -> None:
    if restr.family == "SDRM" and n_pre < 2:
        raise DesignError(
            f"{func}(): the 'deviation from a linear trend' bound (Delta^SDRM) compares post-period second "
            f"differences with pre-period ones, which need at least 2 pre-periods besides the reference; there "
            f"is {n_pre}. Fix: estimate more leads, or use bound='deviation'."
        )
