"""Which HonestDiD restriction and method an ``honest_did`` call means, and the interval for one bound.

HonestDiD's defaults (``createSensitivityResults`` for smoothness, ``createSensitivityResults_relativeMagnitudes``
for relative magnitudes): the FLCI for plain ``Delta^SD``; the conditional-FLCI hybrid ("C-F") for ``Delta^SD``
with a sign or monotonicity restriction; the conditional least-favorable hybrid ("C-LF") for every relative-
magnitude set (``Delta^RM``, ``Delta^SDRM`` and their sign / monotone versions).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from didx._errors import InvalidOptionError
from didx.sensitivity._arp import Hybrid, NoNuisance, Polyhedron, prepare_lf, union_interval
from didx.sensitivity._deltas import Restriction, check_restriction, id_set_parallel_trends, post_rows
from didx.sensitivity._flci import FUNC, _r_normal_draws, flci, flci_estimator

CI_CHOICES = (None, "flci", "c-lf", "arp", "hybrid")
#: HonestDiD's method names
METHOD_NAME = {"FLCI": "FLCI", "ARP": "Conditional", "FLCI-hybrid": "C-F", "LF": "C-LF"}


@dataclass(frozen=True)
class Method:
    """A resolved call: the restriction set, the test (``"FLCI"``, ``"ARP"``, ``"FLCI-hybrid"``, ``"LF"``), the
    grid (points, optional user bounds) and notes for the summary."""

    restr: Restriction
    kind: str
    grid_points: int
    grid_bounds: tuple[float, float] | None
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return METHOD_NAME[self.kind]


def resolve(restriction: str, ci: str | None, bias_sign: str | None, monotonicity: str | None, bound: str | None,
            grid_points: int, grid_bounds: tuple[float, float] | None) -> Method:
    if ci not in CI_CHOICES:
        raise InvalidOptionError(
            f"{FUNC}(): ci={ci!r} is not known. Fix: ci=None (HonestDiD's default for the restriction), 'flci', "
            f"'c-lf', 'arp' or 'hybrid'."
        )
    for name, value, allowed in (("bias_sign", bias_sign, ("positive", "negative")),
                                 ("monotonicity", monotonicity, ("increasing", "decreasing"))):
        if value is not None and value not in allowed:
            raise InvalidOptionError(f"{FUNC}(): {name}={value!r} is not known. Fix: {name}=None, "
                                     f"{allowed[0]!r} or {allowed[1]!r}.")
    if bias_sign is not None and monotonicity is not None:
        raise InvalidOptionError(
            f"{FUNC}(): pass bias_sign or monotonicity, not both (HonestDiD: 'select either a shape restriction "
            f"or sign restriction (not both)'). Fix: drop one of them."
        )
    if bound not in (None, "deviation", "deviation_from_linear"):
        raise InvalidOptionError(f"{FUNC}(): bound={bound!r} is not known. Fix: bound='deviation' (deviation "
                                 f"from parallel trends) or 'deviation_from_linear' (from a linear trend).")
    if restriction == "smoothness" and bound is not None:
        raise InvalidOptionError(
            f"{FUNC}(): bound= applies to relative magnitudes only; got bound={bound!r} with "
            f"restriction='smoothness'. Fix: drop bound=, or use restriction='relative_magnitude'."
        )
    if restriction == "combined" and bound == "deviation":
        raise InvalidOptionError(
            f"{FUNC}(): restriction='combined' is Delta^SDRM, the relative-magnitude bound on deviations from a "
            f"linear trend; bound='deviation' contradicts it. Fix: drop bound=, or use "
            f"restriction='relative_magnitude', bound='deviation'."
        )
    if not isinstance(grid_points, int | np.integer) or isinstance(grid_points, bool) or grid_points < 2:
        raise InvalidOptionError(f"{FUNC}(): grid_points must be an integer >= 2; got {grid_points!r}. Fix: e.g. "
                                 f"grid_points=1000 (HonestDiD's default).")
    if grid_bounds is not None:
        gb = tuple(float(v) for v in np.asarray(grid_bounds, dtype=float).ravel())
        if len(gb) != 2 or not all(np.isfinite(gb)) or not gb[0] < gb[1]:
            raise InvalidOptionError(f"{FUNC}(): grid_bounds must be two finite numbers (low, high), low < high; "
                                     f"got {grid_bounds!r}. Fix: e.g. grid_bounds=(-0.1, 0.2), or None.")
        grid_bounds = (gb[0], gb[1])
    family = ("SD" if restriction == "smoothness" else
              "SDRM" if restriction == "combined" or bound == "deviation_from_linear" else "RM")
    restr = Restriction(family, bias_sign, monotonicity)
    notes: list[str] = []
    if family == "SD":
        plain = bias_sign is None and monotonicity is None
        kind = {None: "FLCI" if plain else "FLCI-hybrid", "flci": "FLCI", "arp": "ARP", "hybrid": "FLCI-hybrid",
                "c-lf": "LF"}[ci]
        if kind == "FLCI" and not plain:
            text = (f"ci='flci' ignores the {'sign' if bias_sign else 'monotonicity'} restriction (the FLCI is "
                    f"built for Delta^SD alone; HonestDiD warns the same): the interval is the Delta^SD FLCI. "
                    f"Fix: ci=None or 'hybrid' (C-F) uses it.")
            warnings.warn(f"{FUNC}(): {text}", UserWarning, stacklevel=3)
            notes.append(text)
    else:
        if ci == "flci":
            raise InvalidOptionError(
                f"{FUNC}(): ci='flci' is not available for relative magnitudes (HonestDiD: 'method must be either "
                f"NULL, Conditional or C-LF'); the FLCI needs the smoothness restriction. Fix: ci=None or "
                f"'c-lf'/'hybrid' (C-LF, the default), or 'arp' (Conditional)."
            )
        kind = "ARP" if ci == "arp" else "LF"
    return Method(restr, kind, int(grid_points), grid_bounds, tuple(notes))


def _grid_bounds(meth: Method, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, m: float,
                 hyb: Hybrid, beta: np.ndarray) -> tuple[float, float]:
    """HonestDiD's default grid (see ``didx.sensitivity._deltas``)."""
    restr = meth.restr
    sd_theta = float(np.sqrt(l_vec @ sigma[n_pre:, n_pre:] @ l_vec))
    if meth.grid_bounds is not None:
        # HonestDiD's computeConditionalCS_DeltaSDM (C-F, several post periods) overwrites user bounds with the
        # FLCI's; didx uses the bounds the user passed
        return meth.grid_bounds
    if hyb.kind == "FLCI" and restr.family == "SD":  # HonestDiD (C-F): the FLCI at level kappa
        assert hyb.flci_l is not None
        center = float(hyb.flci_l @ beta)
        return center - hyb.flci_half, center + hyb.flci_half
    if restr.family != "SD":
        return -20.0 * sd_theta, 20.0 * sd_theta
    lo, hi = id_set_parallel_trends(restr, n_pre, l_vec, m)
    if restr.bias_sign == "negative" and l_vec.size > 1:  # HonestDiD's computeConditionalCS_DeltaSDB flips it
        lo, hi = -hi, -lo
    return lo - 20.0 * sd_theta, hi + 20.0 * sd_theta


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    grid: tuple[float, float]
    open_end: bool  # the interval reaches an end of the grid (HonestDiD warns "CI is open at one of the endpoints")
    tests: int  # second-stage tests run


