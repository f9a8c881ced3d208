"""DID_M, the instantaneous estimator of de Chaisemartin & D'Haultfoeuille (2020, AER), for a 0/1 treatment.

For each pair of consecutive periods (t-1, t), joiners (0 -> 1) are compared with the groups untreated in both
periods and leavers (1 -> 0) with the groups treated in both:

``DID_M = sum_t [ N_{01,t} / N_S (dY_joiners - dY_00) + N_{10,t} / N_S (dY_11 - dY_leavers) ]``,

with ``dY`` the N_gt-weighted mean first difference of each type of group at t, ``N_S`` the number of switchers
for which a comparison group exists. The R packages (DIDmultiplegt) bootstrap its standard error; here it is
analytic: the estimator is ``sum_{g,t} c_gt N_gt dY_gt / N_S`` with coefficients fixed by the treatment path,
and its variance, conditional on the treatment paths, is estimated by summing within clusters the influence
variables ``c_gt N_gt (dY_gt - mean of dY_gt's type at t) / N_S``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from didx._errors import DataError, DesignError
from didx.estimators.dcdh.estimate import fit_covariance
from didx.estimators.dcdh.prep import DcdhData
from didx.inference.dcdh_variance import DcdhScores, Influence


def check_binary(values: np.ndarray, treat: str, func: str, alternative: str) -> None:
    """Raise a :class:`DataError` naming the column and its non-0/1 values."""
    v = np.unique(values[~np.isnan(values)])
    bad = v[~np.isin(v, [0.0, 1.0])]
    if bad.size:
        raise DataError(
            f"{func}: the treatment column {treat!r} must be 0/1 here, but it has the value(s) "
            f"{', '.join(repr(float(b)) for b in bad[:5])}. Fix: recode it as a 0/1 indicator{alternative}."
        )


def did_m(data: DcdhData, *, y: str, unit: str, treat: str, cluster: str | None, weights: str | None,
          result_cls: Any) -> Any:
    """The DID_M estimate with its analytic clustered standard error (see the module docstring)."""
    func = "dcdh"
    check_binary(data.D, treat, func, ", or use dcdh(..., estimator='did_l') for discrete treatments")
    Y, D, W = data.Y, data.D, data.N
    dy = Y[:, 1:] - Y[:, :-1]
    prev, cur = D[:, :-1], D[:, 1:]
    w = np.where(np.isnan(dy) | np.isnan(prev) | np.isnan(cur), 0.0, W[:, 1:])
    types = {k: (prev == a) & (cur == b) & (w > 0) for k, a, b in (("01", 0, 1), ("00", 0, 0), ("11", 1, 1),
                                                                    ("10", 1, 0))}
    n = {k: (w * m).sum(axis=0) for k, m in types.items()}
    plus = (n["01"] > 0) & (n["00"] > 0)
    minus = (n["10"] > 0) & (n["11"] > 0)
    n_s = float((n["01"] * plus).sum() + (n["10"] * minus).sum())
    if n_s == 0:
        raise DesignError(
            f"{func}: DID_M cannot be estimated: no period has both switchers and groups whose treatment "
            f"{treat!r} stays at the switchers' former value. Fix: check the treatment column."
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        coef_c = np.zeros_like(dy)
        coef_c = np.where(types["01"] & plus, 1.0, coef_c)
        coef_c = np.where(types["00"] & plus, -n["01"] / n["00"], coef_c)
        coef_c = np.where(types["11"] & minus, n["10"] / n["11"], coef_c)
        coef_c = np.where(types["10"] & minus, -1.0, coef_c)
        dy0 = np.where(w > 0, dy, 0.0)
        means = np.zeros_like(dy)
        for m in types.values():
            mt = (w * m * dy0).sum(axis=0) / (w * m).sum(axis=0)
            means = np.where(m, mt[None, :], means)
    est = float((coef_c * w * dy0).sum() / n_s)
    infl = ((coef_c * w * (dy0 - means)).sum(axis=1) / n_s)[:, None]
    scores = DcdhScores.build([Influence(fixed=infl[:, 0])], n_groups=infl.shape[0], scale=1.0)
    V, inference, source = fit_covariance(
        func, data.rows, scores, unit=unit, cluster=cluster, label="analytic (conditional on treatment paths)",
        details=("The R package bootstraps DID_M's standard error; this one is analytic.",))
    n_cells = float(((coef_c != 0) & (w > 0)).sum())  # first differences (g, t-1 -> t) used
    n_sw = float(((types["01"] & plus) | (types["10"] & minus)).sum())
    design = (
        ("Estimator", "de Chaisemartin-D'Haultfoeuille DID_M (2020, instantaneous effect)"),
        ("Outcome", y),
        ("Treatment", f"{treat} (0/1, may switch on and off)"),
        ("Control group", "groups whose treatment is the same in t-1 and t (stayers)"),
        ("Reference period", "t - 1 (first differences)"),
        ("Weights", weights or "none"),
    )
    return result_cls(
        estimator="de Chaisemartin-D'Haultfoeuille DID_M", terms=("DID_M",), coef=np.array([est]), vcov_matrix=V,
        headline="DID_M", inference=inference, sample=data.report, design=design,
        term_info={"event_time": np.array([0.0]), "n": np.array([n_cells]), "n_switchers": np.array([n_sw])},
        extras={"reference": (-1.0,), "n_joiners": float((n["01"] * plus).sum()),
                "n_leavers": float((n["10"] * minus).sum())},
        _source=source,
        pre_period_meaning="none: DID_M is the instantaneous effect only (first differences from t - 1), with no "
                           "pre-period coefficient; use estimator='did_l' with placebo= for placebos",
    )
