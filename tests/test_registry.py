"""The covariance contract, for every estimator of the registry (didx.registry).

For each estimator's result (fitted on a small simulated staggered panel):

* ``with_vcov`` with each option its ``capabilities`` declares (each vcov kind; each cluster column captured at fit
  time; a new column through ``data=`` and as a Series when it declares ``new_clusters``; two-way clustering; the
  small-sample correction) gives the numbers of a refit with that option (rtol 1e-10);
* every option it does not declare is refused with one :class:`~didx.InvalidOptionError` listing what it supports;
* ``summary()`` and ``pretrend_test()`` after ``with_vcov`` follow the new covariance;
* a shrunken or reordered frame passed as ``data=`` is a :class:`~didx.DataError`;
* the pickled result is smaller than the pickled data (results keep scores and codes, never the frame).

Estimators whose result has no contract source yet (its ``_source`` lacks ``capabilities``) are ``xfail(strict)``
in the tests of the contract: they flip when their conversion lands, and the marks must then be removed.
"""

from __future__ import annotations

import inspect
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from didx.comparison import DID2S_EVENT_STUDY
from didx.inference.contract import VCOV_ALIASES, Capabilities, CovarianceSource
from didx.registry import REGISTRY
from didx.results.base import Result
from didx.results.event import EventStudyResult
from didx.results.render import text_table

TOL = 1e-10
COLS = {"y": "y", "unit": "unit", "time": "time", "cohort": "cohort"}
NEW = "state"  # a cluster column no estimator captures at fit time
N_UNUSED = 16  # columns a data set carries besides those an estimator uses


def _panel() -> pd.DataFrame:
    sim = didx.datasets.simulate_staggered(60, 8, cohorts=[4, 5, 6], seed=11)
    rng = np.random.default_rng(5)
    extra = {f"z{j}": rng.normal(size=len(sim)) for j in range(N_UNUSED)}
    return sim.assign(state=sim["unit"] // 4, **extra)


def _two_periods(sim: pd.DataFrame) -> pd.DataFrame:
    two = sim[sim["time"].isin([3, 4]) & sim["cohort"].isin([0, 4])]
    return two.assign(group=(two["cohort"] == 4).astype(int), post=(two["time"] == 4).astype(int)) \
        .reset_index(drop=True)


SIM = _panel()
TWO = _two_periods(SIM)
SIM_DDD = SIM.assign(eligible=SIM["unit"] % 2)  # a partition for the triple difference


@dataclass(frozen=True)
class Case:
    """An estimator of the registry fitted one way: ``fit(**options)`` on ``data``."""

    estimator: str  # its registry name
    data: pd.DataFrame
    fit: Callable[..., Result]


def _dcdh(**o: Any) -> Result:
    res: Result = didx.dcdh(SIM, y="y", unit="unit", time="time", treat="d", effects=3, placebo=2, **o)
    return res


CASES: dict[str, Case] = {
    "did2x2": Case("did2x2", TWO, lambda **o: didx.did2x2(TWO, y="y", treat="group", post="post", unit="unit",
                                                          **o)),
    "twfe": Case("twfe", SIM, lambda **o: didx.twfe(SIM, **COLS, covariates="x1", **o)),
    "ols": Case("ols", SIM, lambda **o: didx.ols(SIM, y="y", x=["d", "x1"], fe=["unit", "time"], **o)),
    "event_study": Case("event_study", SIM, lambda **o: didx.event_study(SIM, **COLS, **o)),
    "drdid": Case("drdid", TWO, lambda **o: didx.drdid(TWO, y="y", treat="group", time="post", unit="unit",
                                                       covariates=["x1"], **o)),
    "sun_abraham": Case("sun_abraham", SIM, lambda **o: didx.sun_abraham(SIM, **COLS, **o)),
    "sun_abraham.window": Case("sun_abraham", SIM, lambda **o: didx.event_study(
        SIM, **COLS, estimator="sun_abraham", window=(-2, 2), **o)),
    "att_gt": Case("att_gt", SIM, lambda **o: didx.att_gt(SIM, **COLS, **o)),
    "att_gt.dynamic": Case("att_gt", SIM, lambda **o: didx.att_gt(SIM, **COLS, **o).aggregate("dynamic")),
    "imputation": Case("imputation", SIM, lambda **o: didx.imputation(SIM, **COLS, horizons=True, pretrends=True,
                                                                      **o)),
    "did2s": Case("did2s", SIM, lambda **o: didx.did2s(SIM, **COLS, second_stage=DID2S_EVENT_STUDY, **o)),
    "dcdh": Case("dcdh", SIM, _dcdh),
    "stacked": Case("stacked", SIM, lambda **o: didx.stacked(SIM, **COLS, window=(-2, 2), **o)),
    "ddd": Case("ddd", SIM_DDD, lambda **o: didx.ddd(SIM_DDD, **COLS, partition="eligible", **o)),
    "ddd.dynamic": Case("ddd", SIM_DDD, lambda **o: didx.ddd(SIM_DDD, **COLS, partition="eligible", **o)
                        .aggregate("dynamic")),
    # synthdid's covariance is its replications: a bootstrap re-drawn by clusters of units (uniform weights: fast)
    "synthdid": Case("synthdid", SIM, lambda **o: didx.synthdid(SIM, y="y", unit="unit", time="time", treat="d",
                                                                method="did", se="bootstrap", n_reps=30, seed=1,
                                                                **o)),
    "etwfe": Case("etwfe", SIM, lambda **o: didx.etwfe(SIM, **COLS, **o)),
    "lpdid": Case("lpdid", SIM, lambda **o: didx.lpdid(SIM, y="y", unit="unit", time="time", treat="d",
                                                        pre_window=2, post_window=2, **o)),
    "etwfe.event": Case("etwfe", SIM, lambda **o: didx.etwfe(SIM, **COLS, control="never", **o).aggregate("event")),
}

NOT_ON_CONTRACT: set[str] = set()  # every estimator of the registry is on the covariance contract
KEEPS_THE_DATA: set[str] = set()  # every converted source keeps cluster codes, never the frame


def _params(marked: set[str], reason: str) -> list[Any]:
    return [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=reason)) if name in marked else name
            for name in CASES]


