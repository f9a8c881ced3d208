"""de Chaisemartin & D'Haultfoeuille estimators: DID_l event study (2024), DID_M (2020) and TWFE weights.

* :func:`dcdh` -- the dynamic effects ``DID_l`` of de Chaisemartin & D'Haultfoeuille (2024, "Difference-in-
  differences estimators of intertemporal treatment effects", REStat), as computed by the R package
  DIDmultiplegtDYN 2.2.0 (``did_multiplegt_dyn``); or, with ``estimator="did_m"``, the instantaneous ``DID_M`` of
  de Chaisemartin & D'Haultfoeuille (2020, AER).
* :func:`twfe_weights` -- the decomposition of the two-way fixed-effects coefficient into weights on the treated
  (g, t) cells (de Chaisemartin & D'Haultfoeuille 2020, Theorem 1; R's ``TwoWayFEWeights``, type "feTR").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from didx._errors import DataError, DesignError, InvalidOptionError
from didx._validate import check_option
from didx.estimators.dcdh.didm import did_m
from didx.estimators.dcdh.estimate import cluster_vcov, estimate_dyn
from didx.estimators.dcdh.prep import prepare
from didx.estimators.dcdh.twfe_weights import TWFEWeights, twfe_weights
from didx.results.base import FrozenDict, Inference, WaldTest
from didx.results.event import EventStudyResult

__all__ = ["DcdhResult", "TWFEWeights", "dcdh", "twfe_weights"]


@dataclass(frozen=True, eq=False)
class DcdhResult(EventStudyResult):
    """Result of :func:`dcdh`.

    Terms keep the authors' names: ``Effect_1 ... Effect_L`` (event time ``l - 1``: the switch period is 0),
    ``Av_tot_eff`` (the headline, average total effect per treatment unit, no event time) and
    ``Placebo_1 ... Placebo_P`` (event time ``-(l + 1)``; the period before the switch, -1, is the reference).
    ``extras`` holds the joint tests (``p_joint_effects``, ``p_joint_placebos``, ``p_equality_effects``), the
    weighted counts and ``avg_periods_accumulated``.
    """

    def joint_test(self, which: str = "effects") -> WaldTest:
        """Chi-square test that all effects (``"effects"``), all placebos (``"placebos"``) are zero, or that all
        effects are equal (``"equality"``), with the generalized inverse of their covariance."""
        check_option("DcdhResult.joint_test", "which", which, ["effects", "placebos", "equality"])
        if which == "placebos":
            return self.pretrend_test()
        eff = [t for t in self.terms if t.startswith("Effect_")]
        if which == "effects":
            return self.wald(eff, label="Joint test of the effects")
        if len(eff) < 2:
            raise InvalidOptionError("joint_test('equality') needs at least two effects. Fix: effects >= 2.")
        k = len(eff)
        R = np.zeros((k - 1, len(self.terms)))
        idx = [self.terms.index(t) for t in eff]
        for r in range(k - 1):
            R[r, idx] = -1.0 / k
            R[r, idx[r]] += 1.0
        return self.wald(R, label="Equality of the effects")

    def _summary_extra(self) -> list[str]:
        out = []
        for key, label in (("p_joint_effects", "all effects = 0"), ("p_joint_placebos", "all placebos = 0"),
                           ("p_equality_effects", "all effects equal")):
            p = self.extras.get(key)
            if p is not None and np.isfinite(p):
                out.append(f"Joint test, {label}: p = {p:.4g}")
        ap = self.extras.get("avg_periods_accumulated")
        if ap is not None and np.isfinite(ap):
            out.append(f"Average number of periods over which the total effect accumulates: {ap:.4f}")
        return out


@dataclass(frozen=True, eq=False)
class _DcdhVcovSource:
    """Recomputes the covariance for another clustering.

    The package's small-cohort factors count clusters (not groups) when clustering, so the variance influence
    variables depend on the clustering: they are recomputed from the data given to the fit (the estimation is
    re-run). The point estimates must come out identical: if the data were changed in place since the fit, the
    new covariance would belong to other estimates, so that is refused.
    """

    data: Any
    call: dict[str, Any]
    coef: np.ndarray | None = None

    def recompute(self, func: str, vcov: str | None, cluster: str | Sequence[str] | None,
                  ssc: Any) -> tuple[np.ndarray, Inference]:
        if vcov not in (None, "cluster", "CR0") or ssc is not None:
            raise InvalidOptionError(
                f"{func}: the dcdh standard errors are the package's cluster sums of influence variables; only "
                f"the clustering can change (got vcov={vcov!r}, ssc={ssc!r}). Fix: call with_vcov(cluster='col')."
            )
        names = [cluster] if isinstance(cluster, str) else list(cluster or [self.call["group"]])
        if len(names) != 1:
            raise InvalidOptionError(f"{func}: dcdh clusters on one column; got {names!r}. Fix: pass one column.")
        res = dcdh(self.data, **{**self.call, "cluster": names[0]})
        if self.coef is not None and not np.array_equal(np.asarray(res.coef), self.coef, equal_nan=True):
            raise DataError(
                f"{func}: the data given to dcdh() changed since the fit (re-estimating gives other effects), so "
                f"with_vcov cannot recompute the covariance of the stored estimates. Fix: call dcdh(..., "
                f"cluster={names[0]!r}) on the data you want."
            )
        return np.array(res.vcov_matrix), res.inference


def _check_controls(func: str, controls: str | Sequence[str] | None, estimator: str,
                    others: tuple[str | None, ...]) -> list[str]:
    """The list of control columns, or an error naming the problem (duplicates, roles, DID_M)."""
    if controls is None:
        return []
    ctrl = [controls] if isinstance(controls, str) else list(controls)
    for c in ctrl:
        if not isinstance(c, str):
            raise InvalidOptionError(f"{func}: controls= must be column names; got {c!r}. Fix: pass e.g. "
                                     f"controls=['x1', 'x2'].")
    dup = sorted({c for c in ctrl if ctrl.count(c) > 1})
    if dup:
        raise InvalidOptionError(f"{func}: the control {dup[0]!r} is named more than once in controls={ctrl!r}. "
                                 f"Fix: list each control once.")
    clash = [c for c in ctrl if c in [o for o in others if o is not None]]
    if clash:
        raise InvalidOptionError(f"{func}: {clash[0]!r} is both a control and the outcome, group, time, treatment, "
                                 f"weights or cluster column. Fix: remove it from controls=.")
    if ctrl and estimator == "did_m":
        raise InvalidOptionError(f"{func}: controls= applies to estimator='did_l' only (got controls={ctrl!r} "
                                 f"with estimator='did_m'). Fix: drop controls= or use estimator='did_l'.")
    return ctrl


def dcdh(
    data: Any,
    *,
    y: str,
    group: str,
    time: str,
    treat: str,
    effects: int = 1,
    placebo: int = 0,
    normalized: bool = False,
    controls: str | list[str] | None = None,
    cluster: str | None = None,
    weights: str | None = None,
    estimator: str = "did_l",
    switchers: str = "both",
    trends_lin: bool = False,
) -> DcdhResult:
    """de Chaisemartin & D'Haultfoeuille DiD for binary, non-absorbing and discrete treatments.

    ``estimator="did_l"`` (default): the event-study effects of de Chaisemartin & D'Haultfoeuille (2024).
    Let ``F_g`` be the first period where group g's treatment differs from its baseline ``D_{g,1}``. For
    switchers ``g`` (``S_g = +1`` if their treatment rises, ``-1`` if it falls) observed ``l`` periods after
    ``F_g``, and controls: groups with the same baseline that have not switched yet at ``F_g - 1 + l``,

    ``DID_l = sum_g S_g N_g / N_l [ (Y_{g,F_g-1+l} - Y_{g,F_g-1})
    - mean over controls c of (Y_{c,F_g-1+l} - Y_{c,F_g-1}) ]``,

    ``Placebo_l`` the same with the long difference ``Y_{F_g-1-l} - Y_{F_g-1}``, and the average total effect
    per treatment unit ``delta = sum_l w_l DID_l / sum_l w_l delta^D_l`` (``w_l = N_l / sum N_l``,
    ``delta^D_l`` the switchers' average treatment change; the headline ``.estimate``). With
    ``normalized=True`` each ``DID_l`` is divided by the switchers' average cumulated treatment change.
    Standard errors are the package's analytic ones: the group-level influence variables, demeaned within
    cohorts with its small-cohort adjustment, summed within clusters (the groups unless ``cluster=``).
    The covariance between terms is the same inner product (what the package uses for its joint tests).

    ``estimator="did_m"``: the instantaneous ``DID_M`` of de Chaisemartin & D'Haultfoeuille (2020) for a 0/1
    treatment: switchers between t-1 and t against groups whose treatment is the same in t-1 and t.

    Parameters
    ----------
    y, group, time, treat : outcome, group, period and treatment columns (one row per group and period).
    effects : number of event-study effects ``DID_1..DID_effects`` (fewer are reported if not estimable).
    placebo : number of placebos (at most ``effects``).
    normalized : divide each effect by the switchers' average cumulated treatment change.
    controls : time-varying covariates (numeric columns). As DIDmultiplegtDYN's ``controls=``: for each
        baseline treatment ``d``, the outcome's first difference is regressed on the controls' first
        differences with period effects among the not-yet-switched cells of baseline ``d`` (weights ``N_gt``),
        giving ``theta_d``; every long difference (effects and placebos) of a group with baseline ``d`` is
        residualised, ``(Y_t - Y_{t-l}) - (X_t - X_{t-l})' theta_d``, and the variance influence variables get
        the package's correction for the estimation of ``theta_d``. Rows with a missing control are dropped
        (and counted in the sample report). Not checked against an R run (no reference with controls).
    cluster : a column coarser than ``group`` (e.g. the state of a county) to cluster the standard errors.
    weights : cell weights ``N_gt`` (e.g. the population of the group-period cell).
    estimator : ``"did_l"`` or ``"did_m"``.
    trends_lin : group-specific linear trends, as the package's ``trends_lin=TRUE``: groups whose treatment first
        changes at the second period are dropped, the outcome (and controls) are first-differenced within group
        and the first period dropped; ``Effect_l`` is then the sum of the effects ``1..l`` of the differenced
        outcome computed on the same switchers (those with controls at every horizon ``1..l``), and likewise
        ``Placebo_l``. No average total effect: the headline is ``Effect_1``. Not checked against an R run.
    switchers : ``"both"`` (default), ``"in"`` (only groups whose treatment rises above their baseline) or
        ``"out"`` (only those whose treatment falls below it), as the package's ``switchers=`` option.

    References
    ----------
    de Chaisemartin, C. and D'Haultfoeuille, X. (2024), REStat; (2020), AER 110(9). R: DIDmultiplegtDYN 2.2.0.
    """
    func = "dcdh"
    check_option(func, "estimator", estimator, ["did_l", "did_m"])
    check_option(func, "switchers", switchers, ["both", "in", "out"])
    if estimator == "did_m" and switchers != "both":
        raise InvalidOptionError(f"{func}: switchers={switchers!r} applies to estimator='did_l' only. Fix: drop it.")
    ctrl = _check_controls(func, controls, estimator, (y, group, time, treat, weights, cluster))
    if not isinstance(trends_lin, (bool, np.bool_)):
        raise InvalidOptionError(f"{func}: trends_lin must be True or False; got {trends_lin!r}. Fix: pass "
                                 f"trends_lin=True.")
    if trends_lin and estimator == "did_m":
        raise InvalidOptionError(f"{func}: trends_lin=True applies to estimator='did_l' only. Fix: drop it or use "
                                 f"estimator='did_l'.")
    for name, val in (("effects", effects), ("placebo", placebo)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < (1 if name == "effects" else 0):
            raise InvalidOptionError(
                f"The {name!r} parameter of {func} must be an integer >= {1 if name == 'effects' else 0}. "
                f"Got {val!r}. Fix: pass e.g. {name}=3."
            )
    if estimator == "did_m":
        given = [f"{n}={v!r}" for n, v, default in (("effects", effects, 1), ("placebo", placebo, 0),
                                                    ("normalized", normalized, False)) if v != default]
        if given:
            raise InvalidOptionError(
                f"{func}: {', '.join(given)} applies to estimator='did_l' only (DID_M is the instantaneous effect, "
                f"without dynamic effects, placebos or normalisation). Fix: drop {', '.join(given)} or use "
                f"estimator='did_l'."
            )
    if placebo > effects:
        raise InvalidOptionError(
            f"{func}: placebo={placebo} exceeds effects={effects}; the package estimates at most as many placebos "
            f"as effects. Fix: pass placebo <= effects."
        )
    data_p = prepare(data, func=func, y=y, group=group, time=time, treat=treat, weights=weights, cluster=cluster,
                     raw=estimator == "did_m", controls=ctrl, trends_lin=bool(trends_lin))
    if estimator == "did_m":
        return did_m(data_p, y=y, group=group, treat=treat, cluster=cluster, weights=weights,
                     result_cls=DcdhResult)
    sides = {"both": (0.0, 1.0), "in": (1.0,), "out": (0.0,)}[switchers]
    if not np.any(np.isin(data_p.S, sides) & (data_p.L >= 1)):
        raise DesignError(
            f"{func}: no effect can be estimated: there are no switchers ({switchers}) with a not-yet-switched "
            f"group of the same baseline treatment {treat!r}. Fix: check the treatment column, or use "
            f"switchers='both'."
        )
    est = estimate_dyn(data_p, effects=int(effects), placebo=int(placebo), normalized=normalized,
                       switchers=switchers, controls=ctrl, func=func, trends_lin=bool(trends_lin))
    G = float(data_p.n_groups_total)
    V = cluster_vcov(est.infl, data_p.cluster, G)
    terms = est.terms
    coef = est.coef
    n_eff, n_pl = est.n_effects, est.n_placebos

    def chi2_p(idx: list[int], R: np.ndarray | None = None) -> float:
        b = coef[idx]
        Vs = V[np.ix_(idx, idx)]
        if R is not None:
            b = R @ b
            Vs = R @ Vs @ R.T
            Vs = (Vs + Vs.T) / 2
        if not np.all(np.isfinite(b)):
            return np.nan
        stat = float(b @ np.linalg.pinv(Vs) @ b)
        return float(stats.chi2.sf(stat, len(b)))

    eff_idx = list(range(n_eff))
    pl_idx = [i for i, t in enumerate(terms) if t.startswith("Placebo_")]
    p_eff = chi2_p(eff_idx) if n_eff > 1 else np.nan
    p_pl = chi2_p(pl_idx) if n_pl > 1 else np.nan
    p_eq = np.nan
    if n_eff > 1:
        D = np.eye(n_eff)[: n_eff - 1] - 1.0 / n_eff
        p_eq = chi2_p(eff_idx, D)
    n_clusters = int(data_p.cluster.max()) + 1
    cl_label = cluster if cluster is not None and cluster != group else group
    inference = Inference(
        vcov_type=f"analytic (DIDmultiplegtDYN influence variables), clustered by {cl_label}",
        df=None, n_clusters=(n_clusters,), cluster_names=(cl_label,),
        details=("Covariances between terms: inner products of the same influence variables (the package's "
                 "joint-test covariance).",),
    )
    design = (
        ("Estimator", "de Chaisemartin-D'Haultfoeuille DID_l (event study)"),
        ("Outcome", y),
        ("Treatment", f"{treat} (baseline = first observed value)"),
        ("Switchers", {"both": "in and out", "in": "in only", "out": "out only"}[switchers]),
        ("Control group", "groups with the same baseline treatment that have not switched yet"),
        ("Reference period", "F_g - 1 (event time -1), long differences from it"),
        ("Effects / placebos", f"{n_eff} / {n_pl} (requested {effects} / {placebo})"),
        ("Normalized", "yes (DID_l / average cumulated treatment change)" if normalized else "no"),
        ("Group-specific linear trends", "yes (first-differenced outcome; effect l = sum of effects 1..l on the "
         "same switchers; no average total effect)" if trends_lin else "no"),
        ("Controls", ", ".join(ctrl) + " (first differences, coefficients by baseline treatment among "
         "not-yet-switched cells; long differences residualised)" if ctrl else "none"),
        ("Weights", weights or "none"),
        ("Groups (G)", f"{int(G)}"),
    )
    term_info = {
        "event_time": np.array(est.event_time, dtype=float),
        "n": est.n_cells,
        "n_switchers": est.n_switchers,
    }
    extras = {
        "reference": (-1.0,),
        "p_joint_effects": p_eff,
        "p_joint_placebos": p_pl,
        "p_equality_effects": p_eq,
        "avg_periods_accumulated": est.avg_periods,
        "n_weighted": FrozenDict(dict(zip(terms, est.n_w.tolist(), strict=True))),
        "n_switchers_weighted": FrozenDict(dict(zip(terms, est.n_switchers_w.tolist(), strict=True))),
        "normalization": FrozenDict(dict(zip(terms, est.normalization.tolist(), strict=True))),
        "n_groups": int(G),
    }
    notes = (
        *est.messages,
        "Missing treatment values are not imputed (those cells are treated as absent), unlike the R package's "
        "conventions for gaps.",
    )
    return DcdhResult(
        estimator="de Chaisemartin-D'Haultfoeuille DID_l", terms=tuple(terms), coef=coef, vcov_matrix=V,
        headline="Effect_1" if trends_lin else "Av_tot_eff", inference=inference, sample=data_p.report,
        design=design, term_info=term_info,
        extras=extras, notes=notes,
        _source=_DcdhVcovSource(data=data, call=dict(
            y=y, group=group, time=time, treat=treat, effects=effects, placebo=placebo, normalized=normalized,
            weights=weights, switchers=switchers, controls=ctrl or None, trends_lin=bool(trends_lin)),
            coef=np.array(coef, dtype=np.float64, copy=True)),
    )

