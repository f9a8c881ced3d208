"""didx.compare(): one table for every estimator (fixest's etable as the model).

The findings of issue 12 each have a test here that failed before the fix: the "190-character staircase" (every
estimator naming its headline differently), ``terms=["treated", "ATT"]`` leaving the Callaway-Sant'Anna column
empty (now ``keep=["ATT"]``), and ``event_study(estimator="all")`` refused.
"""

from __future__ import annotations

import itertools
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd
import pytest

import didx
from didx._sample import SampleReport
from didx.results.base import Inference, Result
from didx.results.compare import Comparison
from didx.results.render import fmt_num

KW: dict[str, Any] = {"y": "lemp", "unit": "countyreal", "time": "year"}


@pytest.fixture(scope="module")
def fits(mpdta: pd.DataFrame) -> dict[str, Any]:
    att_gt = didx.att_gt(mpdta, **KW, cohort="first.treat")
    return {
        "TWFE": didx.twfe(mpdta, **KW, treat="treat_post"),
        "CS": att_gt.aggregate("simple"),
        "SA": didx.sun_abraham(mpdta, **KW, cohort="first.treat"),
        "BJS": didx.imputation(mpdta, **KW, cohort="first.treat"),
        "did2s": didx.did2s(mpdta, **KW, cohort="first.treat"),
        "dCDH": didx.dcdh(mpdta, **KW, treat="treat_post", effects=4, placebo=2),
        "att_gt": att_gt,
        "CS dynamic": att_gt.aggregate("dynamic"),
    }


SIX = ("TWFE", "CS", "SA", "BJS", "did2s", "dCDH")


def _rows(table: Comparison) -> dict[str, tuple[str, ...]]:
    return {r[0]: r[1:] for r in table.rows if r[0]}


def test_one_att_row_and_aligned_event_times(fits: dict[str, Any]) -> None:
    table = didx.compare({k: fits[k] for k in SIX})
    assert isinstance(table, Comparison)
    labels = [r[0] for r in table.estimates if r[0]]
    assert labels.count("ATT") == 1 and labels[0] == "ATT"
    rows = _rows(table)
    for name, cell in zip(SIX, rows["ATT"], strict=True):  # every estimator's headline on the one ATT row
        assert cell == fmt_num(fits[name].estimate, 4), name
    # event_time rows: one per event time, in order, each estimator's own term on it
    events = [lab for lab in labels if lab.startswith("event_time = ")]
    ks = [int(lab.split(" = ")[1]) for lab in events]
    assert ks == sorted(ks) and len(set(ks)) == len(ks) and set(ks) == {-4, -3, -2, 0, 1, 2, 3}
    sa, dcdh = fits["SA"], fits["dCDH"]
    assert rows["event_time = 0"][2] == fmt_num(sa.params["year::0"], 4)
    assert rows["event_time = 0"][5] == fmt_num(dcdh.params["Effect_1"], 4)  # Effect_1 is at event time 0
    assert rows["event_time = -3"][5] == fmt_num(dcdh.params["Placebo_2"], 4)
    assert rows["event_time = -4"][5] == ""  # dCDH has no placebo there
    # no raw estimator term names left in the rows (the staircase of issue 12)
    for raw in ("treat_post", "ATT (simple)", "year::0", "Av_tot_eff", "Effect_1"):
        assert raw not in labels


def test_the_staircase_is_gone(fits: dict[str, Any]) -> None:
    """Issue 12: TWFE, CS, Sun-Abraham, BJS and did2s made a 190-character staircase of differently named
    headline rows. Now they share one ATT row and the text is far narrower."""
    table = didx.compare([fits[k] for k in ("TWFE", "CS", "SA", "BJS", "did2s")])
    text = str(table)
    assert max(len(line) for line in text.splitlines()) < 120
    att = _rows(table)["ATT"]
    assert all(att)


@pytest.mark.parametrize("three", list(itertools.combinations(SIX, 3)))
def test_three_models_fit_in_100_characters(fits: dict[str, Any], three: tuple[str, ...]) -> None:
    text = str(didx.compare([fits[k] for k in three], stars=True))
    assert max(len(line) for line in text.splitlines()) < 100, text


