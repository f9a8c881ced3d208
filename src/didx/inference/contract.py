"""The covariance contract: how every result recomputes its covariance without refitting.

Every estimator's result carries a *covariance source* (:class:`CovarianceSource`): the stored scores or influence
functions (or their cluster and cohort sums), the cluster codes captured at fit time (:class:`ClusterCodes`, never
the data frame) and a declared :class:`Capabilities`. ``Result.with_vcov`` goes through :func:`recompute`, which

1. parses the user's ``vcov=`` / ``cluster=`` / ``ssc=`` / ``data=`` once (:func:`parse_request`),
2. refuses what the source does not declare, with one message listing what it supports,
3. finds the cluster codes: stored at fit time, or read from a column the user passes (an array aligned to the
   rows given to the estimator, or the frame itself, checked by row count and a fingerprint of the outcome and
   unit columns), and says which in the inference text,
4. calls the source's :meth:`CovarianceSource.covariance` with the parsed request and the codes.

A new covariance option goes into a source's ``covariance`` and its ``Capabilities``; a new estimator writes one
source class (or reuses :class:`LinearMapSource` for results that are linear maps of another's estimates).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from didx._errors import DataError, InvalidOptionError
from didx._fingerprint import Fingerprint
from didx._frame import ByName, frame_labels, read_columns
from didx._validate import cluster_count_check as cluster_count_check  # re-exported: the check lives in _validate

if TYPE_CHECKING:
    from didx.inference.vcov import SSC
    from didx.results.base import Inference

VCOV_ALIASES = {"hc0": "HC0", "hc1": "HC1", "hc2": "HC2", "hc3": "HC3", "cr0": "CR0", "cr1": "CR1", "cr3": "CR3",
                "iid": "iid", "hetero": "hetero", "cluster": "CR1", "crv1": "CR1", "crv3": "CR3",
                "analytic": "analytic", "bootstrap": "bootstrap"}
"""Spellings accepted by ``vcov=`` and the canonical kind each means."""


# ---------------------------------------------------------------------------------------------------------------
# what a source supports
@dataclass(frozen=True)
class Capabilities:
    """What ``with_vcov`` can do for a result, declared by its covariance source.

    vcov : the canonical ``vcov=`` kinds accepted (``None``, the estimator's default, is always accepted).
    max_clusters : how many cluster variables at once (0: the covariance cannot be clustered differently).
    new_clusters : whether a cluster column not captured at fit time can be used (given as an array, or read from
        ``data=`` after the row count and fingerprint checks).
    ssc : whether ``ssc=`` (a :class:`~didx.SSC`) applies.
    bootstrap : the bootstraps the result offers (``"wild"``: ``result.wild_bootstrap()``; ``"multiplier"``: the
        estimator's ``n_bootstrap=``), listed for users and the registry.
    default : the text of the default choice, printed in refusals.
    """

    vcov: tuple[str, ...]
    max_clusters: int = 1
    new_clusters: bool = True
    ssc: bool = False
    bootstrap: tuple[str, ...] = ()
    default: str = ""

    def describe(self) -> str:
        kinds = ", ".join(repr(k) for k in self.vcov) if self.vcov else "only the default"
        parts = [f"vcov= {kinds}"]
        if self.max_clusters == 0:
            parts.append("no re-clustering")
        else:
            which = "any column" if self.new_clusters else "the columns captured at fit time"
            parts.append(f"cluster= up to {self.max_clusters} column{'s' if self.max_clusters > 1 else ''} "
                         f"({which})")
        parts.append("ssc=" + (" yes" if self.ssc else " not applicable"))
        if self.default:
            parts.append(f"default: {self.default}")
        return "; ".join(parts)


@dataclass(frozen=True)
class VcovRequest:
    """``with_vcov``'s arguments after parsing: the canonical kind (None: the estimator's default), cluster names,
    the small-sample correction, and cluster columns supplied as values (name -> values aligned to the input rows).
    """

    vcov: str | None = None
    clusters: tuple[str, ...] = ()
    ssc: SSC | None = None
    supplied: Mapping[str, np.ndarray] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# cluster codes captured at fit time
@dataclass(frozen=True, eq=False)
class ClusterCodes:
    """Cluster codes on the estimation rows, captured at fit time, and what is needed to read a new column.

    stored : name -> integer codes (one per estimation row) for the columns known at fit time (unit, cluster=).
    row_index : position in the input frame of each estimation row (None: row i is input row i).
    n_input_rows : rows of the frame given to the estimator.
    fingerprint : digest of role columns of that frame.
    """

    stored: Mapping[str, np.ndarray]
    row_index: np.ndarray | None
    n_input_rows: int
    fingerprint: Fingerprint | None = None

    def __post_init__(self) -> None:
        # keyed by column name (the str of the frame's label); the label itself (e.g. an integer) works as a key too
        object.__setattr__(self, "stored", ByName({str(k): _ro(np.asarray(v, dtype=np.int64))
                                                   for k, v in self.stored.items()}))
        if self.row_index is not None:
            object.__setattr__(self, "row_index", _ro(np.asarray(self.row_index, dtype=np.int64)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.stored)

    def subset(self, rows: np.ndarray) -> ClusterCodes:
        """The same codes for a subset of the estimation rows (positions into them)."""
        ri = rows if self.row_index is None else self.row_index[rows]
        return ClusterCodes({k: v[rows] for k, v in self.stored.items()}, ri, self.n_input_rows, self.fingerprint)

    def resolve(self, func: str, names: Sequence[str], supplied: Mapping[str, np.ndarray], data: Any,
                new_allowed: bool = True) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
        """Integer codes of each named cluster variable on the estimation rows, and lines saying where new ones
        came from."""
        out: dict[str, np.ndarray] = {}
        said: list[str] = []
        for name in names:
            if name in supplied:
                raw = np.asarray(supplied[name])
                self._check_rows(func, name, raw.shape[0], "the values passed as cluster=")
                said.append(f"Cluster codes of {name!r} from the values passed to with_vcov (aligned by row "
                            f"position; row count checked)")
            elif name in self.stored:
                out[name] = np.asarray(self.stored[name])
                continue
            elif data is not None:
                raw = self._read(func, name, data)
                said.append(f"Cluster column {name!r} read from the data passed to with_vcov (row count"
                            + (f" and fingerprint of {', '.join(self.fingerprint.columns)}"
                               if self.fingerprint and self.fingerprint.columns else "") + " checked)")
            else:
                have = list(self.stored) or "none"
                raise InvalidOptionError(
                    f"{func}: the cluster column {name!r} was not captured at fit time (captured: {have}), and "
                    f"results keep no copy of the data. Fix: pass data= the frame you fitted (checked by row count "
                    f"and fingerprint), or the column itself: cluster=df[{name!r}]."
                )
            if not new_allowed:
                raise InvalidOptionError(
                    f"{func}: this estimator clusters only on the columns captured at fit time "
                    f"({list(self.stored) or 'none'}); got {name!r}. Fix: re-run the estimator with "
                    f"cluster={name!r}."
                )
            sel = raw if self.row_index is None else raw[self.row_index]
            codes, _ = pd.factorize(sel, sort=False, use_na_sentinel=True)
            codes = np.asarray(codes, dtype=np.int64)
            if (codes < 0).any():
                raise DataError(
                    f"{func}: the cluster column {name!r} has {int((codes < 0).sum())} missing values in the "
                    f"estimation sample. Fix: fill them, or re-run the estimator with cluster={name!r} so those "
                    f"rows are dropped and counted."
                )
            out[name] = codes
        return out, tuple(said)

    def _check_rows(self, func: str, name: str, n: int, what: str) -> None:
        if n != self.n_input_rows:
            raise DataError(
                f"{func}: {what} for {name!r} have {n} rows, but the data given to the estimator had "
                f"{self.n_input_rows}, so they cannot be matched to the estimation sample. Fix: pass the frame "
                f"you fitted (or its column), unchanged, or re-run the estimator with cluster={name!r}."
            )

    def _read(self, func: str, name: str, data: Any) -> np.ndarray:
        fp = self.fingerprint
        want = [name, *(c for c in (fp.columns if fp else ()) if c != name)]
        have = {str(c) for c in frame_labels(data, func)}
        missing = [c for c in want[1:] if c not in have]
        if missing:
            raise DataError(
                f"{func}: the data passed to with_vcov lacks the column(s) {missing} of the fitted frame, so it cannot "
                f"be checked to be that frame. Fix: pass the frame you fitted, unchanged, or the cluster column "
                f"itself: cluster=df[{name!r}]."
            )
        cols = read_columns(data, want, func, {"cluster": name})
        self._check_rows(func, name, cols.n_rows, "the data passed as data=")
        if fp is not None and fp.columns:
            now = Fingerprint.of({c: cols.arrays[c] for c in fp.columns if c in cols.arrays})
            if now != fp:
                raise DataError(
                    f"{func}: the data passed to with_vcov is not the frame that was fitted: its columns "
                    f"{list(fp.columns)} differ (rows reordered, filtered or edited). Fix: pass the frame you "
                    f"fitted, unchanged, or re-run the estimator with cluster={name!r}."
                )
        return cols.arrays[name]


def _ro(a: np.ndarray) -> np.ndarray:
    """A read-only view (no copy: these are the estimator's own code arrays, and a copy of 10M codes costs a fresh
    80 MB that this machine pays for in page faults)."""
    v = a.view()
    v.flags.writeable = False
    return v


# ---------------------------------------------------------------------------------------------------------------
# the protocol and the one entry point
@runtime_checkable
class CovarianceSource(Protocol):
    """What every result's covariance source implements.

    ``capabilities`` declares the accepted options; ``clusters`` holds the cluster codes captured at fit time
    (None when the source cannot be re-clustered); ``covariance`` computes the matrix and its :class:`Inference`
    for a parsed, already-checked request, given the cluster codes on the estimation rows.
    """

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def clusters(self) -> ClusterCodes | None: ...

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]: ...


ClusterArg = str | Sequence[Any] | pd.Series | np.ndarray | None


def parse_request(func: str, vcov: Any, cluster: ClusterArg, ssc: Any) -> VcovRequest:
    """Parse ``with_vcov``'s arguments once: ``vcov`` spelling, cluster names or values, ``ssc`` type."""
    from didx.inference.vcov import check_ssc

    kind: str | None = None
    if vcov is not None:
        if not isinstance(vcov, str):
            raise InvalidOptionError(
                f"The 'vcov' parameter of {func} must be a string such as 'HC1' or 'CR1'. Got {vcov!r}."
            )
        kind = VCOV_ALIASES.get(vcov.lower(), vcov)
    check_ssc(func, ssc)
    names: list[str] = []
    supplied: dict[str, np.ndarray] = {}

    def add_values(values: Any, label: Any) -> None:
        name = str(label) if label is not None else f"cluster{len(names) + 1 if names else ''}"
        names.append(name)
        supplied[name] = np.asarray(values)

    if cluster is None:
        pass
    elif isinstance(cluster, str):
        names.append(cluster)
    elif isinstance(cluster, pd.Series):
        add_values(cluster.to_numpy(), cluster.name)
    elif isinstance(cluster, np.ndarray) and cluster.ndim == 1:  # an array is values (names come as str or list)
        add_values(cluster, None)
    elif isinstance(cluster, Sequence | np.ndarray):
        for c in cluster:
            if isinstance(c, str):
                names.append(c)
            elif isinstance(c, pd.Series):
                add_values(c.to_numpy(), c.name)
            elif isinstance(c, np.ndarray) and c.ndim == 1:
                add_values(c, None)
            else:
                raise InvalidOptionError(
                    f"The 'cluster' parameter of {func} must be a column name, a list of column names, or the "
                    f"cluster values (a Series or 1-d array aligned to the data's rows). Got an element {c!r}."
                )
    else:
        raise InvalidOptionError(
            f"The 'cluster' parameter of {func} must be a column name, a list of column names, or the cluster "
            f"values (a Series or 1-d array aligned to the data's rows). Got {cluster!r}."
        )
    if len(set(names)) != len(names):
        raise InvalidOptionError(f"{func}: cluster= names {names[0]!r} more than once. Fix: list each column once.")
    return VcovRequest(vcov=kind, clusters=tuple(names), ssc=ssc, supplied=supplied)


def check_request(func: str, request: VcovRequest, caps: Capabilities, clusters: ClusterCodes | None) -> None:
    """Refuse, with one message listing what is supported, any option the source does not declare."""
    problems = []
    if request.vcov is not None and request.vcov not in caps.vcov:
        problems.append(f"vcov={request.vcov!r}")
    if len(request.clusters) > caps.max_clusters:
        problems.append(f"cluster={list(request.clusters)!r}" if request.clusters else "cluster=")
    elif request.clusters and clusters is None:
        problems.append(f"cluster={list(request.clusters)!r}")
    elif request.clusters and not caps.new_clusters:
        new = [c for c in request.clusters if clusters is None or c not in clusters.stored]
        if new:
            problems.append(f"cluster={new[0]!r} (not captured at fit time)")
    if request.ssc is not None and not caps.ssc:
        problems.append("ssc=")
    if problems:
        raise InvalidOptionError(
            f"{func}: with_vcov does not support {', '.join(problems)} for this estimator. It supports: "
            f"{caps.describe()}. Fix: choose one of those, or re-run the estimator with the option you want."
        )


def recompute(source: CovarianceSource, func: str, vcov: Any = None, cluster: ClusterArg = None, ssc: Any = None,
              data: Any = None) -> tuple[np.ndarray, Inference]:
    """The one path of ``with_vcov``: parse, check against the source's capabilities, find cluster codes,
    compute; the inference text says where new cluster codes came from."""
    request = parse_request(func, vcov, cluster, ssc)
    caps = source.capabilities
    check_request(func, request, caps, source.clusters)
    codes: dict[str, np.ndarray] = {}
    said: tuple[str, ...] = ()
    if request.clusters:
        assert source.clusters is not None
        codes, said = source.clusters.resolve(func, request.clusters, request.supplied, data, caps.new_clusters)
    V, inf = source.covariance(func, request, codes)
    if said:
        inf = dataclasses.replace(inf, details=(*inf.details, *said))
    return np.asarray(V, dtype=np.float64), inf


@dataclass(frozen=True, eq=False)
class LinearMapSource:
    """The covariance of ``A b`` for estimates ``b`` with another source: ``A V A'`` (aggregations, subsets)."""

    parent: CovarianceSource
    matrix: np.ndarray

    @property
    def capabilities(self) -> Capabilities:
        return self.parent.capabilities

    @property
    def clusters(self) -> ClusterCodes | None:
        return self.parent.clusters

    def covariance(self, func: str, request: VcovRequest,
                   codes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Inference]:
        V, inf = self.parent.covariance(func, request, codes)
        A = np.asarray(self.matrix)
        return A @ V @ A.T, inf
