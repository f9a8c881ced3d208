"""The result contract every estimator returns.

A :class:`Result` is immutable. It holds the estimates, their covariance, the design choices and the sample
report. Inference is applied when presenting (``tidy(conf_level=...)``) and changing the covariance returns a new
result (``with_vcov``), never a refit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from scipy import stats

from didx._errors import DesignError, InvalidOptionError
from didx._sample import SampleReport
from didx._validate import check_conf_level, did_you_mean
from didx.inference.contract import Capabilities, CovarianceSource
from didx.results.render import fmt_num, latex_table, markdown_table, text_table

TIDY_COLUMNS = ("term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high")


@dataclass(frozen=True)
class Inference:
    """How standard errors were computed: printed by ``summary()`` and used for p-values and intervals.

    ``df`` is the t distribution's degrees of freedom, or None for the normal distribution.
    """

    vcov_type: str
    df: float | None = None
    n_clusters: tuple[int, ...] = ()
    cluster_names: tuple[str, ...] = ()
    small_sample: str = ""
    band: str = "pointwise"
    details: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [f"Standard errors: {self.vcov_type}"]
        if self.cluster_names:
            counts = ", ".join(f"{c}: {g}" for c, g in zip(self.cluster_names, self.n_clusters, strict=False))
            out.append(f"Clusters: {counts}")
        if self.small_sample:
            out.append(f"Small-sample correction: {self.small_sample}")
        out.append("Reference distribution: " + ("normal" if self.df is None else f"t with {fmt_num(self.df, 0)} df"))
        out.append(f"Intervals: {self.band}")
        out.extend(self.details)
        return out


K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(Mapping[K, V]):
    """A read-only mapping (a private copy of the given one): ``term_info`` and ``extras`` of a result cannot be
    changed after construction. Unlike ``types.MappingProxyType`` it pickles and deep-copies."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data) if data is not None else {}

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class WaldTest:
    """A joint Wald test of ``R b = r``: chi-square and F forms."""

    statistic: float
    df: int
    p_value: float
    f_statistic: float
    f_df: tuple[float, float] | None
    f_p_value: float
    terms: tuple[str, ...]
    label: str = "Wald test"

    def __str__(self) -> str:
        # the F form always shows its degrees of freedom; with a normal reference distribution they are (q, inf)
        f_df = f"F({self.f_df[0]:g}, {self.f_df[1]:g})" if self.f_df else f"F({self.df}, inf)"
        return (f"{self.label} of {', '.join(self.terms)} = 0: chi2({self.df}) = {self.statistic:.4f}, "
                f"p = {self.p_value:.4g}; {f_df} = {self.f_statistic:.4f}, p = {self.f_p_value:.4g}")


class Summary(str):
    """The text of ``summary()``: prints itself in a console and in notebooks."""

    def __repr__(self) -> str:
        return str(self)