def test_keep_att_fills_every_column(fits: dict[str, Any]) -> None:
    """Issue 12: ``terms=["treated", "ATT"]`` left the Callaway-Sant'Anna column empty; ``keep=["ATT"]`` now
    selects the one headline row that every model fills."""
    table = didx.compare([fits["TWFE"], fits["CS"]], keep=["ATT"])
    assert isinstance(table, Comparison)
    assert [r[0] for r in table.estimates if r[0]] == ["ATT"]
    assert all(_rows(table)["ATT"])
    # a model's own term name selects its row too
    same = didx.compare([fits["TWFE"], fits["CS"]], keep=["treat_post"])
    assert isinstance(same, Comparison) and same.estimates == table.estimates


def test_keep_orders_and_drop_removes(fits: dict[str, Any]) -> None:
    table = didx.compare([fits["SA"]], keep=["event_time = 2", "ATT"])
    assert isinstance(table, Comparison)
    assert [r[0] for r in table.estimates if r[0]] == ["event_time = 2", "ATT"]
    regex = didx.compare([fits["SA"]], keep="event_time = -")
    assert isinstance(regex, Comparison)
    assert [r[0] for r in regex.estimates if r[0]] == ["event_time = -4", "event_time = -3", "event_time = -2"]
    dropped = didx.compare([fits["SA"]], drop=["event_time"])
    assert isinstance(dropped, Comparison)
    assert [r[0] for r in dropped.estimates if r[0]] == ["ATT"]
    with pytest.raises(didx.InvalidOptionError, match=r"matches no row.*Did you mean 'ATT'"):
        didx.compare([fits["SA"]], keep=["ATX"])
    with pytest.raises(didx.InvalidOptionError, match="no row"):
        didx.compare([fits["SA"]], drop=["nothing like this"])
    with pytest.raises(didx.InvalidOptionError, match="left no row"):
        didx.compare([fits["SA"]], keep=["ATT"], drop=["ATT"])


def test_rename(fits: dict[str, Any]) -> None:
    table = didx.compare([_synthetic([1.0, 2.0]), fits["SA"]], rename={"ATT": "Effect", "b1": "Second term",
                                                                      "event_time = 0": "On impact"})
    labels = [r[0] for r in table.rows]  # type: ignore[union-attr]
    assert "Effect" in labels and "Second term" in labels and "On impact" in labels and "ATT" not in labels


def test_estimator_all_is_accepted(mpdta: pd.DataFrame, fits: dict[str, Any]) -> None:
    """Issue 12: a comparison from ``event_study(estimator="all")`` was refused; it is now one column per
    estimator, labelled as in its plot."""
    comp = didx.event_study(mpdta, **KW, cohort="first.treat", estimator="all", window=(-1, 1))
    table = didx.compare(comp)
    assert isinstance(table, Comparison)
    assert table.header[1:] == tuple(comp.labels.get(k, k) for k in comp.results)
    rows = _rows(table)
    for j, res in enumerate(comp.results.values()):
        i = list(res.event_times).index(1.0)
        assert rows["event_time = 1"][j] == fmt_num(res.coef[i], 4)
    mixed = didx.compare({"all": comp, "static": fits["TWFE"]})
    assert isinstance(mixed, Comparison)
    assert mixed.header[-1] == "static" and mixed.header[1].startswith("all: ")


def _synthetic(t_stats: list[float]) -> Result:
    k = len(t_stats)
    return Result(estimator="synthetic", terms=tuple(f"b{i}" for i in range(k)), coef=np.array(t_stats),
                  vcov_matrix=np.eye(k), headline="b0", inference=Inference("iid"), sample=SampleReport(10, 10))