CONTRACT = _params(NOT_ON_CONTRACT, "not yet on the covariance contract")
SIZE = _params(KEEPS_THE_DATA, "not yet on the covariance contract: the result keeps the data frame")


def test_every_estimator_with_a_covariance_has_a_case() -> None:
    assert {c.estimator for c in CASES.values()} == {n for n, s in REGISTRY.items() if s.covariance}


# ------------------------------------------------------------------ helpers
_fits: dict[str, Result] = {}


def _fitted(name: str) -> Result:
    if name not in _fits:
        _fits[name] = CASES[name].fit()
    return _fits[name]


def _capabilities(res: Result) -> Capabilities:
    src = res._source
    assert isinstance(src, CovarianceSource), f"{type(src).__name__} is not a covariance source of the contract"
    caps = res.capabilities
    assert caps is not None
    return caps


def _refit_vcov(case: Case, kind: str) -> dict[str, Any]:
    """The fit argument that gives vcov kind ``kind``."""
    params = inspect.signature(REGISTRY[case.estimator].load()).parameters
    if "vcov" in params:
        return {"vcov": kind}
    if kind == "analytic":  # estimators without vcov=: their analytic covariance is the default
        return {}
    pytest.fail(f"{case.estimator}: no refit argument known for vcov={kind!r}; add it to _refit_vcov")


