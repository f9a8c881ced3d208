"""Shared machinery of the regression estimators (2x2, TWFE, event study, plain OLS).

A regression result keeps its :class:`~didx.linalg.OLSFit` (demeaned regressors and residuals) in a
:class:`RegressionSource`, so ``with_vcov`` and the wild bootstrap work from it without refitting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from didx._sample import SampleReport
from didx._validate import distinct_at_most_two
from didx.inference.contract import Capabilities, ClusterCodes, Fingerprint, VcovRequest, cluster_count_check
from didx.inference.vcov import SSC, VCOV_TYPES, VcovResult, VcovSpec, compute_vcov, resolve_vcov
from didx.linalg.ols import OLSFit
from didx.results.base import Inference, Result

if TYPE_CHECKING:
    from didx.estimators.regression.collapse import CollapseInfo
    from didx.inference.wild import WildBootstrapResult

FEW_CLUSTERS = 42


REGRESSION_CAPABILITIES = Capabilities(
    vcov=VCOV_TYPES, max_clusters=2, new_clusters=True, ssc=True, bootstrap=("wild",),
    default="the estimator's vcov= / cluster= at fit time",
)


def regression_capabilities(fit: OLSFit) -> Capabilities:
    """What a regression's ``with_vcov`` supports: HC2/HC3 need each observation's leverage, computed with at most
    one absorbed factor, so they are not declared for two or more."""
    if fit.fe is not None and len(fit.fe.factors) > 1:
        return dataclasses.replace(REGRESSION_CAPABILITIES,
                                   vcov=tuple(k for k in VCOV_TYPES if k not in ("HC2", "HC3")))
    return REGRESSION_CAPABILITIES


@dataclass(frozen=True, eq=False)
class RegressionSource:
    """The stored fit and the cluster codes captured at fit time (never the data frame)."""

    fit: OLSFit
    clusters: ClusterCodes
    default: VcovSpec
    treated_codes: np.ndarray | None = None  # per-observation: True if in a treated unit/group
    extra: Mapping[str, Any] = field(default_factory=dict)
    collapsed: bool = False  # estimated on group x period means: collapsing is no longer a remedy

    def __post_init__(self) -> None:
        if self.treated_codes is not None:  # only "treated or not" is read (a count of treated clusters)
            object.__setattr__(self, "treated_codes", treated_flags(self.treated_codes))
        share_factor_codes(self.fit, self.clusters)

    @property
    def capabilities(self) -> Capabilities:
        return regression_capabilities(self.fit)

    def codes_for(self, names: Sequence[str], given: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Codes of ``names``: those resolved for this request, else the ones stored at fit time."""
        return {n: np.asarray(given[n] if n in given else self.clusters.stored[n]) for n in names}

    def compute(self, func: str, spec: VcovSpec, given: Mapping[str, np.ndarray] | None = None
                ) -> tuple[np.ndarray, Inference]:
        codes = self.codes_for(spec.clusters, given or {})
        for name, c in codes.items():
            cluster_count_check(func, name, distinct_at_most_two(c))
        vr = compute_vcov(self.fit, spec, codes, func)
        return vr.matrix, inference_info(spec, vr, self.fit, codes, self.treated_codes, collapsed=self.collapsed)

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        spec = resolve_vcov(func, request.vcov, request.clusters, self.default, request.ssc)
        return self.compute(func, spec, codes)


def treated_flags(treated: np.ndarray) -> np.ndarray:
    """Per-observation treated flags as a read-only boolean array (8 times smaller than float codes)."""
    out = np.asarray(treated) > 0
    out.flags.writeable = False
    return out


def share_factor_codes(fit: OLSFit, clusters: ClusterCodes) -> None:
    """Let the fit's fixed-effect factors and the stored cluster codes of the same column be one array.

    The unit and time codes are both absorbed factors and default cluster variables; without sharing, a result
    (and its pickle) holds each twice. Only the array object changes: the codes are equal.
    """
    fe = fit.fe
    if fe is None:
        return
    for i, f in enumerate(fe.factors):
        for stored in clusters.stored.values():
            if stored is not f and stored.shape == f.shape and np.array_equal(stored, f):
                fe.factors[i] = stored  # type: ignore[index]
                break


