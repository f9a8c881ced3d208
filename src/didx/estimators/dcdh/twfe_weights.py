"""The TWFE coefficient as a weighted sum of the treated cells' effects (de Chaisemartin & D'Haultfoeuille 2020).

With a 0/1 treatment and the regression ``Y_gt = a_g + l_t + b D_gt + e_gt`` on group x period cells (weights
``N_gt``), let ``eps_gt`` be the residual of ``D_gt`` on the group and period effects. Then (Theorem 1)

``b = sum_{D_gt = 1} W_gt Delta_gt`` under parallel trends, with ``W_gt = N_gt eps_gt / sum_{D=1} N_gt eps_gt``,

where ``Delta_gt`` is the cell's treatment effect. The weights sum to one and some can be negative; the
sensitivity measure ``sigma_fe = |b| / sd(w)`` (with ``w_gt = W_gt N_1 / N_gt``, ``sd`` its N-weighted standard
deviation among treated cells) is the smallest standard deviation of the cell effects compatible with a true
ATT of zero (their Corollary 1). R: ``TwoWayFEWeights::twowayfeweights(type = "feTR")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import DesignError
from didx._sample import SampleReport
from didx.estimators.dcdh.didm import check_binary
from didx.estimators.dcdh.prep import prepare
from didx.linalg.absorb import FixedEffects


@dataclass(frozen=True, eq=False)
class TWFEWeights:
    """Result of :func:`twfe_weights`: one weight per treated cell and the summary counts."""

    table: pd.DataFrame  # unit, time, weight (sums to 1), w (= weight * N_1 / N_gt); read via .weights
    beta: float  # the TWFE coefficient
    n_treated_cells: int
    n_positive: int
    n_negative: int
    sum_positive: float
    sum_negative: float
    sigma_fe: float
    sample: SampleReport | None = None  # rows dropped, cells kept with weight 0

    @property
    def weights(self) -> pd.DataFrame:
        """One row per treated cell: unit, time, ``weight`` (sums to one) and ``w = weight * N_1 / N_gt`` (a
        copy: the result cannot be changed through it)."""
        return self.table.copy()

    def summary(self) -> str:
        return "\n".join([
            "didx · de Chaisemartin-D'Haultfoeuille weights of the TWFE coefficient (feTR)",
            f"  TWFE coefficient (beta_fe): {self.beta:.6g}",
            f"  Treated (g, t) cells: {self.n_treated_cells}",
            f"  Positive weights: {self.n_positive}, summing to {self.sum_positive:.6g}",
            f"  Negative weights: {self.n_negative}, summing to {self.sum_negative:.6g}",
            f"  sigma_fe (min. sd of cell effects compatible with ATT = 0): {self.sigma_fe:.6g}",
            *(["Sample", *("  " + line for line in self.sample.lines())] if self.sample is not None else []),
        ])

    def __str__(self) -> str:
        return self.summary()


def twfe_weights(data: Any, *, y: str, unit: str, time: str, treat: str,
                 weights: str | None = None) -> TWFEWeights:
    """Weights of the treated cells in the two-way fixed-effects coefficient (see the module docstring).

    Parameters
    ----------
    y, unit, time, treat : outcome, unit (the paper's *group*), period and 0/1 treatment columns (one row per
        unit and period).
    weights : cell weights ``N_gt`` (default 1 per cell).

    Reference: de Chaisemartin & D'Haultfoeuille (2020), "Two-way fixed effects estimators with heterogeneous
    treatment effects", AER 110(9), Theorem 1 and Corollary 1.
    """
    func = "twfe_weights"
    d = prepare(data, func=func, y=y, unit=unit, time=time, treat=treat, weights=weights, cluster=None, raw=True)
    check_binary(d.D, treat, func, "")
    obs = ~np.isnan(d.Y) & ~np.isnan(d.D) & (d.N > 0)
    gi, ti = np.nonzero(obs)
    Dv, Yv, Nv = d.D[gi, ti], d.Y[gi, ti], d.N[gi, ti]
    if not (Dv == 1).any() or not (Dv == 0).any():
        raise DesignError(f"{func}: {treat!r} must have both treated and untreated cells. Fix: check the column.")
    fe = FixedEffects([gi, ti], [unit, time], weights=Nv)
    eps = fe.demean(Dv[:, None])[:, 0]
    tr = Dv == 1
    n1 = float(Nv[tr].sum())
    denom = float((Nv * eps * Dv).sum())
    if abs(denom) < 1e-12 * max(n1, 1.0):
        raise DesignError(f"{func}: {treat!r} is collinear with the group and period effects; the TWFE "
                          f"coefficient is not identified. Fix: check that treatment timing varies.")
    W = Nv[tr] * eps[tr] / denom
    w = W * n1 / Nv[tr]
    beta = float((Nv * eps * Yv).sum() / denom)
    sd_w = float(np.sqrt(np.sum(Nv[tr] / n1 * (w - 1.0) ** 2)))
    table = pd.DataFrame({unit: d.group_labels[gi[tr]], time: d.period_labels[ti[tr]], "weight": W, "w": w})
    return TWFEWeights(
        table=table.reset_index(drop=True), beta=beta, n_treated_cells=int(tr.sum()),
        n_positive=int((W > 0).sum()), n_negative=int((W < 0).sum()), sum_positive=float(W[W > 0].sum()),
        sum_negative=float(W[W < 0].sum()), sigma_fe=abs(beta) / sd_w if sd_w > 0 else np.inf,
        sample=d.report,
    )