def interval(meth: Method, beta: np.ndarray, sigma: np.ndarray, n_pre: int, l_vec: np.ndarray, m: float,
             alpha: float) -> Interval:
    """The robust interval for one ``M`` (``Mbar``)."""
    if meth.kind == "FLCI":
        lo, hi = flci(beta, sigma, n_pre, l_vec, m, alpha)
        return Interval(lo, hi, (lo, hi), False, 0)
    check_restriction(meth.restr, n_pre, FUNC)
    kappa = alpha / 10.0
    draws = _r_normal_draws(0, 10**6)
    if meth.kind == "FLCI-hybrid":
        vec, half = flci_estimator(sigma, n_pre, l_vec, m, kappa)
        hyb = Hybrid("FLCI", kappa, vec, half)
    else:
        hyb = Hybrid(meth.kind, kappa)
    lb, ub = _grid_bounds(meth, sigma, n_pre, l_vec, m, hyb, beta)
    grid = np.linspace(lb, ub, meth.grid_points)
    polys: list[Polyhedron | NoNuisance] = []
    for A, d in meth.restr.polyhedra(n_pre, l_vec.size, m):
        if l_vec.size == 1:
            if meth.restr.family != "SD":  # the relative-magnitude family keeps the rows with the post period
                keep = A[:, -1] != 0.0
                A, d = A[keep], d[keep]
            polys.append(NoNuisance(beta, sigma, n_pre, l_vec, A, d, grid, alpha, hyb, draws))
        else:
            polys.append(Polyhedron(beta, sigma, n_pre, l_vec, A, d, post_rows(A, n_pre), grid, alpha, hyb, draws))
    prepare_lf([p for p in polys if isinstance(p, Polyhedron)], kappa)
    i_lo, i_hi, tests = union_interval(polys, grid.size)
    if i_lo < 0:
        return Interval(float("nan"), float("nan"), (lb, ub), False, tests)
    open_end = meth.kind != "FLCI-hybrid" and (i_lo == 0 or i_hi == grid.size - 1)
    return Interval(float(grid[i_lo]), float(grid[i_hi]), (lb, ub), open_end, tests)