@dataclass(frozen=True, eq=False)
class Result:
    """Immutable estimates with their covariance, design choices and sample report.

    Attributes
    ----------
    estimator : a human name ("Two-way fixed effects", ...).
    terms : coefficient names.
    coef : estimates (read-only).
    vcov_matrix : covariance of ``coef`` (read-only).
    headline : the term whose estimate and SE are ``.estimate`` / ``.std_error``.
    inference : how the SEs were computed.
    sample : observations, units, periods and what was dropped.
    design : ordered (choice, value) pairs printed by ``summary()``.
    term_info : optional per-term columns for ``tidy()`` (``group``, ``time``, ``event_time``, ``n``, ...), stored
        as a read-only mapping of read-only arrays.
    extras : estimator-specific tables (e.g. the 2x2 cell-mean table), stored as a read-only mapping.
    """

    estimator: str
    terms: tuple[str, ...]
    coef: np.ndarray
    vcov_matrix: np.ndarray
    headline: str
    inference: Inference
    sample: SampleReport
    design: tuple[tuple[str, str], ...] = ()
    term_info: Mapping[str, np.ndarray] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    _source: CovarianceSource | None = field(default=None, repr=False, compare=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Keep the short repr on subclasses: @dataclass does not overwrite a __repr__ already in the class body.
        super().__init_subclass__(**kwargs)
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = Result.__repr__  # type: ignore[method-assign]

    def __post_init__(self) -> None:
        object.__setattr__(self, "coef", _readonly(self.coef))
        object.__setattr__(self, "vcov_matrix", _readonly(self.vcov_matrix))
        object.__setattr__(self, "terms", tuple(self.terms))
        object.__setattr__(self, "term_info", FrozenDict({k: _ro_any(v) for k, v in self.term_info.items()}))
        object.__setattr__(self, "extras", FrozenDict(self.extras))
        if self.headline not in self.terms:
            raise ValueError(f"headline {self.headline!r} is not among the terms {self.terms}")

    # ---- headline numbers
    def _index(self, term: str) -> int:
        try:
            return self.terms.index(term)
        except ValueError:
            raise InvalidOptionError(
                f"{term!r} is not a term of this result.{did_you_mean(term, self.terms)} Terms: {list(self.terms)}."
            ) from None

    @property
    def estimate(self) -> float:
        """The headline effect (the DiD / ATT coefficient)."""
        return float(self.coef[self._index(self.headline)])

    @property
    def std_error(self) -> float:
        """Standard error of the headline effect."""
        return float(self.std_errors[self._index(self.headline)])

    @property
    def std_errors(self) -> np.ndarray:
        """Square roots of the variances; a variance below zero beyond rounding (a covariance that is not
        positive semi-definite) gives NaN, never a misleading 0."""
        d = np.diag(self.vcov_matrix).astype(np.float64)
        if d.size == 0:
            return d
        top = float(np.nanmax(np.abs(d))) if np.isfinite(d).any() else 0.0
        negative = d < -1e-12 * top
        return np.where(negative, np.nan, np.sqrt(np.clip(d, 0.0, None)))

    @property
    def vcov(self) -> pd.DataFrame:
        """The covariance matrix, labelled by term."""
        return pd.DataFrame(np.array(self.vcov_matrix), index=list(self.terms), columns=list(self.terms))

    @property
    def params(self) -> pd.Series:
        return pd.Series(np.array(self.coef), index=list(self.terms), name="estimate")

    # ---- inference applied at presentation
    def _critical(self, conf_level: float) -> float:
        a = 1.0 - conf_level
        if self.inference.df is None:
            return float(stats.norm.ppf(1 - a / 2))
        return float(stats.t.ppf(1 - a / 2, self.inference.df))

    def _p_values(self, t: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            if self.inference.df is None:
                return np.asarray(2 * stats.norm.sf(np.abs(t)))
            return np.asarray(2 * stats.t.sf(np.abs(t), self.inference.df))

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        """One row per term: ``term, estimate, std_error, statistic, p_value, conf_low, conf_high`` plus
        ``group``, ``time``, ``event_time`` (and other per-term columns) where they apply."""
        conf_level = check_conf_level(conf_level)
        se = self.std_errors
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se > 0, self.coef / se, np.nan)
        crit = self._critical(conf_level)
        df = pd.DataFrame({
            "term": list(self.terms), "estimate": np.array(self.coef), "std_error": se, "statistic": t,
            "p_value": self._p_values(t), "conf_low": self.coef - crit * se, "conf_high": self.coef + crit * se,
        })
        for k, v in self.term_info.items():
            df[k] = integer_if_whole(k, np.array(v))
        return df

    def conf_int(self, conf_level: float = 0.95) -> pd.DataFrame:
        return self.tidy(conf_level).set_index("term")[["conf_low", "conf_high"]]

    # ---- changing inference
    @property
    def capabilities(self) -> Capabilities | None:
        """What :meth:`with_vcov` supports for this result (None: the covariance cannot be recomputed)."""
        src = self._source
        return src.capabilities if isinstance(src, CovarianceSource) else None

    def with_vcov(self, vcov: str | None = None, *, cluster: Any = None, ssc: Any = None,
                  data: Any = None) -> Result:
        """A new result with another covariance estimator (e.g. ``"hetero"``, or ``cluster="state"``), computed
        from the stored fit without re-estimating.

        ``cluster`` names columns captured at fit time (the unit, the fit's ``cluster=``), or gives the cluster
        values themselves (a Series or array aligned to the rows of the data given to the estimator); for any
        other column pass ``data=`` the frame you fitted (checked by row count and a fingerprint). What this
        estimator supports is ``result.capabilities``; anything else is refused with that list.
        """
        src = self._source
        if src is None:
            raise InvalidOptionError(
                f"{self.estimator}: this result cannot recompute its covariance (no stored scores). "
                f"Fix: re-run the estimator with the vcov you want."
            )
        from didx.inference.contract import recompute

        V, inf = recompute(src, self.estimator, vcov, cluster, ssc, data)
        return self._with_covariance(V, inf)

    def _with_covariance(self, V: np.ndarray, inference: Inference) -> Result:
        """The same estimates with a new covariance: subclasses whose derived numbers depend on the covariance
        (aggregations, stored bands) override this, never ``with_vcov``."""
        return dataclasses.replace(self, vcov_matrix=V, inference=inference)

    def influence_functions(self) -> pd.DataFrame:
        """The influence functions of the estimates (one row per unit or observation, one column per term), for
        estimators that store them; others raise :class:`InvalidOptionError`."""
        raise InvalidOptionError(
            f"{self.estimator}: this result stores no influence functions (its covariance comes from regression "
            f"scores or cluster sums). Fix: use vcov_matrix, or an estimator that stores them (att_gt, drdid)."
        )

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """The estimates with their confidence intervals, headline marked (see
        :func:`didx.results.plot.plot_coefficients`: ``terms=``, ``conf_level=``, ``uniform=``, ``title=``);
        returns the Axes."""
        from didx.results.plot import plot_coefficients

        return plot_coefficients(self, ax=ax, **kwargs)

    # ---- tests
    def wald(self, terms: Sequence[str] | np.ndarray | None = None, r: np.ndarray | float | None = None,
             *, label: str = "Wald test") -> WaldTest:
        """Joint Wald test of ``R b = r``. ``terms`` is a list of term names (testing each is 0) or a matrix R."""
        if terms is None:
            raise InvalidOptionError("wald(): pass the terms to test, or a restriction matrix R.")
        if isinstance(terms, np.ndarray):
            R = np.atleast_2d(np.asarray(terms, dtype=float))
            if R.shape[1] != len(self.terms):
                raise InvalidOptionError(
                    f"wald(): R must have {len(self.terms)} columns (one per term), got shape {R.shape}."
                )
            names = tuple(f"row {i + 1}" for i in range(R.shape[0]))
        else:
            names = tuple(terms)
            if not names:
                raise InvalidOptionError("wald(): the list of terms to test is empty.")
            R = np.zeros((len(names), len(self.terms)))
            for i, t in enumerate(names):
                R[i, self._index(t)] = 1.0
        rv = np.zeros(R.shape[0]) if r is None else np.broadcast_to(np.asarray(r, dtype=float), (R.shape[0],))
        diff = R @ self.coef - rv
        RVR = R @ self.vcov_matrix @ R.T
        problem = _wald_problem(diff, RVR)
        if problem is not None:
            raise DesignError(
                f"wald(): the test of {list(names)} is not computable: {problem}. Fix: check the estimates and "
                f"their covariance (result.vcov), e.g. rescale the outcome or choose another covariance."
            )
        # the same cut-off as matrix_rank below: directions of RVR at round-off level (a rank-deficient covariance,
        # e.g. more pre-periods than clusters) are left out instead of inverted
        stat = float(diff @ np.linalg.pinv(RVR, rcond=max(RVR.shape) * np.finfo(float).eps, hermitian=True) @ diff)
        q = int(np.linalg.matrix_rank(RVR))
        if q == 0:
            raise InvalidOptionError(
                f"wald(): the tested combination(s) {list(names)} have zero variance under this covariance, so there "
                f"is nothing to test (e.g. a reference period fixed at 0). Fix: test terms that are estimated."
            )
        p = float(stats.chi2.sf(stat, q))
        f = stat / q
        if self.inference.df is None:
            f_df = None
            fp = p
        else:
            f_df = (float(q), float(self.inference.df))
            fp = float(stats.f.sf(f, q, self.inference.df))
        return WaldTest(statistic=stat, df=q, p_value=p, f_statistic=f, f_df=f_df, f_p_value=fp, terms=names,
                        label=label)

    def _untestable(self, terms: Sequence[str]) -> str | None:
        """Why the joint Wald test that ``terms`` are 0 cannot be computed from this result (None: it can), so that
        ``summary()`` prints "not computable (reason)" instead of raising."""
        idx = [self._index(t) for t in terms]
        diff = self.coef[idx]
        RVR = self.vcov_matrix[np.ix_(idx, idx)]
        problem = _wald_problem(diff, RVR)
        if problem is not None:
            return problem
        if int(np.linalg.matrix_rank(RVR)) == 0:
            return "they have zero variance under this covariance"
        return None

    # ---- presentation
    def _table_rows(self, conf_level: float) -> tuple[list[str], list[list[str]]]:
        t = self.tidy(conf_level)
        pct = f"{100 * conf_level:g}%"
        header = ["term", "estimate", "std_error", "statistic", "p_value", f"{pct} low", f"{pct} high"]
        rows = [[str(r.term)] + [fmt_num(getattr(r, c)) for c in TIDY_COLUMNS[1:]] for r in t.itertuples()]
        return header, rows

    def summary(self, conf_level: float = 0.95) -> Summary:
        """Everything needed to read and reproduce the estimate: design choices, sample, inference, table."""
        title = f"didx · {self.estimator}"
        out = [title, "=" * len(title), "Design"]
        out += [f"  {k}: {v}" for k, v in self.design]
        out.append("Sample")
        out += ["  " + s for s in self.sample.lines()]
        out.append("Inference")
        out += ["  " + s for s in self.inference.lines()]
        header, rows = self._table_rows(conf_level)
        out.append("")
        out.append(text_table(header, rows))
        extra = self._summary_extra()
        if extra:
            out.append("")
            out.extend(extra)
        notes = [*self.notes, *self._health_notes()]
        if notes:
            out.append("")
            out.append("Notes")
            out += ["  - " + n for n in notes]
        return Summary("\n".join(out))

    def _health_notes(self) -> list[str]:
        """What makes the printed numbers unusable, found in the result itself: non-finite estimates, or a
        covariance with inf/NaN entries (e.g. values so large that squares overflow) or negative variances."""
        out = []
        bad_coef = [t for t, b in zip(self.terms, self.coef, strict=True) if not np.isfinite(b)]
        if bad_coef:
            out.append(f"Estimates not finite for {_some(bad_coef)}: check the data (values too large or a degenerate "
                       f"design).")
        V = self.vcov_matrix
        if V.size and not np.all(np.isfinite(V)):
            rows = ~np.all(np.isfinite(V), axis=1)
            which = [t for t, bad in zip(self.terms, rows, strict=False) if bad]
            out.append(f"The covariance matrix has non-finite (inf or NaN) entries for {_some(which)}: their standard "
                       f"errors, tests and intervals are not computable. This happens when values are so large that "
                       f"their squares overflow, or when a term is not identified. Fix: rescale the outcome, "
                       f"weights or covariates, or check the design.")
        elif V.size and np.isnan(self.std_errors).any():
            which = [t for t, se in zip(self.terms, self.std_errors, strict=True) if np.isnan(se)]
            out.append(f"Negative variance for {_some(which)} (the covariance is not positive semi-definite): its "
                       f"standard error is shown as missing.")
        return out

    def _summary_extra(self) -> list[str]:
        """Hook for subclasses (tests, tables) printed after the estimates."""
        return []

    def to_dict(self, conf_level: float = 0.95) -> dict[str, Any]:
        """The headline and every term of :meth:`tidy` as plain Python values at full precision (NaN and missing
        values as None), with the estimator, inference and sample size: what :meth:`to_json` writes."""
        t = self.tidy(conf_level)
        terms = [{str(k): _plain(v) for k, v in row.items()} for row in t.to_dict("records")]
        return {"estimator": self.estimator, "headline": self.headline, "estimate": _plain(self.estimate),
                "std_error": _plain(self.std_error), "conf_level": conf_level,
                "standard_errors": self.inference.vcov_type, "n_obs": self.sample.n_obs, "terms": terms}

    def to_json(self, conf_level: float = 0.95, indent: int | None = 1) -> str:
        """:meth:`to_dict` as JSON: every number at full precision (shortest repr that round-trips), NaN as null."""
        import json

        return json.dumps(self.to_dict(conf_level), indent=indent, allow_nan=False)

    def to_markdown(self, conf_level: float = 0.95) -> str:
        header, rows = self._table_rows(conf_level)
        foot = f"\n\n{self.estimator}; SE: {self.inference.vcov_type}; N = {self.sample.n_obs}"
        return markdown_table(header, rows) + foot

    def to_latex(self, conf_level: float = 0.95) -> str:
        header, rows = self._table_rows(conf_level)
        cap = f"{self.estimator} (SE: {self.inference.vcov_type}; N = {self.sample.n_obs})"
        return latex_table(header, rows, caption=cap)

    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.estimator}: {self.headline} = {self.estimate:.6g} "
                f"(SE {self.std_error:.4g}), N = {self.sample.n_obs}>")