def capture_clusters(codes: Mapping[str, np.ndarray], row_index: np.ndarray | None, n_input_rows: int,
                     fingerprint: Fingerprint | None) -> ClusterCodes:
    """The fit-time cluster codes of a regression (see :class:`~didx.inference.contract.ClusterCodes`)."""
    return ClusterCodes(dict(codes), row_index, n_input_rows, fingerprint)


def inference_info(spec: VcovSpec, vr: VcovResult, fit: OLSFit, codes: Mapping[str, np.ndarray],
                   treated: np.ndarray | None, *, collapsed: bool = False) -> Inference:
    details: list[str] = []
    label = spec.kind
    if spec.kind == "hetero":
        label = "hetero (HC1)"
    if spec.clusters:
        label = f"{spec.kind}, clustered by {' and '.join(spec.clusters)}"
        G = min(vr.n_clusters) if vr.n_clusters else 0
        n_treated_cl = None
        if treated is not None and len(spec.clusters) == 1:
            c = np.asarray(codes[spec.clusters[0]])
            tr = np.bincount(c, weights=treated, minlength=int(c.max()) + 1) > 0
            n_treated_cl = int(tr.sum())
            details.append(f"Treated clusters: {n_treated_cl} of {G}")
        if G < FEW_CLUSTERS or (n_treated_cl is not None and n_treated_cl < 10):
            remedies = ("result.wild_bootstrap(term) (wild cluster bootstrap; these estimates are already on "
                        "group x period means)" if collapsed else
                        "result.wild_bootstrap(term) (wild cluster bootstrap) or collapse='group_period' "
                        "(group x period means)")
            details.append(
                f"Few clusters ({G}{'' if n_treated_cl is None else f', {n_treated_cl} treated'}): cluster-robust "
                f"SEs can over-reject. Remedies: {remedies}."
            )
    details.append(f"Coefficients counted for the small-sample factor K: {vr.k_ssc}")
    if spec.kind in ("HC0", "CR0") or (not spec.ssc.adj and not spec.ssc.cluster_adj):
        ssc_text = "none"
    elif spec.kind in ("HC1", "hetero"):
        ssc_text = ("n/(n-K) (sandwich, Stata and fixest convention)" if spec.ssc.adj
                    else spec.ssc.describe(fit.fe is not None))
    elif spec.kind == "CR3":
        ssc_text = "(G-1)/G (jackknife)"
    elif spec.kind in ("HC2", "HC3"):
        ssc_text = "leverage-based"
    elif spec.kind == "iid":
        ssc_text = "residual variance over n-K" if spec.ssc.adj else "residual variance over n-1 (fixest)"
    else:
        ssc_text = spec.ssc.describe(fit.fe is not None)
    return Inference(vcov_type=label, df=vr.df, n_clusters=vr.n_clusters, cluster_names=spec.clusters,
                     small_sample=ssc_text, details=tuple(details))


@dataclass(frozen=True, eq=False)
class RegressionResult(Result):
    """A result of a linear regression: keeps the fit for ``with_vcov`` and the wild bootstrap."""

    @property
    def fit(self) -> OLSFit:
        src = self._source
        assert isinstance(src, RegressionSource)  # set by every regression estimator
        return src.fit

    def wild_bootstrap(
        self,
        term: str | Sequence[str] | np.ndarray,
        *,
        n_bootstrap: int = 9999,
        weights: str = "rademacher",
        impose_null: bool = True,
        seed: int | None = None,
        conf_level: float = 0.95,
        r: float | Sequence[float] | np.ndarray = 0.0,
        cluster: str | None = None,
        data: Any = None,
        progress: bool = True,
    ) -> WildBootstrapResult:
        """Wild cluster bootstrap test of ``term = r`` (or of ``R b = r`` for a matrix / list of terms).

        Works from the stored fit and cluster-level sums (Roodman, MacKinnon, Nielsen & Webb 2019), never an
        n x B matrix. ``impose_null=True`` is WCR (restricted residuals; CI by test inversion), ``False`` is WCU
        (percentile-t CI). With Rademacher weights and ``2^G <= n_bootstrap`` all sign vectors are enumerated.
        ``cluster`` defaults to the result's clustering; a column not captured at fit time needs ``data=`` (the
        fitted frame, checked by row count and fingerprint). Absorbed fixed effects are partialled out (FWL) with an
        exact correction when they are not nested in the clusters. See :mod:`didx.inference.wild`. A progress bar
        shows when the session is interactive; ``progress=False`` silences it.

        Returns
        -------
        WildBootstrapResult with ``p_value``, ``conf_int``, ``statistic`` (CR1 t, or Wald for several
        restrictions), ``n_bootstrap``, ``full_enumeration``, ``weights``, ``method`` ("WCR" / "WCU").
        """
        from didx.inference.wild import wild_bootstrap

        return wild_bootstrap(self, term, n_bootstrap=n_bootstrap, weights=weights, impose_null=impose_null,
                              seed=seed, conf_level=conf_level, r=r, cluster=cluster, data=data,
                              progress=progress)


