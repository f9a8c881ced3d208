"""Group-specific linear trends for the DID_l estimators (DIDmultiplegtDYN's ``trends_lin=TRUE``).

The sample preparation (``prepare(..., trends_lin=True)``) drops the groups whose treatment first changes at the
second period, replaces the outcome (and the controls) by their first differences within group and drops the first
period. Then, as the package's ``did_multiplegt_main`` does, the effect ``l`` is the sum of the effects ``1..l``
of the first-differenced outcome, all computed on the same switchers (the package's ``same_switchers``: switchers
with a control group at every horizon ``1..l`` and ``F_g - 1 + l <= T_g``):

``DID^{TL}_l = sum_{k=1}^{l} DID_k(dY; same switchers for l)``,

with influence variables ``sum_k U_{G,g,k}`` and ``sum_k U^var_{G,g,k}`` (the switcher and cell counts are those
of horizon ``l``). Placebo ``l`` is the same sum of placebos ``1..l``, with switchers also observed with controls
at every placebo horizon (``same_switchers_pl``). The average total effect is not defined (as in the package).
If one of the horizons ``1..l`` has no switcher, the package keeps the unsummed effect ``l``; so does this code.
"""

from __future__ import annotations

import numpy as np

from didx.estimators.dcdh.core import Component, Core


def _sum(comps: list[Component | None], last: Component | None) -> Component | None:
    if last is None:
        return None
    if any(c is None for c in comps):  # the package's Ntrendslin == 0: no summation
        return last
    tot = [c for c in comps if c is not None]
    return Component(
        n_switch_w=last.n_switch_w, U=np.sum([c.U for c in tot], axis=0),
        U_var=sum((c.U_var for c in tot[1:]), tot[0].U_var), count=last.count, cells=last.cells,
        switcher_cells=last.switcher_cells, delta_change=last.delta_change, delta_norm=last.delta_norm,
        delta_g=last.delta_g,
    )


def trends_lin_effect(core: Core, l: int, s: int, normalized: bool) -> Component | None:
    """``DID^{TL}_l`` for direction ``s`` (see the module docstring)."""
    still, _ = core.same_switchers(l, 0)
    comps = [core.effect(k, s, normalized, still)[0] for k in range(1, l + 1)]
    return _sum(comps, comps[-1])


def trends_lin_placebo(core: Core, l: int, s: int, normalized: bool) -> Component | None:
    """Placebo ``l`` with ``trends_lin``: the sum of placebos ``1..l`` on the same switchers."""
    still, fillin = core.same_switchers(l, l)
    comps: list[Component | None] = []
    for k in range(1, l + 1):
        _, nc, dist = core.effect(k, s, normalized, still)
        comps.append(core.placebo(k, nc, dist, normalized, fillin))
    return _sum(comps, comps[-1])
