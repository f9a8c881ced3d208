"""A plain (fixed-effect) least-squares regression: the engine behind every regression estimator, exposed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from didx._errors import DataError, InvalidOptionError
from didx._frame import factorize, numeric_column, read_columns
from didx._sample import Dropped, SampleReport
from didx._validate import as_list, fmt_value
from didx.estimators.regression.common import RegressionResult, default_spec, make_regression_result
from didx.inference.vcov import SSC, resolve_vcov
from didx.linalg.absorb import FixedEffects
from didx.linalg.ols import fit_ols


@dataclass(frozen=True, eq=False)
class OLSResult(RegressionResult):
    """Result of :func:`ols`."""


def ols(
    data: Any,
    *,
    y: str,
    x: str | Sequence[str],
    fe: str | Sequence[str] | None = None,
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    ssc: SSC | None = None,
) -> OLSResult:
    """Least squares of ``y`` on the numeric columns ``x`` (with an intercept unless ``fe`` absorbs it).

    Categorical controls go in ``fe``: they are absorbed as fixed effects, never expanded into dummies.
    The headline term is the first column of ``x``. Default vcov: CR1 by ``cluster`` if given, else ``"iid"``
    (as ``lm`` and fixest without fixed effects).
    """
    func = "ols"
    xs = as_list(x)
    if not xs:
        raise InvalidOptionError("ols: x= must name at least one regressor column. Fix: pass x='column' or a list.")
    fes = as_list(fe)
    cls = as_list(cluster)
    # read_columns checks every argument (and drops repeated columns) before anything is hashed or joined
    wanted = [y, *xs, *fes, *cls] + ([weights] if weights is not None else [])
    cols = read_columns(data, wanted, func, {"y": y, "x": xs, "fe": fes, "cluster": cls, "weights": weights})
    # from here on the resolved column names (the str of an integer label), not the arguments as given
    roles = cols.roles
    y, xs, fes, cls = roles["y"][0], roles["x"], roles["fe"], roles["cluster"]
    weights = roles["weights"][0] if roles["weights"] else None
    n_in = cols.n_rows
    yv = numeric_column(cols, y, "outcome (y)", func, "Fix: pass a numeric outcome column.")
    X = np.column_stack([numeric_column(cols, c, "regressor (x)", func,
                                        "Fix: encode it as numbers, or absorb it with fe=.") for c in xs])
    keep = np.isfinite(yv) & np.all(np.isfinite(X), axis=1)
    drops = [Dropped("missing outcome or regressor", int((~keep).sum()))]
    w = None
    if weights:
        w = numeric_column(cols, weights, "weights", func, "Fix: pass numeric weights.")
        bad = keep & ~np.isfinite(w)
        drops.append(Dropped(f"missing weight ({weights})", int(bad.sum())))
        keep &= np.isfinite(w)
        neg = keep & (w < 0)
        if neg.any():
            raise DataError(
                f"{func}: the weights column {weights!r} has {int(neg.sum())} negative values "
                f"(e.g. {fmt_value(w[neg][0])}). Fix: weights must be non-negative."
            )
        zero = keep & (w == 0)
        drops.append(Dropped(f"zero weight ({weights})", int(zero.sum())))
        keep &= ~zero
    codes_all = {}
    for c in dict.fromkeys([*fes, *cls]):
        codes_all[c] = factorize(cols.arrays[c], sort=False)[0]
        bad = keep & (codes_all[c] < 0)
        drops.append(Dropped(f"missing {c}", int(bad.sum())))
        keep &= codes_all[c] >= 0
    idx = np.flatnonzero(keep)
    codes = {c: factorize(v[idx], sort=False)[0] for c, v in codes_all.items()}
    wk = None if w is None else w[idx]
    fe_obj = FixedEffects([codes[c] for c in fes], fes, weights=wk) if fes else None
    Xk = X[idx]
    names = list(xs)
    if fe_obj is None:
        Xk = np.column_stack([np.ones(idx.shape[0]), Xk])
        names = ["(Intercept)", *names]
    fit = fit_ols(yv[idx], Xk, names, fe=fe_obj, weights=wk, func=func, protected=[xs[0]])
    spec = resolve_vcov(func, vcov, cls or None, default_spec([], "iid", ssc), ssc)
    sample = SampleReport(n_input_rows=n_in, n_obs=int(idx.shape[0])).with_dropped(*drops)
    design = [("Estimator", "least squares"), ("Outcome", y), ("Regressors", ", ".join(xs)),
              ("Fixed effects", ", ".join(fes) + f" [{fe_obj.method}]" if fe_obj else "none"),
              ("Weights", weights or "none")]
    res: OLSResult = make_regression_result(
        OLSResult, estimator="OLS", fit=fit, headline=xs[0], spec=spec, codes=codes,
        row_index=None if idx.shape[0] == n_in else idx,  # None: row i is input row i (nothing to store)
        fingerprint=cols.fingerprint(y, xs[0]),
        sample=sample, design=design, func=func,
    )
    return res