def test_stars_follow_fixest_thresholds() -> None:
    # normal reference: p = 0.0027, 0.0278, 0.0719, 0.317
    table = didx.compare(_synthetic([3.0, 2.2, 1.8, 1.0]), stars=True, digits=1)
    rows = _rows(table)  # type: ignore[arg-type]
    assert rows["ATT"] == ("3.0***",) and rows["b1"] == ("2.2**",) and rows["b2"] == ("1.8*",)
    assert rows["b3"] == ("1.0",)
    assert "*** p < 0.01, ** p < 0.05, * p < 0.1" in str(table)
    assert "*" not in "".join(r[1] for r in didx.compare(_synthetic([3.0]), digits=1).estimates)  # type: ignore


def test_below_se_ci_or_nothing(fits: dict[str, Any]) -> None:
    sa = fits["SA"]
    t = sa.tidy(conf_level=0.9).set_index("term")
    ci = didx.compare(sa, below="ci", conf_level=0.9)
    assert isinstance(ci, Comparison)
    i = [r[0] for r in ci.estimates].index("ATT")
    assert ci.estimates[i + 1][1] == f"[{fmt_num(t.loc['ATT', 'conf_low'])}, {fmt_num(t.loc['ATT', 'conf_high'])}]"
    assert "90% confidence intervals" in str(ci)
    se = didx.compare(sa)
    assert isinstance(se, Comparison) and se.estimates[i + 1][1] == f"({fmt_num(sa.std_error)})"
    bare = didx.compare(sa, below=None)
    assert isinstance(bare, Comparison) and all(r[0] for r in bare.estimates) and len(bare.estimates) == len(sa.terms)


def test_fit_rows(fits: dict[str, Any]) -> None:
    table = didx.compare([fits[k] for k in ("TWFE", "CS", "BJS")])
    rows = _rows(table)  # type: ignore[arg-type]
    assert rows["Observations"] == ("2500", "2500", "2500") and rows["Units"] == ("500", "500", "500")
    assert rows["FE: countyreal"] == ("Yes", "", "Yes") and rows["FE: year"] == ("Yes", "", "Yes")
    assert rows["Control group"] == ("", "never treated", "untreated obs.")
    assert rows["Base period"] == ("", "varying", "none")
    assert rows["S.E."] == ("CR1", "analytic", "BJS conservative")
    assert rows["Clusters"] == ("500", "500", "500") and rows["Clustered by"] == ("countyreal",) * 3
    assert table.top[0][0] == "Estimator"  # type: ignore[union-attr]
    assert rows["Estimator"][1] == "Callaway & Sant'Anna, simple"


def test_att_gt_cells_keep_their_names(fits: dict[str, Any]) -> None:
    """ATT(g,t) cells share event times across cohorts: they stay cells, not event_time rows."""
    table = didx.compare([fits["att_gt"], fits["CS dynamic"]])
    labels = [r[0] for r in table.rows if r[0]]  # type: ignore[union-attr]
    assert "ATT(2004,2005)" in labels and labels.count("event_time = 1") == 1 and labels.count("ATT") == 1
    rows = _rows(table)  # type: ignore[arg-type]
    assert rows["ATT"] == (fmt_num(fits["att_gt"].estimate), fmt_num(fits["CS dynamic"].estimate))


def test_formats(fits: dict[str, Any]) -> None:
    models = [fits["TWFE"], fits["SA"]]
    md = didx.compare(models, format="markdown")
    assert isinstance(md, str) and "| ATT |" in md and "| event_time = -4 |" in md
    tex = didx.compare(models, format="latex", stars=True)
    assert isinstance(tex, str)
    for needle in (r"\toprule", r"\midrule", r"\bottomrule", r"$^{***}$", r"event\_time = -4", r"\begin{tabular}{lcc}"):
        assert needle in tex, needle
    html = didx.compare(models, format="html")
    assert isinstance(html, str)

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)

    p = Cells()
    p.feed(html)
    assert p.tags.count("table") == 1 and p.tags.count("tbody") == 3 and "tfoot" in p.tags
    assert "<th scope=\"row\">ATT</th>" in html
    table = didx.compare(models)
    assert isinstance(table, Comparison) and table._repr_html_() == html
    with pytest.raises(didx.InvalidOptionError, match="format"):
        didx.compare(models, format="pdf")


