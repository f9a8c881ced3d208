"""fixest-style formulas: ``didx.feols("lemp ~ treat + lpop | countyreal + year", data)``.

The grammar (a small subset of fixest's, parsed with Python's own expression parser, :mod:`ast`)::

    formula  :=  outcome "~" rhs [ "|" fixed_effects ]
    rhs      :=  term ( "+" term )*
    term     :=  column                      a numeric column
              |  column ":" column           the product of two numeric columns (fixest/R interaction)
              |  column "*" column           both columns and their product (R's a*b = a + b + a:b)
              |  i(factor [, var] [, ref=value | ref=c(v1, v2, ...)] [, keep=c(...)])
              |  i(factor, var, value)       fixest's positional reference
    fixed_effects := column ( "+" column )*  absorbed (never expanded into dummies)

``i(factor, ref=r)`` is one 0/1 column per value of ``factor`` other than ``r``, named ``factor::value``;
``i(factor, var, ref=r)`` multiplies them by the numeric ``var`` (``factor::value:var``), as fixest's ``i()``.
Rows where ``factor`` is missing are dropped (counted in the sample report), as fixest does. Column names may
contain dots (``first.treat``); other names need backticks (``\\`my col\\```). Not supported (a clear error):
``-1``/``0`` (no intercept), ``x^2``, functions such as ``log(x)``, fixest's ``sw()``/``csw()`` and ``a^b``
fixed-effect interactions.

A formula with one ``i()`` term returns an event study (:class:`~didx.results.event.EventStudyResult`: ``plot()``,
``pretrend_test()``, HonestDiD) whose event times are the ``i()`` values when they are relative periods (the
factor has negative values, ``i(rel_time, ref=-1)``), and ``value - (ref + 1)`` for a calendar factor
(``i(year, treated, ref=2013)``: the reference period is event time -1). Other formulas return an
:class:`~didx.OLSResult`. The keyword interface of the estimators stays; ``feols`` calls :func:`didx.ols`.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from didx._errors import InvalidOptionError
from didx._frame import read_columns
from didx.inference.vcov import SSC

_FUNC = "feols"


@dataclass(frozen=True)
class Term:
    """One right-hand-side term: a column (``kind="var"``), a product of columns (``"product"``), or fixest's
    ``i(factor, var, ref=..., keep=...)`` (``"i"``)."""

    kind: str
    columns: tuple[str, ...]
    ref: tuple[Any, ...] = ()
    keep: tuple[Any, ...] | None = None

    @property
    def label(self) -> str:
        return ":".join(self.columns) if self.kind != "i" else f"i({', '.join(self.columns)})"


@dataclass(frozen=True)
class Formula:
    """A parsed formula: ``outcome ~ terms | fixed_effects``."""

    outcome: str
    terms: tuple[Term, ...]
    fixed_effects: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        cols = [self.outcome, *(c for t in self.terms for c in t.columns), *self.fixed_effects]
        return list(dict.fromkeys(cols))


# ---------------------------------------------------------------- parsing
def _error(formula: str, what: str, fix: str) -> InvalidOptionError:
    return InvalidOptionError(f"{_FUNC}: cannot read the formula {formula!r}: {what}. Fix: {fix}")


_BACKTICK = re.compile(r"`([^`]*)`")


def parse(formula: str) -> Formula:
    """Parse ``"y ~ x1 + i(rel_time, ref=-1) | unit + time"`` (grammar in the module docstring)."""
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise _error(str(formula), "it needs exactly one '~'", "write 'outcome ~ regressors | fixed effects'.")
    quoted: list[str] = []

    def stash(m: re.Match[str]) -> str:
        quoted.append(m.group(1))
        return f"__q{len(quoted) - 1}__"

    text = _BACKTICK.sub(stash, formula)
    lhs, rhs = (s.strip() for s in text.split("~"))
    rhs = rhs.replace(":", " @ ")  # R's interaction a:b (binds tighter than +) -> Python's @
    try:
        outcome_node = ast.parse(lhs, mode="eval").body
        tree = ast.parse(rhs, mode="eval").body
    except SyntaxError as exc:
        raise _error(formula, f"not valid syntax ({exc.msg})", "see the grammar in help(didx.formula).") from None
    names = _Names(formula, quoted)
    outcome = names.column(outcome_node)
    fe_nodes: list[ast.expr] = []
    if isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.BitOr):
        left, fe_side = tree.left, tree.right
        tree = left
        if isinstance(left, ast.BinOp) and isinstance(left.op, ast.BitOr):
            raise _error(formula, "more than one '|' (fixest's IV parts are not supported)",
                         "write one '| fixed effects' part.")
        fe_nodes = _summands(fe_side)
    terms: list[Term] = []
    for node in _summands(tree):
        terms.extend(_terms(node, names))
    if not terms:
        raise _error(formula, "no regressor", "name at least one column or i() term right of '~'.")
    fes = tuple(names.column(n, "a fixed effect") for n in fe_nodes)
    return Formula(outcome, tuple(dict.fromkeys(terms)), fes)


class _Names:
    """Column names from AST nodes: dotted names (``first.treat``) and backticked ones."""

    def __init__(self, formula: str, quoted: list[str]) -> None:
        self.formula, self.quoted = formula, quoted

    def column(self, node: ast.expr, what: str = "a column") -> str:
        if isinstance(node, ast.Name):
            m = re.fullmatch(r"__q(\d+)__", node.id)
            return self.quoted[int(m.group(1))] if m else node.id
        if isinstance(node, ast.Attribute):
            return f"{self.column(node.value, what)}.{node.attr}"
        raise _error(self.formula, f"{ast.unparse(node)!r} is not {what}",
                     "name columns directly (compute transformations such as log(x) in the data first).")

    def value(self, node: ast.expr) -> tuple[Any, ...]:
        """``ref=`` / ``keep=`` values: a constant, ``c(a, b)``, a list or a tuple."""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "c":
            return tuple(v for a in node.args for v in self.value(a))
        if isinstance(node, ast.List | ast.Tuple):
            return tuple(v for a in node.elts for v in self.value(a))
        try:
            return (ast.literal_eval(node),)
        except ValueError:
            raise _error(self.formula, f"{ast.unparse(node)!r} is not a value",
                         "write ref=-1, ref=2013, ref='a' or ref=c(-1, -1000).") from None


def _summands(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [*_summands(node.left), *_summands(node.right)]
    return [node]


def _factors(node: ast.expr, op: type) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, op):
        return [*_factors(node.left, op), *_factors(node.right, op)]
    return [node]


def _terms(node: ast.expr, names: _Names) -> list[Term]:
    f = names.formula
    if isinstance(node, ast.Constant) and node.value in (0, 1):
        if node.value == 1:
            return []  # the intercept is implicit
        raise _error(f, "'0' (no intercept) is not supported", "keep the intercept or absorb it with '| fe'.")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
        raise _error(f, "'-' terms are not supported", "list the regressors to keep.")
    if isinstance(node, ast.Call):
        return [_i_term(node, names)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        return [Term("product", tuple(names.column(n) for n in _factors(node, ast.MatMult)))]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        cols = [names.column(n) for n in _factors(node, ast.Mult)]
        if len(cols) != 2:
            raise _error(f, "'*' of more than two columns", "write the terms out: a + b + a:b.")
        return [Term("var", (cols[0],)), Term("var", (cols[1],)), Term("product", tuple(cols))]
    if isinstance(node, ast.BinOp):
        raise _error(f, f"the operator in {ast.unparse(node)!r} is not supported",
                     "use '+', ':' (product) and '*' (a + b + a:b) right of '~', and compute other transformations "
                     "in the data.")
    return [Term("var", (names.column(node),))]


def _i_term(node: ast.Call, names: _Names) -> Term:
    f = names.formula
    if not (isinstance(node.func, ast.Name) and node.func.id == "i"):
        raise _error(f, f"{ast.unparse(node)!r}: the only function is i()",
                     "compute transformations in the data; sw()/csw() are not supported.")
    args = list(node.args)
    kw = {k.arg: names.value(k.value) for k in node.keywords}
    if len(args) == 3 and "ref" not in kw:  # fixest's positional form i(factor, var, ref)
        kw["ref"] = names.value(args.pop())
    if not 1 <= len(args) <= 2:
        raise _error(f, f"{ast.unparse(node)!r}: i() takes a factor and optionally a variable",
                     "write i(rel_time, ref=-1) or i(year, treated, ref=2013).")
    cols = tuple(names.column(a) for a in args)
    unknown = set(kw) - {"ref", "keep"}
    if unknown:
        raise _error(f, f"i() argument(s) {', '.join(sorted(str(u) for u in unknown))} are not supported",
                     "use ref= and keep=.")
    return Term("i", cols, ref=kw.get("ref", ()), keep=kw.get("keep"))


# ---------------------------------------------------------------- the regression
def _value_name(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float | np.floating) else str(v)


def _levels(values: np.ndarray) -> np.ndarray:
    present = values[pd.notna(values)]
    return np.asarray(pd.unique(present) if present.dtype == object else np.unique(present))


def _design(fml: Formula, arrays: dict[str, np.ndarray], formula: str
            ) -> tuple[dict[str, np.ndarray], Term | None, list[tuple[str, Any]]]:
    """The regressor columns (name -> values), the i() term (if exactly one) and per i() column its value."""
    out: dict[str, np.ndarray] = {}
    i_terms = [t for t in fml.terms if t.kind == "i"]
    levels: list[tuple[str, Any]] = []
    for t in fml.terms:
        if t.kind == "var":
            out[t.columns[0]] = arrays[t.columns[0]]
        elif t.kind == "product":
            vals = [np.asarray(arrays[c], dtype=float) for c in t.columns]
            out[t.label] = np.prod(vals, axis=0)
        else:
            fac = arrays[t.columns[0]]
            missing = ~pd.notna(fac)
            lv = _levels(fac)
            ref = set(t.ref)
            bad = [r for r in t.ref if r not in set(lv.tolist())]
            if bad:
                raise _error(formula, f"ref={bad[0]!r} is not a value of {t.columns[0]!r}",
                             f"choose among {', '.join(_value_name(v) for v in lv[:12])}.")
            chosen = [v for v in lv.tolist() if v not in ref and (t.keep is None or v in t.keep)]
            by = None if len(t.columns) == 1 else np.asarray(arrays[t.columns[1]], dtype=float)
            for v in chosen:
                d = (fac == v).astype(float)
                d[missing] = np.nan  # fixest drops rows with a missing factor
                name = f"{t.columns[0]}::{_value_name(v)}" + ("" if by is None else f":{t.columns[1]}")
                out[name] = d if by is None else d * by
                levels.append((name, v))
    return out, (i_terms[0] if len(i_terms) == 1 else None), levels


def feols(
    formula: str,
    data: Any,
    *,
    vcov: str | None = None,
    cluster: str | Sequence[str] | None = None,
    weights: str | None = None,
    ssc: SSC | None = None,
) -> Any:
    """Least squares from a fixest formula: ``"lemp ~ treat + lpop | countyreal + year"``.

    Parameters
    ----------
    formula : ``outcome ~ regressors | fixed effects`` (grammar: :mod:`didx.formula`), with fixest's ``i()``
        event-study terms: ``i(rel_time, ref=-1)``, ``i(year, treated, ref=2013)``.
    data : any dataframe (pandas, polars, pyarrow, duckdb, ...).
    vcov, cluster, weights, ssc : as :func:`didx.ols`. Default as fixest's ``feols``: clustered (CR1) by the
        first fixed effect when there are fixed effects, else ``"iid"``; printed by ``summary()``.

    Returns
    -------
    An :class:`~didx.results.event.EventStudyResult` when the formula has one ``i()`` term (its coefficients are
    the event times; ``plot()``, ``pretrend_test()``), else an :class:`~didx.OLSResult`. The headline is the first
    regressor. The same numbers as the keyword interface: ``feols("y ~ treat | unit + time")`` is
    ``didx.twfe(data, y="y", unit="unit", time="time", treat="treat")``.
    """
    from didx.estimators.regression.ols import ols

    fml = parse(formula)
    extra = [c for c in ([*([cluster] if isinstance(cluster, str) else list(cluster or []))]
                         + ([weights] if weights else [])) if c not in fml.columns]
    roles = {"y": fml.outcome, "x": list(dict.fromkeys(c for t in fml.terms for c in t.columns)),
             "fe": list(fml.fixed_effects),
             "cluster": [c for c in extra if c != weights], "weights": weights}
    cols = read_columns(data, [*fml.columns, *extra], _FUNC, roles)
    arrays = {c: cols.arrays[c] for c in [*fml.columns, *extra]}
    regressors, i_term, levels = _design(fml, arrays, formula)
    absorbed: list[str] = []
    if i_term is not None and len(i_term.columns) == 1:  # fixest removes an i() dummy a fixed effect absorbs
        i_term, absorbed = _absorbed_dummies(regressors, levels, i_term, [arrays[f] for f in fml.fixed_effects])
    frame = pd.DataFrame({fml.outcome: arrays[fml.outcome], **regressors})
    for c in [*fml.fixed_effects, *extra]:
        frame[c] = arrays[c]
    if vcov is None and cluster is None and fml.fixed_effects:
        cluster = fml.fixed_effects[0]  # fixest's default: clustered by the first fixed effect
    res = ols(frame, y=fml.outcome, x=list(regressors), fe=list(fml.fixed_effects) or None, vcov=vcov,
              cluster=cluster, weights=weights, ssc=ssc)
    design = (("Formula", formula), *res.design)
    notes = res.notes if not absorbed else (
        *res.notes, f"Dropped for collinearity with the fixed effects (as fixest does): {', '.join(absorbed)} (the "
                    f"dummy is constant within every fixed-effect level); it is omitted like a reference value.")
    res = dataclasses.replace(res, estimator=f"OLS (feols: {formula})", design=design, notes=notes)
    if i_term is None:
        return res
    return _event_study(res, i_term, levels)


def _absorbed_dummies(regressors: dict[str, np.ndarray], levels: list[tuple[str, Any]], term: Term,
                      fixed_effects: list[np.ndarray]) -> tuple[Term, list[str]]:
    """Remove (in place) the ``i()`` dummies that are constant within every level of a fixed effect, e.g. the
    never-treated code of ``i(rel_time, ref=-1)`` under unit fixed effects, and add their values to the term's
    references: fixest drops them for collinearity, and the fit is the one with ``ref=c(-1, -1000)``."""
    absorbed = []
    codes = [pd.factorize(fe, use_na_sentinel=False)[0] for fe in fixed_effects]

    def constant_within(d: np.ndarray, code: np.ndarray) -> bool:  # a 0/1 column: each level all 0 or all 1
        seen = ~np.isnan(d)
        ones, count = np.bincount(code, weights=np.where(seen, d, 0.0)), np.bincount(code, weights=seen)
        return bool(np.all((ones == 0) | (ones == count)))

    for name, value in list(levels):
        if len(levels) > 1 and any(constant_within(regressors[name], code) for code in codes):
            absorbed.append(name)
            del regressors[name]
            levels.remove((name, value))
            term = dataclasses.replace(term, ref=(*term.ref, value))
    return term, absorbed


def _event_study(res: Any, term: Term, levels: list[tuple[str, Any]]) -> Any:
    """The OLS result of a formula with one ``i()`` term as an event study (event times from the i() values)."""
    from didx.estimators.regression.event_study import EventStudyRegressionResult

    values = dict(levels)
    numeric = all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
                  for v in [*values.values(), *term.ref])
    if not numeric or not values:
        return res
    relative = min(float(v) for v in [*values.values(), *term.ref]) < 0
    refs = [float(r) for r in term.ref]
    shift = 0.0 if relative or not refs else max(refs) + 1.0
    et = np.array([float(values[t]) - shift if t in values else np.nan for t in res.terms])
    finite = et[np.isfinite(et)]
    # a reference far outside the estimated event times codes the never treated (fixest's ref=c(-1, -1000)):
    # omitted like the others, but not a period of the event study (not drawn)
    ref_et = tuple(r - shift for r in refs if finite.min() - 1 <= r - shift <= finite.max() + 1)
    rule = (f"k = {term.columns[0]} (relative periods)" if shift == 0.0
            else f"k = {term.columns[0]} - {shift:g} (the period after ref = {max(refs):g} is k = 0)")
    fields = {f.name: getattr(res, f.name) for f in dataclasses.fields(res)}
    fields.update(term_info={**res.term_info, "event_time": et},
                  extras={**res.extras, "reference": ref_et, "outcome": dict(res.design).get("Outcome")},
                  design=(*res.design, ("Event time", rule),
                          ("Reference period(s)", ", ".join(f"k = {r:g}" for r in ref_et) or "none")))
    pre = (f"b_k from the {term.label} dummies of one regression, relative to the omitted reference value(s) "
           f"{', '.join(_value_name(r) for r in term.ref) or '(none)'} (as fixest's i()).")
    return EventStudyRegressionResult(pre_period_meaning=pre, cross_covariance=True, **fields)
