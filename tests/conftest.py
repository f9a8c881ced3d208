"""Shared test helpers: reference fixtures and named tolerances."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REFERENCE_DIR = Path(__file__).parent / "reference"

# Named tolerances (relative), per quantity.
TOL_POINT = 1e-8       # point estimates vs the R reference
TOL_SE = 1e-8          # analytic standard errors vs the R reference (foundation estimators)
TOL_IDENTITY = 1e-10   # algebraic identities inside didx


def load_reference(name: str) -> Any:
    with open(REFERENCE_DIR / name) as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def mpdta() -> Any:
    import didx

    df = didx.datasets.load("mpdta")
    df["treat_post"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    return df


@pytest.fixture(scope="session")
def card_krueger() -> Any:
    import didx

    return didx.datasets.load("card_krueger")
