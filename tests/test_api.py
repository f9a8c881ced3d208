"""The public API: every advertised name resolves, every estimator of the registry is public, and importing
didx stays light."""

from __future__ import annotations

import inspect
import subprocess
import sys

import didx
from didx.registry import REGISTRY, comparison_estimators, lazy_exports, load


def test_every_public_name_resolves() -> None:
    for name in [*didx.__all__, *didx._LAZY]:
        assert getattr(didx, name) is not None, name
    assert set(didx._LAZY) <= set(dir(didx))


def test_import_does_not_load_matplotlib() -> None:
    code = "import sys, didx; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_every_registry_estimator_and_result_is_public() -> None:
    public = set(didx.__all__) | set(didx._LAZY)
    for name, module in lazy_exports().items():
        assert name in public, name
        obj = getattr(didx, name)
        assert obj.__module__.startswith("didx."), name
        assert getattr(__import__(module, fromlist=[name]), name) is obj, (name, module)
    for spec in REGISTRY.values():
        fn = getattr(didx, spec.name)
        assert fn is load(spec.public or spec.function), spec.name
        if spec.from_panel is not None:
            assert callable(spec.load_from_panel()), spec.name


def test_estimators_take_keyword_arguments_only() -> None:
    for name in REGISTRY:
        params = list(inspect.signature(getattr(didx, name)).parameters.values())
        assert params[0].name == "data", name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:]), name


def test_registry_declarations_match_the_signatures() -> None:
    """What the registry declares an estimator takes (covariates, a weights column, repeated cross sections) is in
    its signature, under the common names (no estimator has its own name for a common argument)."""
    for spec in REGISTRY.values():
        params = inspect.signature(spec.load()).parameters
        assert ("covariates" in params) == spec.covariates, spec.name
        assert ("weights" in params and params["weights"].default is None) == spec.weights, spec.name
        rcs = "panel" in params or "unit" not in params or params["unit"].default is None  # a unit is optional
        assert rcs == spec.repeated_cross_sections, spec.name
        assert spec.engines == ("numpy",), spec.name


def test_comparison_keys_are_event_study_estimators() -> None:
    specs = comparison_estimators()
    assert list(specs) == ["twfe", "sun_abraham", "callaway_santanna", "imputation", "did2s", "dcdh", "ddd",
                           "stacked", "etwfe", "lpdid"]
    for key, spec in specs.items():
        assert spec.event_study is not None and spec.pre_period is not None, key
    from didx.comparison import _MAPPED, _RUNNERS, ESTIMATORS, LABELS, NEEDS_COLUMNS, PRE_PERIOD, WINDOW_RULE

    assert tuple(n for n in specs if n not in NEEDS_COLUMNS) == ESTIMATORS
    for table in (_RUNNERS, _MAPPED, LABELS, WINDOW_RULE):  # a comparison key needs its runner and texts
        assert set(table) == set(specs)
    for spec in REGISTRY.values():
        if spec.pre_period is not None:
            key = spec.pre_period_key({"base_period": "universal"})
            assert key in PRE_PERIOD, spec.name