def test_to_frame_holds_the_numbers(fits: dict[str, Any]) -> None:
    table = didx.compare({k: fits[k] for k in SIX})
    assert isinstance(table, Comparison)
    f = table.to_frame().set_index(["row", "model"])
    for k in SIX:
        assert f.loc[("ATT", k), "estimate"] == fits[k].estimate
        assert f.loc[("ATT", k), "std_error"] == fits[k].std_error
    assert f.loc[("event_time = 2", "SA"), "term"] == "year::2"


def test_sensitivity_column(fits: dict[str, Any]) -> None:
    es = fits["SA"]
    h = didx.honest_did(es, M=[0.0, 0.02])
    table = didx.compare({"SA": es, "HonestDiD": h})
    rows = _rows(table)  # type: ignore[arg-type]
    assert rows["event_time = 0"][1] == fmt_num(h.original.estimate)  # the target lines up with its event time
    assert rows["robust CI, M = 0.02"] == ("", f"[{fmt_num(h.conf_low[1], 3)}, {fmt_num(h.conf_high[1], 3)}]")
    assert rows["Estimator"][1] == "HonestDiD FLCI" and rows["Breakdown M"][1] != ""


def test_bacon_column(mpdta: pd.DataFrame, fits: dict[str, Any]) -> None:
    b = didx.bacon(mpdta, **KW, treat="treat_post")
    table = didx.compare({"TWFE": fits["TWFE"], "Bacon": b})
    rows = _rows(table)  # type: ignore[arg-type]
    assert rows["ATT"] == (fmt_num(fits["TWFE"].estimate),) * 2  # the decomposed coefficient is the TWFE one
    assert any(lab.startswith("2x2: ") for lab in rows)


def test_bad_input() -> None:
    r = _synthetic([1.0])
    with pytest.raises(didx.InvalidOptionError, match="not a didx result"):
        didx.compare([r, "x"])
    with pytest.raises(didx.InvalidOptionError, match="non-empty"):
        didx.compare([])
    with pytest.raises(didx.InvalidOptionError, match="2 names for 1 results"):
        didx.compare([r], names=["a", "b"])
    with pytest.raises(didx.InvalidOptionError, match="not both"):
        didx.compare({"a": r}, names=["a"])
    with pytest.raises(didx.InvalidOptionError, match="two columns are named 'a'"):
        didx.compare([r, r], names=["a", "a"])
    with pytest.raises(didx.InvalidOptionError, match="digits"):
        didx.compare(r, digits=-1)
    with pytest.raises(didx.InvalidOptionError, match="below"):
        didx.compare(r, below="sd")


def test_long_names_wrap_at_spaces_then_hyphens() -> None:
    from didx.results.render import wrap_cell

    assert wrap_cell("de Chaisemartin-D'Haultfoeuille DID_l", 18) == ["de", "Chaisemartin-", "D'Haultfoeuille",
                                                                       "DID_l"]
    assert wrap_cell("Two-way fixed effects", 18) == ["Two-way fixed", "effects"]
    assert wrap_cell("short", 18) == ["short"]


def test_formula_fits_line_up(mpdta: pd.DataFrame, fits: dict[str, Any]) -> None:
    """A fixest-formula event study lines up with the TWFE event study, row for row."""
    df = mpdta.assign(rel=(mpdta["year"] - mpdta["first.treat"]).where(mpdta["first.treat"] > 0, -1000))
    es = didx.feols("lemp ~ i(rel, ref=c(-1, -1000)) | countyreal + year", df)
    direct = didx.event_study(mpdta, **KW, cohort="first.treat")
    table = didx.compare({"feols": es, "event_study": direct})
    rows = _rows(table)  # type: ignore[arg-type]
    assert rows["Estimator"] == ("feols", "TWFE event study")
    for k in (-4, -3, -2, 0, 1, 2, 3):
        a, b = rows[f"event_time = {k}"]
        assert a == b != ""
