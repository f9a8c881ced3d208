"""Several results in one table, fixest's ``etable`` as the model (text, Markdown, LaTeX, HTML).

Every model's headline effect is the row ``ATT`` and its event-study coefficients are the rows
``event_time = k``, whatever the estimator calls them (``treated``, ``ATT (simple)``, ``year::2``, ``e=2``,
``tau2``, ``Effect_3``), so that estimators line up. Other terms (covariates, cohort effects) keep their names.
Fit rows below say how each model was estimated: estimator, observations, units, control group, base period,
fixed effects, standard errors and clusters.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from didx._errors import InvalidOptionError
from didx._validate import check_conf_level, check_option, did_you_mean
from didx.results.base import Result
from didx.results.comparison import EventStudyComparison
from didx.results.render import booktabs_table, fmt_num, html_sections, markdown_sections, text_sections

#: fixest's significance codes: p < 0.01, 0.05, 0.1.
STARS: tuple[tuple[float, str], ...] = ((0.01, "***"), (0.05, "**"), (0.1, "*"))
WRAP = 18  # text output: longer cells (estimator names) continue on the next line
_ATT, _OTHER, _EVENT, _SENSITIVITY = 0, 2, 1, 3  # row kinds, in display order: ATT, event times, other, sensitivity


@dataclass(frozen=True)
class _Row:
    label: str
    term: str
    kind: int
    key: float = 0.0
    estimate: float = float("nan")
    std_error: float = float("nan")
    p_value: float = float("nan")
    conf_low: float = float("nan")
    conf_high: float = float("nan")
    text: str | None = None  # a cell given as text (a sensitivity interval), instead of estimate and SE
    below: str | None = None  # a second line given as text


@dataclass(frozen=True)
class _Model:
    name: str
    rows: tuple[_Row, ...]
    fit: Mapping[str, str]


@dataclass(frozen=True)
class Comparison:
    """The table built by :func:`compare`: prints as text; ``to_markdown()``, ``to_latex()`` (booktabs),
    ``to_html()`` and ``to_frame()`` give the other forms. In a notebook it shows as HTML."""

    header: tuple[str, ...]
    top: tuple[tuple[str, ...], ...]
    estimates: tuple[tuple[str, ...], ...]
    fit: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    frame: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    @property
    def rows(self) -> tuple[tuple[str, ...], ...]:
        """Every body row (estimator, estimates, then fit rows), label first."""
        return self.top + self.estimates + self.fit

    def _sections(self) -> list[tuple[tuple[str, ...], ...]]:
        return [self.top, self.estimates, self.fit]

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return str(self)

    def to_text(self, wrap: int | None = WRAP) -> str:
        """Plain text; cells longer than ``wrap`` characters continue on the next line (None: never)."""
        body = text_sections(self.header, self._sections(), wrap=wrap)
        width = max(60, max(len(line) for line in body.splitlines()))
        notes = [ln for n in self.notes for ln in textwrap.wrap(n, width)]
        return body + ("\n" + "\n".join(notes) if notes else "")

    def to_markdown(self) -> str:
        return markdown_sections(self.header, self._sections(), self.notes)

    def to_latex(self, caption: str | None = None) -> str:
        """A LaTeX table with booktabs rules (needs ``\\usepackage{booktabs}``)."""
        return booktabs_table(self.header, self._sections(), self.notes, caption=caption)

    def to_html(self) -> str:
        """An HTML ``<table class="didx-compare">`` (escaped text; no styles or scripts)."""
        return html_sections(self.header, self._sections(), self.notes, css_class="didx-compare")

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_frame(self) -> pd.DataFrame:
        """The numbers: one row per (row label, model) with ``estimate, std_error, p_value, conf_low, conf_high``
        and the term's own name in that model."""
        return self.frame.copy()


