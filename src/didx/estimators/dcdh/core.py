"""The DID_l computations of de Chaisemartin & D'Haultfoeuille (2024) on the prepared grid.

For one direction of switch (``s = 1``: switchers in, whose treatment rises above the baseline; ``s = 0``:
switchers out) and one horizon ``l``, the estimator compares the switchers' long difference
``Y_{g, F_g - 1 + l} - Y_{g, F_g - 1}`` with that of the groups with the same baseline treatment that have not
switched yet at ``F_g - 1 + l``. Everything is expressed through the group-level influence variables of
DIDmultiplegtDYN (``U_{G,g,l}``, and ``U^var_{G,g,l}`` demeaned within cohorts with a degrees-of-freedom
adjustment), so that ``DID_l = sum_g U_{G,g,l} / G`` and ``Var(DID_l) = sum_c (sum_{g in c} U^var_{G,g,l})^2 / G^2``.
All sums over groups are ``bincount`` / matrix reductions; the only loops are over horizons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from didx.estimators.dcdh.controls import ControlsFit, residualize, shift3, variance_correction
from didx.estimators.dcdh.prep import DcdhData
from didx.inference.dcdh_variance import Influence, VarPiece


@dataclass
class Component:
    """One estimated DID_l (or placebo) for one direction of switch."""

    n_switch_w: float  # N^1_l (weighted number of switchers)
    U: np.ndarray  # (G,) U_{G,g,l}
    U_var: Influence  # U^var_{G,g,l}: pieces whose small-cohort factors depend on the clustering
    count: np.ndarray  # (G, T) weight of each cell used (N displayed by the package)
    cells: np.ndarray  # (G, T) bool: cell used
    switcher_cells: np.ndarray  # (G, T) bool: the switchers' cells (F_g - 1 + l)
    delta_change: float = np.nan  # average treatment change of the switchers at F_g - 1 + l
    delta_norm: float = np.nan  # average cumulated treatment change (normalized option)
    delta_g: np.ndarray | None = None  # (G,) N_gt |D - d_sq| at the switcher cell, for the accumulated periods


def shift(a: np.ndarray, k: int) -> np.ndarray:
    """``a[:, c - k]`` (NaN for c < k): R's ``lag`` within group on the balanced grid."""
    out = np.full_like(a, np.nan)
    if k < a.shape[1]:
        out[:, k:] = a[:, : a.shape[1] - k]
    return out