def wild_bootstrap_mapped(result: Result, raw_source: Any, A: np.ndarray, hypothesis: str | Sequence[str] | np.ndarray,
                          *, r: float | Sequence[float] | np.ndarray = 0.0, **options: Any) -> WildBootstrapResult:
    """Wild cluster bootstrap of a hypothesis on the terms of ``result``, whose estimates are ``A b`` for the
    coefficients ``b`` of the regression in ``raw_source`` (Sun-Abraham's aggregations, the stacked ATT).

    The hypothesis ``R theta = r`` on the result's terms is the restriction ``(R A) b = r`` on the regression's
    coefficients, bootstrapped as any regression hypothesis (:func:`didx.inference.wild.wild_bootstrap`); the
    printed hypothesis keeps the result's term names. ``options`` are those of
    :meth:`RegressionResult.wild_bootstrap`.
    """
    from didx.inference.wild import restriction_matrix, wild_bootstrap

    R, rv, label = restriction_matrix("wild_bootstrap", result.terms, hypothesis, r)
    regression = SimpleNamespace(estimator=result.estimator, _source=raw_source, inference=result.inference,
                                 design=result.design)
    out = wild_bootstrap(regression, R @ np.asarray(A), r=rv, **options)
    return dataclasses.replace(out, hypothesis=label)


def make_regression_result(
    cls: type[RegressionResult], *, estimator: str, fit: OLSFit, headline: str, spec: VcovSpec,
    codes: Mapping[str, np.ndarray], fingerprint: Fingerprint | None, row_index: np.ndarray | None,
    sample: SampleReport,
    design: Sequence[tuple[str, str]], treated: np.ndarray | None = None,
    term_info: Mapping[str, np.ndarray] | None = None, extras: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (), func: str = "regression", collapse_info: CollapseInfo | None = None, **kwargs: Any,
) -> Any:
    clusters = (capture_clusters(codes, row_index, sample.n_input_rows, fingerprint) if collapse_info is None else
                collapse_info.cluster_codes(dict(codes), row_index, sample.n_input_rows, fingerprint))
    source = RegressionSource(fit=fit, clusters=clusters, default=spec, treated_codes=treated,
                              collapsed=collapse_info is not None)  # shares the FE codes
    V, inf = source.compute(func, spec)
    all_notes = list(notes)
    if fit.dropped_collinear:
        all_notes.append("Dropped for collinearity: " + ", ".join(fit.dropped_collinear))
    return cls(estimator=estimator, terms=fit.names, coef=fit.coef, vcov_matrix=V, headline=headline,
               inference=inf, sample=sample, design=tuple(design), term_info=term_info or {},
               extras=extras or {}, notes=tuple(all_notes), _source=source, **kwargs)


def default_spec(cluster_default: Sequence[str], kind_without_cluster: str, ssc: SSC | None) -> VcovSpec:
    s = ssc if ssc is not None else SSC()
    if cluster_default:
        return VcovSpec("CR1", tuple(cluster_default), s)
    return VcovSpec(kind_without_cluster, (), s)

