"""de Chaisemartin & D'Haultfoeuille estimators: DID_l event study (2024), DID_M (2020) and TWFE weights.

* :func:`dcdh` -- the dynamic effects ``DID_l`` of de Chaisemartin & D'Haultfoeuille (2024, "Difference-in-
  differences estimators of intertemporal treatment effects", REStat), as computed by the R package
  DIDmultiplegtDYN 2.2.0 (``did_multiplegt_dyn``); or, with ``estimator="did_m"``, the instantaneous ``DID_M`` of
  de Chaisemartin & D'Haultfoeuille (2020, AER).
* :func:`twfe_weights` -- the decomposition of the two-way fixed-effects coefficient into weights on the treated
  (g, t) cells (de Chaisemartin & D'Haultfoeuille 2020, Theorem 1; R's ``TwoWayFEWeights``, type "feTR").

The papers' *groups* are the ``unit=`` column and their *controls* the ``covariates=``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from didx._errors import DesignError, InvalidOptionError
from didx._validate import check_option
from didx.estimators.dcdh.didm import did_m
from didx.estimators.dcdh.estimate import DynEstimates, estimate_dyn, fit_covariance
from didx.estimators.dcdh.prep import DcdhData, prepare
from didx.estimators.dcdh.twfe_weights import TWFEWeights, twfe_weights
from didx.inference.dcdh_variance import DcdhScores
from didx.results.base import FrozenDict, WaldTest
from didx.results.event import EventStudyResult

__all__ = ["DcdhResult", "TWFEWeights", "dcdh", "twfe_weights"]

JOINT_TESTS = {"p_joint_effects": "effects", "p_joint_placebos": "placebos", "p_equality_effects": "equality"}
"""The joint tests' p-values readable in ``extras``: computed on access from the result's current covariance."""


class _Extras(FrozenDict[str, Any]):
    """A DID_l result's extras: the stored tables, plus the joint tests' p-values (``JOINT_TESTS``) computed when
    read from the owning result's *current* covariance (never stored at fit time, so after ``with_vcov`` they
    follow the new covariance)."""

    __slots__ = ("_owner",)

    def __init__(self, data: Mapping[str, Any], owner: DcdhResult) -> None:
        super().__init__(data)
        self._owner = owner

    def __getitem__(self, key: str) -> Any:
        if key in JOINT_TESTS:
            return self._owner._package_p(JOINT_TESTS[key])
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[str]:
        yield from self._data
        yield from JOINT_TESTS

    def __len__(self) -> int:
        return len(self._data) + len(JOINT_TESTS)


@dataclass(frozen=True, eq=False)
class DcdhResult(EventStudyResult):
    """Result of :func:`dcdh`.

    Terms keep the authors' names: ``Effect_1 ... Effect_L`` (event time ``l - 1``: the switch period is 0),
    ``Av_tot_eff`` (the headline, average total effect per treatment unit, no event time) and
    ``Placebo_1 ... Placebo_P`` (event time ``-(l + 1)``; the period before the switch, -1, is the reference).
    ``extras`` holds the weighted counts and ``avg_periods_accumulated``, and (for DID_l) the joint tests'
    p-values ``p_joint_effects``, ``p_joint_placebos`` and ``p_equality_effects``, computed when read from the
    current covariance (NaN with fewer than two effects / placebos, as the package).
    """

    def __post_init__(self) -> None:
        ex = self.extras
        static = ex._data if isinstance(ex, _Extras) else {k: v for k, v in ex.items() if k not in JOINT_TESTS}
        object.__setattr__(self, "extras", static)
        super().__post_init__()
        if any(t.startswith("Effect_") for t in self.terms):
            object.__setattr__(self, "extras", _Extras(self.extras, self))

    def _test_matrix(self, which: str) -> tuple[np.ndarray, tuple[str, ...]]:
        eff = [t for t in self.terms if t.startswith("Effect_")]
        if which == "placebos":
            names = self.pretrend_terms()
            if not names:
                raise DesignError(
                    f"{self.estimator}: there are no placebos to test. Fix: pass placebo= (at least 1)."
                )
        elif which == "effects":
            names = tuple(eff)
        else:
            if len(eff) < 2:
                raise InvalidOptionError("joint_test('equality') needs at least two effects. Fix: effects >= 2.")
            k = len(eff)
            R = np.zeros((k - 1, len(self.terms)))
            idx = [self.terms.index(t) for t in eff]
            for r in range(k - 1):
                R[r, idx] = -1.0 / k
                R[r, idx[r]] += 1.0
            return R, tuple(f"{eff[r]} - mean of the effects" for r in range(k - 1))
        R = np.zeros((len(names), len(self.terms)))
        for i, t in enumerate(names):
            R[i, self._index(t)] = 1.0
        return R, names

    def joint_test(self, which: str = "effects") -> WaldTest:
        """The package's chi-square test, on the current covariance, that all effects (``"effects"``) or all
        placebos (``"placebos"``) are zero, or that all effects are equal (``"equality"``): ``b' V^+ b`` with the
        generalized inverse of their covariance, as many degrees of freedom as tested combinations."""
        check_option("DcdhResult.joint_test", "which", which, ["effects", "placebos", "equality"])
        R, names = self._test_matrix(which)
        stat, df = package_chi2(R, self.coef, self.vcov_matrix, symmetrize=which == "equality")
        p = float(stats.chi2.sf(stat, df)) if np.isfinite(stat) else np.nan
        label = {"effects": "Joint test of the effects", "placebos": "Pre-trend test (joint Wald)",
                 "equality": "Equality of the effects"}[which]
        return WaldTest(statistic=stat, df=df, p_value=p, f_statistic=stat / df, f_df=None, f_p_value=p,
                        terms=names, label=label)

    def pretrend_test(self) -> WaldTest:
        """The joint test that all placebos are zero (:meth:`joint_test` ``("placebos")``)."""
        return self.joint_test("placebos")

    def _package_p(self, which: str) -> float:
        """The p-value the package prints: only with at least two effects (placebos), else NaN."""
        prefix = "Placebo_" if which == "placebos" else "Effect_"
        if sum(t.startswith(prefix) for t in self.terms) < 2:
            return np.nan
        return self.joint_test(which).p_value

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


def package_chi2(R: np.ndarray, coef: np.ndarray, V: np.ndarray, *, symmetrize: bool = False
                 ) -> tuple[float, int]:
    """DIDmultiplegtDYN's joint test statistic ``(R b)' (R V R')^+ (R b)`` (``matlib::Ginv``: the Moore-Penrose
    inverse) and its degrees of freedom, the number of tested combinations; NaN if an estimate is not finite."""
    b = R @ coef
    Vs = R @ V @ R.T
    if symmetrize:
        Vs = (Vs + Vs.T) / 2
    if not np.all(np.isfinite(b)) or not np.all(np.isfinite(Vs)):
        return np.nan, int(b.shape[0])
    return float(b @ np.linalg.pinv(Vs) @ b), int(b.shape[0])


def _check_covariates(func: str, covariates: str | Sequence[str] | None, estimator: str,
                      others: tuple[str | None, ...]) -> list[str]:
    """The list of covariate columns, or an error naming the problem (duplicates, roles, DID_M)."""
    if covariates is None:
        return []
    cov = [covariates] if isinstance(covariates, str) else list(covariates)
    for c in cov:
        if not isinstance(c, str):
            raise InvalidOptionError(f"{func}: covariates= must be column names; got {c!r}. Fix: pass e.g. "
                                     f"covariates=['x1', 'x2'].")
    dup = sorted({c for c in cov if cov.count(c) > 1})
    if dup:
        raise InvalidOptionError(f"{func}: the covariate {dup[0]!r} is named more than once in covariates={cov!r}. "
                                 f"Fix: list each covariate once.")
    clash = [c for c in cov if c in [o for o in others if o is not None]]
    if clash:
        raise InvalidOptionError(f"{func}: {clash[0]!r} is both a covariate and the outcome, unit, time, treatment, "
                                 f"weights or cluster column. Fix: remove it from covariates=.")
    if cov and estimator == "did_m":
        raise InvalidOptionError(f"{func}: covariates= applies to estimator='did_l' only (got covariates={cov!r} "
                                 f"with estimator='did_m'). Fix: drop covariates= or use estimator='did_l'.")
    return cov


def _check_cluster(func: str, cluster: Any) -> str | None:
    """One cluster column name (a one-element list is accepted), else an error naming what was given."""
    if cluster is None or isinstance(cluster, str):
        return cluster
    if isinstance(cluster, Sequence) and len(cluster) == 1 and isinstance(cluster[0], str):
        return cluster[0]
    raise InvalidOptionError(
        f"{func}: cluster= must be one column name (dcdh clusters on one column, coarser than the units); got "
        f"{cluster!r}. Fix: pass one column, e.g. cluster='state'."
    )


def _check_options(func: str, *, estimator: str, switchers: str, trends_lin: Any, effects: Any, placebo: Any,
                   normalized: Any) -> None:
    check_option(func, "estimator", estimator, ["did_l", "did_m"])
    check_option(func, "switchers", switchers, ["both", "in", "out"])
    if estimator == "did_m" and switchers != "both":
        raise InvalidOptionError(f"{func}: switchers={switchers!r} applies to estimator='did_l' only. Fix: drop it.")
    for name, flag in (("trends_lin", trends_lin), ("normalized", normalized)):
        if not isinstance(flag, (bool, np.bool_)):
            raise InvalidOptionError(f"{func}: {name} must be True or False; got {flag!r}. Fix: pass "
                                     f"{name}=True.")
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


def dcdh(
    data: Any,
    *,
    y: str,
    unit: str,
    time: str,
    treat: str,
    effects: int = 1,
    placebo: int = 0,
    normalized: bool = False,
    covariates: str | list[str] | None = None,
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
    y, unit, time, treat : outcome, unit (the papers' *group*), period and treatment columns (one row per unit
        and period).
    effects : number of event-study effects ``DID_1..DID_effects`` (fewer are reported if not estimable).
    placebo : number of placebos (at most ``effects``).
    normalized : divide each effect by the switchers' average cumulated treatment change.
    covariates : time-varying covariates (numeric columns; the package's ``controls=``): for each baseline
        treatment ``d``, the outcome's first difference is regressed on the covariates' first differences with
        period effects among the not-yet-switched cells of baseline ``d`` (weights ``N_gt``), giving
        ``theta_d``; every long difference (effects and placebos) of a unit with baseline ``d`` is residualised,
        ``(Y_t - Y_{t-l}) - (X_t - X_{t-l})' theta_d``, and the variance influence variables get the package's
        correction for the estimation of ``theta_d``. Rows with a missing covariate are dropped (and counted in
        the sample report). Not checked against an R run (no reference with covariates).
    cluster : one column coarser than ``unit`` (e.g. the state of a county) to cluster the standard errors;
        ``result.with_vcov(cluster=...)`` re-clusters without re-estimating.
    weights : cell weights ``N_gt`` (e.g. the population of the unit-period cell).
    estimator : ``"did_l"`` or ``"did_m"``.
    trends_lin : group-specific linear trends, as the package's ``trends_lin=TRUE``: groups whose treatment first
        changes at the second period are dropped, the outcome (and covariates) are first-differenced within unit
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
    _check_options(func, estimator=estimator, switchers=switchers, trends_lin=trends_lin, effects=effects,
                   placebo=placebo, normalized=normalized)
    cluster = _check_cluster(func, cluster)
    cov = _check_covariates(func, covariates, estimator, (y, unit, time, treat, weights, cluster))
    data_p = prepare(data, func=func, y=y, unit=unit, time=time, treat=treat, weights=weights, cluster=cluster,
                     raw=estimator == "did_m", covariates=cov, trends_lin=bool(trends_lin))
    if estimator == "did_m":
        res: DcdhResult = did_m(data_p, y=y, unit=unit, treat=treat, cluster=cluster, weights=weights,
                                result_cls=DcdhResult)
        return res
    sides = {"both": (0.0, 1.0), "in": (1.0,), "out": (0.0,)}[switchers]
    if not np.any(np.isin(data_p.S, sides) & (data_p.L >= 1)):
        raise DesignError(
            f"{func}: no effect can be estimated: there are no switchers ({switchers}) with a not-yet-switched "
            f"unit of the same baseline treatment {treat!r}. Fix: check the treatment column, or use "
            f"switchers='both'."
        )
    est = estimate_dyn(data_p, effects=int(effects), placebo=int(placebo), normalized=bool(normalized),
                       switchers=switchers, covariates=cov, func=func, trends_lin=bool(trends_lin))
    return _did_l_result(func, data_p, est, y=y, unit=unit, treat=treat, cluster=cluster, weights=weights,
                         covariates=cov, effects=int(effects), placebo=int(placebo), normalized=bool(normalized),
                         switchers=switchers, trends_lin=bool(trends_lin))


def _did_l_result(func: str, data_p: DcdhData, est: DynEstimates, *, y: str, unit: str, treat: str,
                  cluster: str | None, weights: str | None, covariates: list[str], effects: int, placebo: int,
                  normalized: bool, switchers: str, trends_lin: bool) -> DcdhResult:
    """The DID_l result: its covariance source and covariance, design lines, per-term counts and extras."""
    from didx.registry import PRE_PERIOD

    G = float(data_p.n_groups_total)
    scores = DcdhScores.build(est.infl, n_groups=data_p.Y.shape[0], scale=G)
    V, inference, source = fit_covariance(
        func, data_p.rows, scores, unit=unit, cluster=cluster,
        label="analytic (DIDmultiplegtDYN influence variables)",
        details=("Covariances between terms: inner products of the same influence variables (the package's "
                 "joint-test covariance).",))
    terms = est.terms
    design = (
        ("Estimator", "de Chaisemartin-D'Haultfoeuille DID_l (event study)"),
        ("Outcome", y),
        ("Treatment", f"{treat} (baseline = first observed value)"),
        ("Switchers", {"both": "in and out", "in": "in only", "out": "out only"}[switchers]),
        ("Control group", "units with the same baseline treatment that have not switched yet"),
        ("Reference period", "F_g - 1 (event time -1), long differences from it"),
        ("Effects / placebos", f"{est.n_effects} / {est.n_placebos} (requested {effects} / {placebo})"),
        ("Normalized", "yes (DID_l / average cumulated treatment change)" if normalized else "no"),
        ("Group-specific linear trends", "yes (first-differenced outcome; effect l = sum of effects 1..l on the "
         "same switchers; no average total effect)" if trends_lin else "no"),
        ("Covariates", ", ".join(covariates) + " (first differences, coefficients by baseline treatment among "
         "not-yet-switched cells; long differences residualised)" if covariates else "none"),
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
        estimator="de Chaisemartin-D'Haultfoeuille DID_l", terms=tuple(terms), coef=est.coef, vcov_matrix=V,
        headline="Effect_1" if trends_lin else "Av_tot_eff", inference=inference, sample=data_p.report,
        design=design, term_info=term_info, extras=extras, notes=notes, _source=source,
        pre_period_meaning=PRE_PERIOD["dcdh"], cross_covariance=True,
    )