class Core:
    """Computations shared by every horizon for a prepared grid."""

    def __init__(self, data: DcdhData, controls: ControlsFit | None = None) -> None:
        self.d = data
        self.controls = controls
        self.G = float(data.n_groups_total)
        self.n_g, self.n_t = data.Y.shape
        self.key = data.d_code[:, None] * self.n_t + np.arange(self.n_t)[None, :]
        self.F = data.F[:, None]
        self.tv = data.tv[None, :].astype(np.float64)
        self.T_g = data.T_g[:, None]
        self.rows = np.arange(self.n_g)

    def by_dt(self, vals: np.ndarray) -> np.ndarray:
        """Sum (NaN as 0) by (baseline treatment, period), broadcast back to the (G, T) grid."""
        v = np.where(np.isnan(vals), 0.0, vals)
        s = np.bincount(self.key.ravel(), weights=v.ravel(), minlength=self.d.n_d * self.n_t)
        return s[self.key]

    def effect_inputs(self, l: int, s: int, still: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Long difference, control indicator and switcher indicator for effect ``l``, direction ``s``
        (``still``: the package's same-switchers restriction, used by ``trends_lin``)."""
        d = self.d
        diff = d.Y - shift(d.Y, l)
        nan = np.isnan(diff)
        nc = np.where(nan, np.nan, (self.tv < self.F).astype(np.float64))
        ctrl = self.by_dt(nc * d.N)
        sw = (self.tv == self.F - 1 + l) & (l <= d.L[:, None]) & (d.S[:, None] == s) & (ctrl > 0)
        if still is not None:
            sw &= still[:, None]
        dist = np.where(nan, np.nan, sw.astype(np.float64))
        return diff, nc, dist

    def component(self, diff: np.ndarray, nc: np.ndarray, dist: np.ndarray, l: int) -> Component | None:
        """U, the variance piece and the counts of one DID_l (or placebo) given its differences, controls and
        switchers."""
        d = self.d
        N = d.N
        n1_t = np.nansum(dist * N, axis=0)
        n1 = float(n1_t.sum())
        if n1 == 0:
            return None
        ctrl = self.by_dt(nc * N)
        n1g = self.by_dt(dist * N)
        G = self.G
        inrange = (self.tv >= l + 1) & (self.tv <= self.T_g)
        dummy = (l <= d.T_g - 1)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = n1g / ctrl
            term = dist - ratio * nc
            u_temp = dummy * (G / n1) * inrange * N * term * diff
            used = (~np.isnan(u_temp) & (u_temp != 0)) | (
                (u_temp == 0) & (diff == 0) & ((dist != 0) | ((n1g != 0) & (nc != 0))))
            weight = dummy * (G / n1) * term * inrange * N
        piece = self._variance_piece(diff, nc, dist, n1_t, weight, l)
        return Component(
            n_switch_w=n1, U=np.nansum(u_temp, axis=1), U_var=Influence.of(piece),
            count=np.where(used, N, 0.0), cells=used, switcher_cells=dist == 1,
        )

    def _variance_piece(self, diff: np.ndarray, nc: np.ndarray, dist: np.ndarray, n1_t: np.ndarray,
                        weight: np.ndarray, l: int) -> VarPiece:
        """The cells of ``U^var`` with their demeaning sets (see :mod:`didx.inference.dcdh_variance`): the
        not-yet-switched controls of (baseline, period), the switchers' cohorts (same baseline, switching date and
        treatment at the switch), and the union of both by (baseline, period) for sets of one cluster."""
        d = self.d
        N = d.N
        n_keys = d.n_d * self.n_t
        ok = ~np.isnan(diff)
        before = self.tv < self.F
        at_sw = self.tv == self.F - 1 + l
        cset = ok & (nc == 1) & (n1_t[None, :] > 0)
        sw = dist == 1
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_ns = self.by_dt(np.where(cset, diff * N, 0.0)) / self.by_dt(np.where(cset, N, 0.0))
            uset = (sw | cset) & (N != 0)
            mean_u = self.by_dt(np.where(uset, diff * N, 0.0)) / self.by_dt(np.where(uset, N, 0.0))
            cohort = np.broadcast_to(d.cohort_code[:, None], N.shape)
            n_co = int(d.cohort_code.max()) + 1 if d.cohort_code.size else 1
            c_cnt = np.bincount(cohort[sw], weights=N[sw], minlength=n_co)
            c_tot = np.bincount(cohort[sw], weights=diff[sw] * N[sw], minlength=n_co)
            mean_s = c_tot / c_cnt
        own = np.full(N.shape, -1, dtype=np.int64)
        own = np.where(before & cset, self.key, own)
        own = np.where(at_sw & sw, n_keys + cohort, own)
        own_mean = np.where(before & cset, mean_ns, np.where(at_sw & sw, mean_s[cohort], np.nan))
        member = (own >= 0) & (N != 0)
        valid = (before | at_sw) & np.isfinite(weight) & ok & (weight != 0)
        gi, ti = np.nonzero(valid | member)
        sets, s_first, s_inv = np.unique(own[gi, ti], return_index=True, return_inverse=True)
        has = sets[0] < 0 if sets.size else False
        own_c = (s_inv.ravel() - (1 if has else 0)).astype(np.int32)
        first = s_first[1:] if has else s_first
        keys = self.key[gi[first], ti[first]]
        _, p_first, p_inv = np.unique(keys, return_index=True, return_inverse=True)
        return VarPiece(
            group=gi.astype(np.int32), own=own_c,
            weight=np.where(valid[gi, ti], weight[gi, ti], 0.0), diff=np.where(ok[gi, ti], diff[gi, ti], 0.0),
            member=member[gi, ti], own_mean=own_mean[gi[first], ti[first]], pool=p_inv.ravel().astype(np.int32),
            pool_mean=mean_u[gi[first[p_first]], ti[first[p_first]]],
        )

    def effect(self, l: int, s: int, normalized: bool, still: np.ndarray | None = None
               ) -> tuple[Component | None, np.ndarray, np.ndarray]:
        """DID_l for direction ``s``; also returns its control and switcher indicators (reused by placebos)."""
        d = self.d
        diff, nc, dist = self.effect_inputs(l, s, still)
        dX = None
        if self.controls is not None and d.X is not None:
            dX = d.X - shift3(d.X, l)
            diff = residualize(diff, dX, self.controls.theta[d.d_code])
        comp = self.component(diff, nc, dist, l)
        if comp is not None and dX is not None:
            self._correct(comp, dist, nc, dX, l)
        if comp is not None:
            sw = comp.switcher_cells
            sign = np.where(d.S[:, None] == 1, 1.0, -1.0)
            change = sign * (d.D - d.d_sq[:, None])
            w = d.N / comp.n_switch_w
            comp.delta_change = float(np.sum(np.where(sw, w * change, 0.0)))
            comp.delta_g = np.where(sw, d.N * np.abs(d.D - d.d_sq[:, None]), 0.0).sum(axis=1)
            if normalized:
                comp.delta_norm = self._cumulated(sw, w, l)
        return comp, nc, dist

    def placebo(self, i: int, nc_eff: np.ndarray, dist_eff: np.ndarray, normalized: bool,
                fillin: np.ndarray | None = None) -> Component | None:
        """Placebo i: the long difference ``Y_{F_g - 1 - i} - Y_{F_g - 1}`` on effect i's switchers/controls
        (``fillin``: the package's same-switchers restriction for placebos, used by ``trends_lin``)."""
        d = self.d
        diff = shift(d.Y, 2 * i) - shift(d.Y, i)
        has = (~np.isnan(diff)).astype(np.float64)
        nc, dist = nc_eff * has, dist_eff * has
        if fillin is not None:
            dist = dist * fillin[:, None]
        dX = None
        if self.controls is not None and d.X is not None:
            dX = shift3(d.X, 2 * i) - shift3(d.X, i)
            diff = residualize(diff, dX, self.controls.theta[d.d_code])
        comp = self.component(diff, nc, dist, i)
        if comp is not None and dX is not None:
            self._correct(comp, dist, nc, dX, i)
        if comp is not None and normalized:
            # DIDmultiplegtDYN 2.2.0: the placebo's switchers' cumulated treatment change over the same window as
            # effect i, F_g .. F_g - 1 + i (2.1.2 also required the placebo's difference at those periods, which
            # left Placebo_2 and beyond un-normalised)
            comp.delta_norm = self._cumulated(comp.switcher_cells, d.N / comp.n_switch_w, i)
        return comp

    def same_switchers(self, effects: int, placebo: int) -> tuple[np.ndarray, np.ndarray]:
        """The package's ``same_switchers`` (and ``same_switchers_pl``) restriction: switchers observed with a
        control group at every horizon ``1..effects`` (and every placebo ``1..placebo``), with
        ``F_g - 1 + effects <= T_g``. Returns (still switcher, placebo fill-in) per group."""
        d = self.d
        Y, N = d.Y, d.N

        def count(q_range: range, lead: bool) -> np.ndarray:
            chk = np.zeros(self.n_g)
            for q in q_range:
                if lead:
                    other = np.full_like(Y, np.nan)
                    if q < Y.shape[1]:
                        other[:, : Y.shape[1] - q] = Y[:, q:]
                    at = self.tv == self.F - 1 - q
                else:
                    other = shift(Y, q)
                    at = self.tv == self.F - 1 + q
                dq = Y - other
                ok = ~np.isnan(dq)
                ctrl = self.by_dt(np.where(ok & (self.tv < self.F), N, 0.0))
                chk += np.any(at & (ctrl > 0), axis=1) & np.any(at & ok, axis=1)
            return chk

        still = (d.F - 1 + effects <= d.T_g) & (count(range(1, effects + 1), False) == effects)
        fillin = count(range(1, placebo + 1), True) == placebo if placebo else np.ones(self.n_g, dtype=bool)
        return still, fillin

    def _correct(self, comp: Component, dist: np.ndarray, nc: np.ndarray, dX: np.ndarray, l: int) -> None:
        """Subtract the controls' term from the variance influence variable (DIDmultiplegtDYN's part2_switch)."""
        assert self.controls is not None
        N = self.d.N
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = self.by_dt(dist * N) / self.by_dt(nc * N)
        comp.U_var = comp.U_var.minus_fixed(
            variance_correction(self.controls, self.d, self.G, comp.n_switch_w, l, dist, nc, ratio, dX))

    def _cumulated(self, sw: np.ndarray, w: np.ndarray, l: int) -> float:
        """sum over switchers of w * S-signed sum_{k=F_g}^{F_g-1+l} (D_k - d_sq)."""
        d = self.d
        window = (self.tv >= self.F) & (self.tv <= self.F - 1 + l)
        tot = np.where(window & ~np.isnan(d.D), d.D - d.d_sq[:, None], 0.0).sum(axis=1)
        sign = np.where(d.S == 1, 1.0, -1.0)
        per_g = sign * tot
        return float(np.sum(np.where(sw, w * per_g[:, None], 0.0)))

