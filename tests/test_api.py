"""The public API: every advertised name resolves, and importing didx stays light."""

from __future__ import annotations

import subprocess
import sys

import didx


def test_every_public_name_resolves() -> None:
    for name in [*didx.__all__, *didx._LAZY]:
        assert getattr(didx, name) is not None, name
    assert set(didx._LAZY) <= set(dir(didx))


def test_import_does_not_load_matplotlib() -> None:
    code = "import sys, didx; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_estimators_take_keyword_arguments_only() -> None:
    import inspect

    for name in ("did2x2", "twfe", "ols", "event_study", "drdid", "bacon", "att_gt", "sun_abraham", "imputation",
                 "did2s", "dcdh", "twfe_weights", "stacked"):
        params = list(inspect.signature(getattr(didx, name)).parameters.values())
        assert params[0].name == "data", name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:]), name