#: per-term columns that hold counts, periods or event times: shown as integers when every value is whole
INTEGER_COLUMNS = frozenset({"event_time", "group", "time", "base_period", "cohort", "n", "n_cells", "n_switchers"})


def integer_if_whole(name: str, v: np.ndarray) -> Any:
    """A per-term column as integers when it is a count, period or event time and every value is whole (so that
    ``tidy()`` prints ``-4``, not ``-4.0``); missing values (terms without an event time) stay missing in a
    nullable ``Int64`` column. Any other column is returned as is."""
    if name not in INTEGER_COLUMNS or v.dtype.kind != "f":
        return v
    ok = np.isfinite(v)
    if np.isinf(v).any() or not np.all(v[ok] == np.round(v[ok])) or (ok.any() and np.abs(v[ok]).max() >= 2**53):
        return v
    if ok.all():
        return v.astype(np.int64)
    return pd.arrays.IntegerArray(np.where(ok, v, 0).astype(np.int64), ~ok)


def _plain(v: Any) -> Any:
    """A JSON-ready Python value: numpy scalars to int/float/bool, NaN/NA/inf to None."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v) if np.isfinite(v) else None
    return v if isinstance(v, str) else str(v)


def _some(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _wald_problem(diff: np.ndarray, RVR: np.ndarray) -> str | None:
    """Why a Wald statistic cannot be computed from these numbers (None: it can)."""
    if not np.all(np.isfinite(diff)):
        return "the tested estimates are not finite"
    if not np.all(np.isfinite(RVR)):
        return "their covariance has non-finite (inf or NaN) entries"
    try:
        np.linalg.pinv(RVR)
    except np.linalg.LinAlgError as exc:
        return f"their covariance cannot be inverted ({exc})"
    return None


def _ro_any(v: Any) -> np.ndarray:
    a = np.array(v, copy=True)
    a.flags.writeable = False
    return a
