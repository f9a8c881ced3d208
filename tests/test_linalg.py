"""Fixed-effect absorption: the exact concentrated solve, alternating projections and dummies agree."""

from __future__ import annotations

import numpy as np
import pytest

import didx.linalg.absorb as absorb
from didx.linalg import FixedEffects, fit_ols


def _dummy_resid(x: np.ndarray, factors: list[np.ndarray], w: np.ndarray | None = None) -> np.ndarray:
    D = np.column_stack([np.eye(int(f.max()) + 1)[f] for f in factors])
    sw = np.ones(x.shape[0]) if w is None else np.sqrt(w)
    b = np.linalg.lstsq(D * sw[:, None], x * sw, rcond=None)[0]
    return x - D @ b


@pytest.mark.parametrize("weighted", [False, True])
def test_exact_two_way_equals_dummies_unbalanced(weighted: bool) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 40, 400)
    b = rng.integers(0, 7, 400)
    x = rng.standard_normal(400)
    w = rng.uniform(0.2, 3.0, 400) if weighted else None
    fe = FixedEffects([a, b], ["a", "b"], weights=w)
    assert fe.method.startswith("exact")
    np.testing.assert_allclose(fe.demean(x), _dummy_resid(x, [a, b], w), atol=1e-10)


def test_projections_equal_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 30, 300)
    b = rng.integers(0, 8, 300)
    x = rng.standard_normal(300)
    exact = FixedEffects([a, b], ["a", "b"]).demean(x)
    monkeypatch.setattr(absorb, "EXACT_MAX_LEVELS", 0)
    fe = FixedEffects([a, b], ["a", "b"])
    assert fe.method == "alternating projections"
    np.testing.assert_allclose(fe.demean(x), exact, atol=1e-10)


def test_components_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    a = np.r_[rng.integers(0, 50, 300), rng.integers(50, 90, 200)]
    b = np.r_[rng.integers(0, 6, 300), rng.integers(6, 10, 200)]
    assert FixedEffects([a, b], ["a", "b"]).n_params() == 90 + 10 - 2  # two connected components
    monkeypatch.setattr(absorb, "EXACT_MAX_LEVELS", 0)
    assert FixedEffects([a, b], ["a", "b"]).n_params() == 98
    # and the exact solve is right on a disconnected design
    x = rng.standard_normal(500)
    monkeypatch.setattr(absorb, "EXACT_MAX_LEVELS", 5000)
    np.testing.assert_allclose(FixedEffects([a, b], ["a", "b"]).demean(x), _dummy_resid(x, [a, b]), atol=1e-10)


def test_collinear_regressor_dropped_and_named() -> None:
    rng = np.random.default_rng(4)
    unit = np.repeat(np.arange(20), 5)
    time = np.tile(np.arange(5), 20)
    z = np.repeat(rng.standard_normal(20), 5)  # time-invariant: absorbed by unit effects
    d = (rng.random(100) < 0.5).astype(float)
    y = d + rng.standard_normal(100)
    fit = fit_ols(y, np.column_stack([d, z]), ["d", "z"], fe=FixedEffects([unit, time], ["u", "t"]))
    assert fit.names == ("d",) and fit.dropped_collinear == ("z",)


@pytest.mark.parametrize("scale", [1e-14, 1e12])
def test_weight_scale_invariance_exact_and_projections(monkeypatch: pytest.MonkeyPatch, scale: float) -> None:
    """Multiplying every weight by a constant changes nothing (no absolute thresholds on weight sums)."""
    rng = np.random.default_rng(6)
    a = rng.integers(0, 40, 400)
    b = rng.integers(0, 7, 400)
    x = rng.standard_normal(400)
    w = rng.uniform(0.2, 3.0, 400)
    ref = _dummy_resid(x, [a, b], w)
    np.testing.assert_allclose(FixedEffects([a, b], ["a", "b"], weights=w * scale).demean(x), ref, atol=1e-10)
    assert FixedEffects([a, b], ["a", "b"], weights=w * scale).n_params() == 40 + 7 - 1
    monkeypatch.setattr(absorb, "EXACT_MAX_LEVELS", 0)
    np.testing.assert_allclose(FixedEffects([a, b], ["a", "b"], weights=w * scale).demean(x), ref, atol=1e-10)


