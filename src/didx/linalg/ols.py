"""Weighted least squares on fixed-effect-demeaned data (Frisch-Waugh-Lovell)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from didx._errors import DesignError
from didx.linalg.absorb import FixedEffects

COLLINEAR_TOL = 1e-10
"""A regressor is collinear if its squared residual on the previous ones is below this share of its centred sum of
squares (with absorbed fixed effects), or of its raw sum of squares (without)."""
FLOOR_TOL = 1e-20
"""... or below this share of its raw sum of squares (rounding noise: a constant, or absorbed by the fixed effects)."""


@dataclass(frozen=True, eq=False)
class OLSFit:
    """Everything later inference needs, so that no step refits.

    ``X`` and ``resid`` are the demeaned regressors and residuals (``y - X b`` after absorbing ``fe``);
    ``bread`` is ``(X' W X)^{-1}``.
    """

    coef: np.ndarray
    names: tuple[str, ...]
    X: np.ndarray
    resid: np.ndarray
    weights: np.ndarray | None
    bread: np.ndarray
    fe: FixedEffects | None
    dropped_collinear: tuple[str, ...]

    @property
    def y_demeaned(self) -> np.ndarray:
        """The outcome after absorbing the fixed effects (``resid + X b``), rebuilt on demand."""
        return self.resid + self.X @ self.coef if self.coef.shape[0] else self.resid

    @property
    def n_obs(self) -> int:
        return int(self.resid.shape[0])

    @property
    def n_coef(self) -> int:
        return int(self.coef.shape[0])

    def scores(self) -> np.ndarray:
        """Per-observation scores ``x_i w_i e_i`` (n x k)."""
        we = self.resid if self.weights is None else self.resid * self.weights
        return self.X * we[:, None]


def _xtwx(X: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    return X.T @ X if w is None else X.T @ (X * w[:, None])


def independent_columns(XtX: np.ndarray, scale: np.ndarray | None = None, tol: float = COLLINEAR_TOL, *,
                        floor: np.ndarray | None = None) -> np.ndarray:
    """Indices of a maximal set of linearly independent columns, in their original order.

    Sequential test: column j is kept if its squared residual on the kept columns before it exceeds ``tol``
    times a reference sum of squares. Without ``floor`` the reference is ``max(scale, diag(XtX))`` (``scale``: the
    sum of squares before the fixed effects were absorbed, so that a regressor absorbed by them is detected).
    With ``floor`` (as :func:`fit_ols` uses it with fixed effects) the reference is ``scale`` itself, the *centred*
    sum of squares, so that a regressor far from zero with little variation is kept; and a column whose residual
    is below ``FLOOR_TOL`` times ``floor`` (its raw sum of squares) is rounding noise, i.e. collinear (a constant,
    or a regressor absorbed by the fixed effects).
    """
    k = XtX.shape[0]
    if floor is None:
        ref = np.diag(XtX) if scale is None else np.maximum(scale, np.diag(XtX))
    else:
        ref = np.diag(XtX) if scale is None else np.asarray(scale, dtype=np.float64)
    keep: list[int] = []
    for j in range(k):
        d = XtX[j, j]
        if d <= 0 or ref[j] <= 0:
            continue
        if keep:
            A = XtX[np.ix_(keep, keep)]
            b = XtX[keep, j]
            coef = np.linalg.lstsq(A, b, rcond=None)[0]
            resid = d - b @ coef
        else:
            resid = d
        if resid > tol * ref[j] and (floor is None or resid > FLOOR_TOL * floor[j]):
            keep.append(j)
    return np.asarray(keep, dtype=np.int64)


def _centred_sums(X: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Centred and raw weighted sums of squares of the columns of ``X`` (a constant column: centred = 0)."""
    wX = X if w is None else X * w[:, None]
    raw = np.einsum("ij,ij->j", X, wX)
    sw = float(X.shape[0]) if w is None else float(w.sum())
    mean = wX.sum(axis=0) / sw if sw > 0 else np.zeros(X.shape[1])
    Xc = X - mean
    centred = np.einsum("ij,ij->j", Xc, Xc if w is None else Xc * w[:, None])
    centred[X.max(axis=0) == X.min(axis=0)] = 0.0
    return centred, raw


def fit_ols(
    y: np.ndarray,
    X: np.ndarray,
    names: Sequence[str],
    *,
    fe: FixedEffects | None = None,
    weights: np.ndarray | None = None,
    func: str = "ols",
    protected: Sequence[str] = (),
) -> OLSFit:
    """Weighted OLS of ``y`` on ``X`` after absorbing ``fe``; collinear regressors are dropped and named.

    ``protected`` names regressors whose removal for collinearity is an error (the treatment effect).
    """
    y = np.asarray(y, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64).reshape(y.shape[0], -1)
    if fe is not None:
        yd = fe.demean(y)
        Xd = fe.demean(X) if X.shape[1] else X
    else:
        yd, Xd = y, X
    XtX = _xtwx(Xd, weights)
    if fe is not None and X.shape[1] and X.shape[0]:
        # fixed effects include a constant: compare what is left of each regressor with its centred variation
        # (a level of 1e6 +- 0.5 is identified), and treat rounding-level leftovers as absorbed
        scale, floor = _centred_sums(X, weights)
        keep = independent_columns(XtX, scale, floor=floor)
    else:
        # no absorbed effects: relative to the raw sums of squares, as the normal equations lose about
        # (level / spread)^2 in precision on a column far from zero
        keep = independent_columns(XtX)
    dropped = tuple(n for j, n in enumerate(names) if j not in set(keep.tolist()))
    lost = [n for n in dropped if n in set(protected)]
    if lost:
        raise DesignError(
            f"{func}: the regressor(s) {', '.join(map(repr, lost))} are collinear with the fixed effects or "
            f"other regressors, so the effect is not identified. Fix: check that treatment varies within units "
            f"and periods (e.g. there are treated and untreated observations in some period)."
        )
    if keep.shape[0] < X.shape[1]:
        Xd = Xd[:, keep]
        XtX = XtX[np.ix_(keep, keep)]
        names = [names[j] for j in keep]
    if Xd.shape[1]:
        bread = sla.inv(XtX, check_finite=False)
        bread = 0.5 * (bread + bread.T)
        Xty = Xd.T @ (yd if weights is None else yd * weights)
        coef = bread @ Xty
        if fe is not None:  # yd is our own buffer: the residuals overwrite it
            resid = yd
            resid -= Xd @ coef
        else:
            resid = yd - Xd @ coef
    else:
        bread = np.zeros((0, 0))
        coef = np.zeros(0)
        resid = yd
    for a in (coef, Xd, resid, bread):
        a.flags.writeable = False  # the fit is shared by with_vcov and the bootstraps: nobody may change it
    return OLSFit(coef=coef, names=tuple(names), X=Xd, resid=resid, weights=weights, bread=bread, fe=fe,
                  dropped_collinear=dropped)