def compare(results: Any, *, names: Sequence[str] | None = None, rename: Mapping[str, str] | None = None,
            keep: Sequence[str] | str | None = None, drop: Sequence[str] | str | None = None,
            stars: bool = False, below: str | None = "se", conf_level: float = 0.95, digits: int = 4,
            format: str = "text") -> Comparison | str:
    """Render results side by side, one column per model, with one ``ATT`` row and aligned ``event_time = k``
    rows.

    Parameters
    ----------
    results : a result, a list of results, or a dict ``{column name: result}``. Any didx result works: an
        estimator's result (its headline is the ``ATT`` row), an event study (its coefficients are the
        ``event_time = k`` rows), an :class:`~didx.EventStudyComparison` (``event_study(estimator="all")``: one
        column per estimator), a HonestDiD sensitivity result (its target's row, then one row per ``M`` with the
        robust interval) and a Goodman-Bacon decomposition (the TWFE coefficient as ``ATT``, then each
        comparison type's weighted estimate with its weight below).
    names : column headers for a list (default ``(1)``, ``(2)``, ...).
    rename : ``{row name or term: new name}``, e.g. ``{"ATT": "Effect", "lpop": "Log population"}``.
    keep, drop : rows to keep or drop. An entry equal to a row name (or to a model's own term name) matches that
        row; any other entry is a regular expression searched in the row names (``"event_time"`` keeps every
        event time). With ``keep`` the rows follow the order of its entries. An entry that matches no row is an
        error (so a typo never empties a table silently).
    stars : significance stars after the estimates (``*** p < 0.01, ** p < 0.05, * p < 0.1``, as fixest).
    below : what goes under each estimate: ``"se"`` (standard error in parentheses), ``"ci"`` (the
        ``conf_level`` interval in brackets: the uniform band where a model carries one) or None.
    digits : decimals shown.
    format : ``"text"`` returns a :class:`Comparison` (prints as text; has ``to_markdown``, ``to_latex``,
        ``to_html``, ``to_frame``); ``"markdown"``, ``"latex"`` (booktabs) or ``"html"`` return a string.
    """
    check_option("compare", "format", format, ("text", "markdown", "latex", "html"))
    check_option("compare", "below", below, ("se", "ci", None))
    conf_level = check_conf_level(conf_level)
    if not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 12:
        raise InvalidOptionError(f"compare(): digits must be an integer from 0 to 12; got {digits!r}.")
    models = [_model(name, obj, conf_level) for name, obj in _named(results, names)]
    rows = _order(models)
    labels = {lab: _renamed(lab, rows[lab], rename) for lab in rows}
    chosen = _select(rows, labels, keep, drop)
    header = ("", *(m.name for m in models))
    est_rows: list[tuple[str, ...]] = []
    records = []
    for lab in chosen:
        top, bottom = [labels[lab]], [""]
        for m in models:
            r = next((x for x in m.rows if x.label == lab), None)
            top.append("" if r is None else _cell(r, digits, stars))
            bottom.append("" if r is None else _below(r, below, digits))
            if r is not None:
                records.append({"row": labels[lab], "model": m.name, "term": r.term, "estimate": r.estimate,
                                "std_error": r.std_error, "p_value": r.p_value, "conf_low": r.conf_low,
                                "conf_high": r.conf_high})
        est_rows.append(tuple(top))
        if below is not None and any(bottom[1:]):
            est_rows.append(tuple(bottom))
    fit_rows = []
    for key in _fit_keys(models):
        cells = [m.fit.get(key, "") for m in models]
        if any(cells):
            fit_rows.append((key, *cells))
    table = Comparison(header=header, top=tuple(fit_rows[:1]), estimates=tuple(est_rows), fit=tuple(fit_rows[1:]),
                       notes=_notes(stars, below, conf_level), frame=pd.DataFrame.from_records(
                           records, columns=["row", "model", "term", "estimate", "std_error", "p_value",
                                             "conf_low", "conf_high"]))
    if format == "markdown":
        return table.to_markdown()
    if format == "latex":
        return table.to_latex()
    if format == "html":
        return table.to_html()
    return table


# ---- inputs --------------------------------------------------------------------------------------------------