def _options(case: Case, res: Result, caps: Capabilities) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, with_vcov arguments, refit arguments) for every option ``caps`` declares."""
    out = [(f"vcov={k}", {"vcov": k}, _refit_vcov(case, k)) for k in caps.vcov]
    clusters = res._source.clusters if res._source is not None else None  # type: ignore[union-attr]
    stored = list(clusters.stored) if clusters is not None else []
    if caps.max_clusters >= 1:
        out += [(f"cluster={c} (captured)", {"cluster": c}, {"cluster": c}) for c in stored]
    if caps.max_clusters >= 1 and caps.new_clusters:
        out += [
            ("cluster=state, data=", {"cluster": NEW, "data": case.data}, {"cluster": NEW}),
            ("cluster=Series", {"cluster": case.data[NEW]}, {"cluster": NEW}),
        ]
        out += [(f"vcov={k}, cluster=state", {"vcov": k, "cluster": NEW, "data": case.data},
                 {**_refit_vcov(case, k), "cluster": NEW}) for k in caps.vcov if k.startswith("CR")]
    if caps.max_clusters >= 2 and caps.new_clusters and stored:
        out.append((f"cluster=[{stored[0]}, state]", {"cluster": [stored[0], NEW], "data": case.data},
                    {"cluster": [stored[0], NEW]}))
    if caps.ssc:
        ssc = didx.SSC(adj=False, cluster_adj=False)
        out.append(("ssc=", {"ssc": ssc}, {"ssc": ssc}))
    return out


def _after_prefix(message: str) -> str:
    """An error message without its leading ``func:`` (the estimator's name differs between a fit and a result)."""
    return message.split(": ", 1)[-1]


def _same_inference(label: str, got: Result, want: Result) -> None:
    assert got.terms == want.terms, label
    np.testing.assert_allclose(got.coef, want.coef, rtol=TOL, atol=1e-14, err_msg=label)
    np.testing.assert_allclose(got.vcov_matrix, want.vcov_matrix, rtol=TOL, atol=1e-14, err_msg=label)
    assert got.inference.vcov_type == want.inference.vcov_type, label
    assert got.inference.cluster_names == want.inference.cluster_names, label
    assert got.inference.n_clusters == want.inference.n_clusters, label
    assert got.inference.df == want.inference.df, label


def _new_choice(case: Case, caps: Capabilities) -> tuple[dict[str, Any], dict[str, Any]]:
    """One option that changes the covariance: a new cluster column if allowed, else another vcov kind."""
    if caps.max_clusters >= 1 and caps.new_clusters:
        return {"cluster": case.data[NEW]}, {"cluster": NEW}
    kind = next(k for k in caps.vcov if k not in ("CR1", "analytic"))
    return {"vcov": kind}, _refit_vcov(case, kind)


def _printed_pretrend_p(text: str) -> list[str]:
    """The p-values printed on the summary's pre-trend (or placebo) test lines."""
    lines = [ln for ln in text.splitlines() if "pre-trend" in ln.lower() or "placebo" in ln.lower()]
    return [p for ln in lines for p in re.findall(r"p = ([-+0-9.e]+|nan)", ln)]


# ------------------------------------------------------------------ the contract
@pytest.mark.parametrize("name", CONTRACT)
def test_with_vcov_equals_a_refit_with_that_option(name: str) -> None:
    case = CASES[name]
    res = _fitted(name)
    caps = _capabilities(res)
    options = _options(case, res, caps)
    assert options, f"{name}: declares no option"
    for label, with_vcov, refit in options:
        try:
            want = case.fit(**refit)
        except didx.DidxError as exc:  # a declared kind this design cannot give (e.g. HC2 with two absorbed
            # factors): with_vcov must refuse it the same way
            with pytest.raises(type(exc)) as info:
                res.with_vcov(**with_vcov)
            assert _after_prefix(str(info.value)) == _after_prefix(str(exc)), label
            continue
        _same_inference(label, res.with_vcov(**with_vcov), want)
    # back to the default after a change
    first = options[0][1]
    _same_inference("default again", res.with_vcov(**first).with_vcov(), res)


@pytest.mark.parametrize("name", CONTRACT)
def test_undeclared_options_are_refused(name: str) -> None:
    case = CASES[name]
    res = _fitted(name)
    caps = _capabilities(res)
    refused: list[dict[str, Any]] = [{"vcov": k} for k in sorted(set(VCOV_ALIASES.values()) - set(caps.vcov))]
    names = ["unit", "time", NEW, "x1"]
    if caps.max_clusters == 0:
        refused.append({"cluster": "unit"})
    else:
        refused.append({"cluster": names[: caps.max_clusters + 1], "data": case.data})
        if not caps.new_clusters:
            refused.append({"cluster": NEW, "data": case.data})
    if not caps.ssc:
        refused.append({"ssc": didx.SSC()})
    for kwargs in refused:
        with pytest.raises(didx.InvalidOptionError, match="It supports:") as info:
            res.with_vcov(**kwargs)
        assert caps.describe() in str(info.value), kwargs


@pytest.mark.parametrize("name", CONTRACT)
def test_summary_and_pretrend_test_follow_the_new_covariance(name: str) -> None:
    case = CASES[name]
    res = _fitted(name)
    caps = _capabilities(res)
    with_vcov, refit = _new_choice(case, caps)
    new, ref = res.with_vcov(**with_vcov), case.fit(**refit)
    text = str(new.summary())
    header, rows = ref._table_rows(0.95)
    assert text_table(header, rows) in text  # the coefficient table is the refit's
    assert new.inference.vcov_type in text
    if isinstance(new, EventStudyResult) and new.pre_terms:
        assert isinstance(ref, EventStudyResult)
        p_new, p_old = new.pretrend_test(), res.pretrend_test()
        assert p_new.p_value == pytest.approx(ref.pretrend_test().p_value, rel=1e-8)
        assert p_new.p_value != pytest.approx(p_old.p_value, rel=1e-6), "the option should move the test"
        printed = _printed_pretrend_p(text)
        assert f"{p_new.p_value:.4g}" in printed, (printed, p_new)
        assert f"{p_old.p_value:.4g}" not in printed, (printed, p_old)


@pytest.mark.parametrize("name", CONTRACT)
def test_a_changed_frame_is_refused(name: str) -> None:
    case = CASES[name]
    res = _fitted(name)
    caps = _capabilities(res)
    shrunk = case.data.iloc[:-1]
    reordered = case.data.sample(frac=1.0, random_state=3)
    if caps.max_clusters >= 1 and caps.new_clusters:
        for data in (shrunk, reordered):
            with pytest.raises(didx.DataError):
                res.with_vcov(cluster=NEW, data=data)
        with pytest.raises(didx.DataError):
            res.with_vcov(cluster=shrunk[NEW])
    else:
        with pytest.raises(didx.InvalidOptionError, match="It supports:"):
            res.with_vcov(cluster=NEW, data=shrunk)


@pytest.mark.parametrize("name", SIZE)
def test_a_pickled_result_is_smaller_than_the_data(name: str) -> None:
    res = CASES[name].fit()  # as fitted (sources may cache what with_vcov built)
    blob = pickle.dumps(res)
    assert len(blob) < len(pickle.dumps(CASES[name].data)), (len(blob), len(pickle.dumps(CASES[name].data)))
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.coef, res.coef)
    np.testing.assert_array_equal(back.vcov_matrix, res.vcov_matrix)