@pytest.mark.parametrize("scale", [1e-12, 1e9])
def test_outcome_scale_invariance_projections(monkeypatch: pytest.MonkeyPatch, scale: float) -> None:
    """The projections' stopping rule is relative to the data: a rescaled outcome is demeaned as precisely."""
    monkeypatch.setattr(absorb, "EXACT_MAX_LEVELS", 0)
    rng = np.random.default_rng(7)
    a = rng.integers(0, 30, 300)
    b = rng.integers(0, 8, 300)
    x = rng.standard_normal(300) + 3.0 * (a % 3) + b
    ref = _dummy_resid(x, [a, b])
    out = FixedEffects([a, b], ["a", "b"]).demean(x * scale) / scale
    np.testing.assert_allclose(out, ref, atol=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_exact_two_way_with_nested_factor(weighted: bool) -> None:
    """A factor nested in the other (region within unit) adds nothing: every one of its levels is redundant."""
    rng = np.random.default_rng(9)
    a = rng.integers(0, 50, 500)
    b = a % 4  # nested in a
    x = rng.standard_normal(500)
    w = rng.uniform(0.2, 3.0, 500) if weighted else None
    fe = FixedEffects([a, b], ["a", "b"], weights=w)
    assert fe.method.startswith("exact")
    np.testing.assert_allclose(fe.demean(x), _dummy_resid(x, [a], w), atol=1e-10)
    assert fe.n_params() == 50


def test_collinearity_rule_keeps_a_large_level_with_small_variation() -> None:
    """With fixed effects, a regressor far from zero with little variation (a date in seconds, a level of
    1e6 +- 0.5) is identified: its variation left after the fixed effects is compared with its *centred* variation,
    not with its raw sum of squares."""
    rng = np.random.default_rng(10)
    unit = np.repeat(np.arange(50), 6)
    time = np.tile(np.arange(6), 50)
    big = 1e6 + 0.5 * rng.standard_normal(300)
    d = (rng.random(300) < 0.4).astype(float)
    y = d + 0.3 * (big - 1e6) + rng.standard_normal(300)
    fit = fit_ols(y, np.column_stack([d, big]), ["d", "big"], fe=FixedEffects([unit, time], ["u", "t"]))
    assert fit.names == ("d", "big")
    ref = np.linalg.lstsq(np.column_stack([d, big - 1e6, np.eye(50)[unit], np.eye(6)[time][:, 1:]]), y,
                          rcond=None)[0]
    np.testing.assert_allclose(fit.coef, ref[:2], rtol=1e-6)
    # still dropped: a constant regressor (with fixed effects or an intercept), a time-invariant one with unit
    # effects, an exact linear combination
    const = np.full(300, 0.1)
    assert fit_ols(y, np.column_stack([np.ones(300), d, const]), ["(Intercept)", "d", "c"]).names == (
        "(Intercept)", "d")
    z = np.repeat(rng.standard_normal(50), 6)
    f2 = fit_ols(y, np.column_stack([d, const, z, big, 2 * d - big]), ["d", "c", "z", "big", "comb"],
                 fe=FixedEffects([unit, time], ["u", "t"]))
    assert f2.names == ("d", "big") and f2.dropped_collinear == ("c", "z", "comb")


def test_unused_levels_are_not_counted_as_parameters() -> None:
    """Codes with a gap (a level without observations, e.g. after subsetting) add no coefficient to K."""
    rng = np.random.default_rng(11)
    a = rng.integers(0, 39, 400)
    a[a >= 5] += 1  # level 5 of the large factor is never used
    b = rng.integers(0, 7, 400)
    b[b >= 3] += 1  # nor level 3 of the small one
    fe = FixedEffects([a, b], ["a", "b"])
    assert fe.method.startswith("exact")
    assert fe.n_params() == 39 + 7 - 1
    x = rng.standard_normal(400)
    np.testing.assert_allclose(fe.demean(x), _dummy_resid(x, [np.unique(a, return_inverse=True)[1],
                                                             np.unique(b, return_inverse=True)[1]]), atol=1e-10)


def test_exact_solve_pickles_and_pseudo_inverse_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    rng = np.random.default_rng(12)
    a = rng.integers(0, 40, 400)
    b = rng.integers(0, 7, 400)
    x = rng.standard_normal(400)
    fe = FixedEffects([a, b], ["a", "b"])
    again = pickle.loads(pickle.dumps(fe))
    np.testing.assert_allclose(again.demean(x), fe.demean(x), atol=1e-13)

    def fail(*args: object, **kwargs: object) -> None:
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr(absorb.sla, "cho_factor", fail)
    np.testing.assert_allclose(FixedEffects([a, b], ["a", "b"]).demean(x), _dummy_resid(x, [a, b]), atol=1e-10)


@pytest.mark.parametrize(("seed", "negative_variance"), [(1, False), (0, True)])
def test_two_way_repair_as_fixest(seed: int, negative_variance: bool) -> None:
    """fixest repairs a two-way clustered matrix only when a variance is negative (eigenvalues floored at 1e-10);
    an indefinite matrix with non-negative variances is returned unchanged."""
    from didx.inference.vcov import VcovSpec, _cluster_meat, _intersect, compute_vcov

    rng = np.random.default_rng(seed)
    n = 40
    X = np.column_stack([np.ones(n), rng.standard_normal((n, 2))])
    y = rng.standard_normal(n)
    c1, c2 = rng.integers(0, 4, n), rng.integers(0, 4, n)
    fit = fit_ols(y, X, ["a", "b", "c"])
    S, B = fit.scores(), fit.bread
    m1, g1 = _cluster_meat(S, c1)
    m2, g2 = _cluster_meat(S, c2)
    m12, _ = _cluster_meat(S, _intersect(c1, c2))
    g = min(g1, g2)
    raw = (n - 1) / (n - 3) * g / (g - 1) * (B @ (m1 + m2 - m12) @ B)
    raw = 0.5 * (raw + raw.T)
    assert (np.diag(raw).min() < 0) == negative_variance and np.linalg.eigvalsh(raw).min() < 0
    V = compute_vcov(fit, VcovSpec("CR1", ("c1", "c2")), {"c1": c1, "c2": c2}).matrix
    if negative_variance:
        vals, vecs = np.linalg.eigh(raw)
        np.testing.assert_allclose(V, (vecs * np.maximum(vals, 1e-10)) @ vecs.T, rtol=1e-12, atol=1e-18)
    else:
        np.testing.assert_allclose(V, raw, rtol=1e-12)


def test_fixef_exact_switch_on_a_disconnected_design() -> None:
    """Two disconnected blocks: the exact count removes two redundant levels (fixest's fixef.force_exact = TRUE),
    SSC(fixef_exact=False) one (fixest's default)."""
    from didx.inference.vcov import SSC, VcovSpec, compute_vcov

    rng = np.random.default_rng(0)
    a = np.r_[rng.integers(0, 50, 300), rng.integers(50, 90, 200)]
    b = np.r_[rng.integers(0, 6, 300), rng.integers(6, 10, 200)]
    x = rng.standard_normal(500)
    y = x + rng.standard_normal(500)
    fit = fit_ols(y, x[:, None], ["x"], fe=FixedEffects([a, b], ["a", "b"]))
    exact = compute_vcov(fit, VcovSpec("iid", (), SSC()), {})
    approx = compute_vcov(fit, VcovSpec("iid", (), SSC(fixef_exact=False)), {})
    assert exact.k_ssc == 1 + 90 + 10 - 2 and approx.k_ssc == 1 + 90 + 10 - 1
    assert approx.matrix[0, 0] / exact.matrix[0, 0] == pytest.approx((500 - exact.k_ssc) / (500 - approx.k_ssc))