def _named(results: Any, names: Sequence[str] | None) -> list[tuple[str, Any]]:
    """``(column name, result)`` pairs; comparisons expanded into their estimators."""
    if isinstance(results, Mapping):
        if names is not None:
            raise InvalidOptionError("compare(): give column names either as the keys of a dict or as names=, "
                                     "not both.")
        pairs = [(str(k), v) for k, v in results.items()]
    else:
        items = list(results) if isinstance(results, list | tuple) else [results]
        if names is not None and len(names) != len(items):
            raise InvalidOptionError(f"compare(): {len(names)} names for {len(items)} results.")
        pairs = [(str(n), v) for n, v in zip(names or [f"({i + 1})" for i in range(len(items))], items,
                                             strict=True)]
    out: list[tuple[str, Any]] = []
    for name, obj in pairs:
        if isinstance(obj, EventStudyComparison):
            many = len(pairs) > 1
            for key, res in obj.results.items():
                label = obj.labels.get(key, key)
                out.append((f"{name}: {label}" if many else label, res))
        else:
            out.append((name, obj))
    if not out:
        raise InvalidOptionError("compare() takes a result, a non-empty list of results or a dict {name: result}.")
    seen: set[str] = set()
    for name, _ in out:
        if name in seen:
            raise InvalidOptionError(f"compare(): two columns are named {name!r}. Fix: pass a dict with distinct "
                                     f"names, or names=[...].")
        seen.add(name)
    return out


def _model(name: str, obj: Any, conf_level: float) -> _Model:
    if isinstance(obj, Result):
        return _from_result(name, obj, conf_level)
    if all(hasattr(obj, a) for a in ("M", "conf_low", "conf_high", "original", "restriction")):
        return _from_honest(name, obj)
    if hasattr(obj, "by_type") and hasattr(obj, "twfe"):
        return _from_bacon(name, obj)
    raise InvalidOptionError(
        f"compare(): column {name!r} is a {type(obj).__name__}, not a didx result. compare() takes estimator "
        f"results, event-study comparisons (event_study(estimator='all')), HonestDiD results and Bacon "
        f"decompositions."
    )


def _from_result(name: str, r: Result, conf_level: float) -> _Model:
    t = r.tidy(conf_level)
    et = (np.asarray(r.term_info["event_time"], dtype=float) if "event_time" in r.term_info
          else np.full(len(r.terms), np.nan))
    finite = et[np.isfinite(et)]
    by_event = finite.size > 0 and np.unique(finite).size == finite.size  # not ATT(g,t) cells sharing an e
    rows, used = [], set()
    for i, term in enumerate(r.terms):
        e = et[i]
        if by_event and np.isfinite(e):
            label, kind, key = f"event_time = {e:g}", _EVENT, float(e)
        elif term == r.headline:
            label, kind, key = "ATT", _ATT, 0.0
        else:
            label, kind, key = term, _OTHER, 0.0
        if label in used:
            label, kind = term, _OTHER
        used.add(label)
        row = t.iloc[i]
        rows.append(_Row(label, term, kind, key, float(row["estimate"]), float(row["std_error"]),
                         float(row["p_value"]), float(row["conf_low"]), float(row["conf_high"])))
    return _Model(name, tuple(rows), _fit_rows(r))


def _from_honest(name: str, h: Any) -> _Model:
    o = h.original
    w = np.asarray(h.target_weights, dtype=float)
    post = np.asarray(h.post_event_times, dtype=float)
    one = np.flatnonzero(w != 0)
    if one.size == 1 and w[one[0]] == 1.0:
        label, kind, key = f"event_time = {post[one[0]]:g}", _EVENT, float(post[one[0]])
    else:
        label, kind, key = f"target: {h.target}", _OTHER, 0.0
    z = o.estimate / o.std_error if o.std_error > 0 else float("nan")
    rows = [_Row(label, h.target, kind, key, o.estimate, o.std_error, float(2 * stats.norm.sf(abs(z))),
                 o.conf_low, o.conf_high)]
    m_name = "M" if h.restriction == "smoothness" else "Mbar"
    for m, lo, hi in zip(h.M, h.conf_low, h.conf_high, strict=True):
        rows.append(_Row(f"robust CI, {m_name} = {m:g}", f"{m_name}={m:g}", _SENSITIVITY, conf_low=lo,
                         conf_high=hi, text=f"[{fmt_num(lo, 3)}, {fmt_num(hi, 3)}]"))
    fit = {"Estimator": f"HonestDiD {h.method}", "Restriction": h.restriction.replace("_", " "),
           "Base period": f"{h.reference:g}"}
    if h.restriction == "smoothness" or "_breakdown" in h.__dict__:  # relative magnitudes: only when computed
        b = h.breakdown
        fit[f"Breakdown {m_name}"] = "none" if b is None else fmt_num(b, 3)
    return _Model(name, tuple(rows), fit)