# ------------------------------------------------------------------ the docs list the registry
def registry_table() -> str:
    """The estimator table of docs/index.md, as the registry says it."""
    kind = {"always": "yes", "option": "with an option", "aggregate": '`aggregate("dynamic")`', None: ""}
    rows = ["| estimator | event study | covariates | weights column | repeated cross sections | "
            "`event_study(estimator=)` |", "|---|---|---|---|---|---|"]
    for s in REGISTRY.values():
        cells = [f"`{s.name}`", kind[s.event_study], "yes" if s.covariates else "", "yes" if s.weights else "",
                 "yes" if s.repeated_cross_sections else "", f'`"{s.comparison}"`' if s.comparison else ""]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def test_the_user_guide_lists_the_registry() -> None:
    from pathlib import Path

    index = (Path(__file__).parents[1] / "docs" / "index.md").read_text()
    assert registry_table() in index


# ------------------------------------------------------------------ panel-level entries
def test_panel_entries_match_their_functions() -> None:
    """What a PanelEntry declares is in its function's signature: the roles it reads from the panel are not
    arguments of the entry (except a role that also names columns it needs codes of, like TWFE's cluster), the
    arguments naming columns it needs codes of are, and the data-level function takes them under the same
    names; the control requirement is one build_panel knows."""
    entries = {name: s.from_panel for name, s in REGISTRY.items() if s.from_panel is not None}
    assert set(entries) == {"event_study", "sun_abraham", "imputation", "did2s", "stacked", "etwfe", "lpdid"}
    for name, entry in entries.items():
        params = inspect.signature(entry.load()).parameters
        data_level = inspect.signature(REGISTRY[name].load()).parameters
        assert next(iter(params)) == "panel", name
        assert entry.require_control in ("untreated_obs", "never", "none"), name
        for role in entry.roles:  # stacked takes no covariates: the panel's are none
            assert role not in params, (name, role)
            assert role in data_level or (role == "covariates" and not REGISTRY[name].covariates), (name, role)
        for arg in entry.codes:
            assert (arg in params) != (arg in entry.roles) and arg in data_level, (name, arg)
        options = set(params) - {"panel"}
        assert options <= set(data_level), (name, options - set(data_level))