def _from_bacon(name: str, b: Any) -> _Model:
    rows = [_Row("ATT", "twfe", _ATT, estimate=float(b.twfe))]
    for r in b.by_type().itertuples():
        rows.append(_Row(f"2x2: {r.type}", str(r.type), _OTHER, estimate=float(r.avg_estimate),
                         below=f"w = {float(r.weight):.3f}"))
    fit = {"Estimator": "Goodman-Bacon decomposition", "Observations": str(b.sample.n_obs)}
    if b.sample.n_units is not None:
        fit["Units"] = str(b.sample.n_units)
    return _Model(name, tuple(rows), fit)


# ---- fit rows ------------------------------------------------------------------------------------------------

FIT_ORDER = ("Estimator", "Outcome", "Observations", "Units", "Control group", "Base period", "Restriction")


def _fit_keys(models: Sequence[_Model]) -> list[str]:
    keys = [k for k in FIT_ORDER if any(k in m.fit for m in models)]
    fe = dict.fromkeys(k for m in models for k in m.fit if k.startswith("FE: "))
    rest = [k for m in models for k in m.fit if k not in FIT_ORDER and not k.startswith("FE: ")]
    tail = ("S.E.", "Clustered by", "Clusters")
    return [*keys, *fe, *dict.fromkeys(k for k in rest if k not in tail), *(k for k in tail if k in rest)]


def _fit_rows(r: Result) -> dict[str, str]:
    d = dict(r.design)
    fit = {"Estimator": short_estimator(r.estimator)}
    if d.get("Outcome"):
        fit["Outcome"] = d["Outcome"]
    fit["Observations"] = str(r.sample.n_obs)
    if r.sample.n_units is not None:
        fit["Units"] = str(r.sample.n_units)
    control = _control(d)
    if control:
        fit["Control group"] = control
    base = _base(d)
    if base:
        fit["Base period"] = base
    for fe in fixed_effects(d):
        fit[f"FE: {fe}"] = "Yes"
    inf = r.inference
    fit["S.E."] = re.sub(r"\s*\([^)]*\)", "", inf.vcov_type.split(",")[0]).strip()
    if inf.cluster_names:
        fit["Clustered by"] = " + ".join(inf.cluster_names)
        fit["Clusters"] = " x ".join(str(g) for g in inf.n_clusters)
    return fit


def short_estimator(text: str) -> str:
    """An estimator's name without publication years or "aggregation" (``Callaway & Sant'Anna, simple``); a
    formula fit is ``feols`` (its outcome and fixed effects have their own rows)."""
    if text.startswith("OLS (feols: "):
        return "feols"
    s = re.sub(r"\s*\(\d{4}\)", "", text).replace(" aggregation", "")
    return s.strip()


def _control(d: Mapping[str, str]) -> str:
    v = (d.get("Control group") or d.get("Control units") or "").lower()
    if not v:
        fitted = (d.get("Fitted on") or d.get("First stage") or "").lower()
        return "untreated obs." if "untreated" in fitted else ""
    never = "never" in v
    not_yet = any(s in v for s in ("not yet", "not-yet", "not switched", "not yet switched"))
    if never and not_yet:
        return "never + not yet"
    if never:
        return "never treated"
    if not_yet:
        return "not yet treated"
    return re.split(r" \(|: ", v)[0]


def _base(d: Mapping[str, str]) -> str:
    for key in ("Base period", "Reference period(s)", "Reference period"):
        if d.get(key):
            v = d[key]
            v = v[4:] if v.startswith("k = ") else v
            return re.split(r" \(|; |, ", v)[0]
    return ""


def fixed_effects(d: Mapping[str, str]) -> list[str]:
    """The fixed-effect names a result's design lists (``Fixed effects``, BJS's ``Model for Y(0)``, did2s's
    ``First stage``)."""
    v = d.get("Fixed effects") or d.get("Model for Y(0)") or d.get("First stage") or ""
    v = re.sub(r"\s*\[[^\]]*\]", "", v).split(" fixed effects")[0].strip()
    if not v or v.lower().startswith("none"):
        return []
    return [p.strip() for p in re.split(r",\s*|\s+\+\s+", v) if p.strip()]


# ---- rows ----------------------------------------------------------------------------------------------------

def _order(models: Sequence[_Model]) -> dict[str, _Row]:
    """Every row label once (with its first row, for kind and sort key): ATT, event times in order, other terms
    in order of first appearance, sensitivity rows."""
    first: dict[str, tuple[int, _Row]] = {}
    n = 0
    for m in models:
        for r in m.rows:
            if r.label not in first:
                first[r.label] = (n, r)
                n += 1
    ordered = sorted(first.items(), key=lambda kv: (kv[1][1].kind, kv[1][1].key if kv[1][1].kind == _EVENT
                                                    else kv[1][0]))
    return {lab: r for lab, (_, r) in ordered}


def _renamed(label: str, row: _Row, rename: Mapping[str, str] | None) -> str:
    if not rename:
        return label
    if not isinstance(rename, Mapping):
        raise InvalidOptionError(f"compare(): rename must be a dict {{row or term: new name}}; got "
                                 f"{type(rename).__name__}.")
    return str(rename.get(label, rename.get(row.term, label)))


def _select(rows: Mapping[str, _Row], labels: Mapping[str, str], keep: Any, drop: Any) -> list[str]:
    names = {lab: {lab, labels[lab], r.term} for lab, r in rows.items()}

    def matches(entry: str) -> list[str]:
        exact = [lab for lab, ns in names.items() if entry in ns]
        if exact:
            return exact
        try:
            pattern = re.compile(entry)
        except re.error as exc:
            raise InvalidOptionError(f"compare(): {entry!r} is neither a row name nor a regular expression "
                                     f"({exc}).") from None
        return [lab for lab in rows if pattern.search(lab) or pattern.search(labels[lab])]

    def entries(value: Any, what: str) -> list[str]:
        out = [value] if isinstance(value, str) else list(value)
        for e in out:
            if not isinstance(e, str):
                raise InvalidOptionError(f"compare(): {what} takes row names or regular expressions; got {e!r}.")
            if not matches(e):
                raise InvalidOptionError(
                    f"compare(): {what}={e!r} matches no row.{did_you_mean(e, [labels[x] for x in rows])} "
                    f"Rows: {', '.join(labels[x] for x in rows)}."
                )
        return out

    chosen = list(rows)
    if keep is not None:
        ordered: dict[str, None] = {}
        for e in entries(keep, "keep"):
            for lab in matches(e):
                ordered.setdefault(lab, None)
        chosen = list(ordered)
    if drop is not None:
        gone = {lab for e in entries(drop, "drop") for lab in matches(e)}
        chosen = [lab for lab in chosen if lab not in gone]
    if not chosen:
        raise InvalidOptionError("compare(): keep/drop left no row to show.")
    return chosen


def _cell(r: _Row, digits: int, stars: bool) -> str:
    if r.text is not None:
        return r.text
    s = fmt_num(r.estimate, digits)
    if stars and np.isfinite(r.p_value):
        s += next((mark for cut, mark in STARS if r.p_value < cut), "")
    return s


def _below(r: _Row, below: str | None, digits: int) -> str:
    if r.below is not None or r.text is not None:
        return r.below or ""
    if below == "se" and np.isfinite(r.std_error):
        return f"({fmt_num(r.std_error, digits)})"
    if below == "ci" and np.isfinite(r.conf_low) and np.isfinite(r.conf_high):
        return f"[{fmt_num(r.conf_low, digits)}, {fmt_num(r.conf_high, digits)}]"
    return ""


def _notes(stars: bool, below: str | None, conf_level: float) -> tuple[str, ...]:
    out = ["ATT: each model's headline effect; event_time = k: its event-study coefficient k periods from "
           "treatment (what a lead k < 0 means differs by estimator: see each summary())."]
    if below == "se":
        out.append("Standard errors in parentheses.")
    elif below == "ci":
        out.append(f"{100 * conf_level:g}% confidence intervals in brackets (pointwise unless the model carries a "
                   f"uniform band).")
    if stars:
        out.append("Significance: " + ", ".join(f"{mark} p < {cut:g}" for cut, mark in STARS) + ".")
    return tuple(out)
