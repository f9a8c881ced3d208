"""One synthetic DiD block: a unit x period outcome matrix whose last ``N1`` rows are treated from column ``T0`` on.

This is synthdid 0.0.9's ``synthdid_estimate`` (Arkhangelsky, Athey, Hirshberg, Imbens & Wager 2021, Algorithm 1):

* ``noise_level``: the standard deviation of the first differences of the controls' pre-period outcomes;
* ``zeta_omega = eta_omega * noise_level`` with ``eta_omega = (N1 T1)^(1/4)``, ``zeta_lambda = 1e-6 noise_level``;
  ``min_decrease = 1e-5 noise_level``;
* time weights lambda from the controls (regress their post-period mean on their pre-periods), unit weights omega
  from the pre-periods (regress the treated units' mean on the controls), both on the "collapsed" matrix
  (treated rows and post columns averaged), with intercepts, by two Frank-Wolfe rounds (100 steps, sparsify,
  then up to ``max_iter``);
* ``tau = [-omega, 1/N1]' Y [-lambda, 1/T1]``.

Synthetic control (``sc_estimate``) fixes lambda = 0 and drops the unit intercept, with ``eta_omega = 1e-6``; DiD
(``did_estimate``) fixes uniform weights. Options are held in :class:`BlockOptions`; replications (placebo,
bootstrap) reuse a fit's zetas and ``min_decrease`` as synthdid does (they are in its ``opts``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from didx.estimators.synthdid._fw import center_columns, frank_wolfe_shared, fw_step, sc_weights, sparsify


@dataclass(frozen=True)
class BlockOptions:
    """The weight options of one fit, after defaults are resolved (synthdid's ``opts``).

    zeta_omega, zeta_lambda : regularisation of the unit and time weights.
    omega_intercept, lambda_intercept : intercepts in the weight regressions.
    update_omega, update_lambda : False: the weights are fixed (given, or the special cases sc / did).
    min_decrease, max_iter : Frank-Wolfe stopping rule; max_iter_pre_sparsify None: no sparsification round.
    """

    zeta_omega: float
    zeta_lambda: float
    omega_intercept: bool = True
    lambda_intercept: bool = True
    update_omega: bool = True
    update_lambda: bool = True
    min_decrease: float = 1e-5
    max_iter: int = 10_000
    max_iter_pre_sparsify: int | None = 100


@dataclass(frozen=True)
class BlockFit:
    """Weights and estimate of one block (arrays carry a leading batch axis for replications)."""

    omega: np.ndarray  # (B, N0)
    lam: np.ndarray  # (B, T0)
    beta: np.ndarray  # (B, p) covariate coefficients (optimized covariates), zeros(B, 0) without
    estimate: np.ndarray  # (B,)


def noise_level(Y: np.ndarray, N0: int, T0: int) -> float:
    """sd of the first differences of the controls' pre-period outcomes (synthdid's default ``noise.level``)."""
    d = np.diff(Y[:N0, :T0], axis=1)
    if d.size < 2:
        return float("nan")
    return float(np.std(d, ddof=1))


def collapsed(Y: np.ndarray, N0: int, T0: int) -> np.ndarray:
    """(..., N0+1, T0+1): controls' pre-periods, their post mean, the treated pre means, the treated post mean."""
    top = np.concatenate([Y[..., :N0, :T0], Y[..., :N0, T0:].mean(axis=-1, keepdims=True)], axis=-1)
    tr = Y[..., N0:, :]
    bottom = np.concatenate([tr[..., :T0].mean(axis=-2, keepdims=True),
                             tr[..., T0:].mean(axis=(-2, -1), keepdims=True)], axis=-1)
    return np.concatenate([top, bottom], axis=-2)


def block_estimate(Y: np.ndarray, N0: int, T0: int, omega: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """``[-omega, 1/N1]' Y [-lambda, 1/T1]`` for a batch (B, N, T) with weights (B, N0), (B, T0)."""
    tr_post = Y[:, N0:, T0:].mean(axis=(1, 2))
    tr_pre = np.einsum("bnt,bt->b", Y[:, N0:, :T0], lam) / (Y.shape[1] - N0)
    co_post = np.einsum("bn,bnt->b", omega, Y[:, :N0, T0:]) / (Y.shape[2] - T0)
    co_pre = np.einsum("bn,bnt,bt->b", omega, Y[:, :N0, :T0], lam)
    return np.asarray(tr_post - tr_pre - co_post + co_pre)


def fit_block(Y: np.ndarray, N0: int, T0: int, opts: BlockOptions, *, omega: np.ndarray | None = None,
              lam: np.ndarray | None = None) -> BlockFit:
    """Weights and estimate for a batch of outcome matrices ``Y`` (B, N, T) (or one (N, T)).

    ``omega`` / ``lam`` are the fixed weights when ``update_*`` is False, else the Frank-Wolfe starting points
    (None: uniform), each (N0,) or (B, N0) / (T0,) or (B, T0).
    """
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 2:
        Y = Y[None]
    B = Y.shape[0]
    Yc = collapsed(Y, N0, T0)
    if opts.update_lambda:
        lam_w = sc_weights(Yc[:, :N0, :], opts.zeta_lambda, intercept=opts.lambda_intercept, init=lam,
                           min_decrease=opts.min_decrease, max_iter=opts.max_iter,
                           max_iter_pre_sparsify=opts.max_iter_pre_sparsify)
    else:
        lam_w = np.broadcast_to(np.asarray(lam, dtype=np.float64), (B, T0))
    if opts.update_omega:
        om_w = sc_weights(np.swapaxes(Yc[:, :, :T0], 1, 2), opts.zeta_omega, intercept=opts.omega_intercept,
                          init=omega, min_decrease=opts.min_decrease, max_iter=opts.max_iter,
                          max_iter_pre_sparsify=opts.max_iter_pre_sparsify)
    else:
        om_w = np.broadcast_to(np.asarray(omega, dtype=np.float64), (B, N0))
    est = block_estimate(Y, N0, T0, om_w, lam_w)
    return BlockFit(omega=np.array(om_w), lam=np.array(lam_w), beta=np.zeros((B, 0)), estimate=est)


def fit_block_covariates(Y: np.ndarray, X: np.ndarray, N0: int, T0: int, opts: BlockOptions, *,
                         omega: np.ndarray | None = None, lam: np.ndarray | None = None) -> BlockFit:
    """synthdid's ``sc.weight.fw.covariates`` (one problem): Frank-Wolfe steps for lambda and omega alternated
    with gradient steps ``beta -= (1/t) grad`` for the covariate coefficients, on the collapsed ``Y - X beta``,
    stopping when ``|val_{t-1} - val_t| <= min_decrease^2`` or after ``max_iter`` steps (no sparsification).

    ``Y`` (N, T); ``X`` (N, T, p). The estimate is ``[-omega, 1/N1]' (Y - X beta) [-lambda, 1/T1]``.
    """
    p = X.shape[2]
    Yc = collapsed(Y, N0, T0)
    Xc = np.stack([collapsed(X[:, :, j], N0, T0) for j in range(p)]) if p else np.zeros((0, *Yc.shape))
    lam_w = np.full(T0, 1.0 / T0) if lam is None else np.asarray(lam, dtype=np.float64).copy()
    om_w = np.full(N0, 1.0 / N0) if omega is None else np.asarray(omega, dtype=np.float64).copy()
    beta = np.zeros(p)
    z2l, z2o = opts.zeta_lambda ** 2, opts.zeta_omega ** 2
    # the two regressions' matrices are linear in beta (centring is linear): Y_l(beta) = Yl0 - Xl beta, etc.
    Yl0, Xl = Yc[:N0], Xc[:, :N0]
    Yo0, Xo = Yc[:, :T0].T, np.swapaxes(Xc[:, :, :T0], 1, 2)
    if opts.lambda_intercept:
        Yl0, Xl = center_columns(Yl0), center_columns(Xl)
    if opts.omega_intercept:
        Yo0, Xo = center_columns(Yo0), center_columns(Xo)
    Xl = np.ascontiguousarray(np.moveaxis(Xl, 0, -1))
    Xo = np.ascontiguousarray(np.moveaxis(Xo, 0, -1))
    X_top = np.ascontiguousarray(Xc[:, :N0, :])  # (p, N0, T0+1), uncentred, for the gradient
    X_pre = np.ascontiguousarray(np.swapaxes(Xc[:, :, :T0], 1, 2))  # (p, T0, N0+1)

    def step(beta: np.ndarray, lam_w: np.ndarray, om_w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray,
                                                                            np.ndarray, np.ndarray]:
        Yl = Yl0 - Xl @ beta
        if opts.update_lambda:
            lam_w = fw_step(Yl[:, :T0], lam_w, Yl[:, T0], N0 * z2l)
        err_l = Yl[:, :T0] @ lam_w - Yl[:, T0]
        Yo = Yo0 - Xo @ beta
        if opts.update_omega:
            om_w = fw_step(Yo[:, :N0], om_w, Yo[:, N0], T0 * z2o)
        err_o = Yo[:, :N0] @ om_w - Yo[:, N0]
        val = (z2o * float(om_w @ om_w) + z2l * float(lam_w @ lam_w) + float(err_o @ err_o) / T0
               + float(err_l @ err_l) / N0)
        return val, lam_w, om_w, err_l, err_o

    val, lam_w, om_w, err_l, err_o = step(beta, lam_w, om_w)
    vals: list[float] = []
    t = 0
    while t < opts.max_iter and (t < 2 or abs(vals[t - 2] - vals[t - 1]) > opts.min_decrease ** 2):
        t += 1
        lam1 = np.append(lam_w, -1.0)
        om1 = np.append(om_w, -1.0)
        grad = -((X_top @ lam1) @ err_l / N0 + (X_pre @ om1) @ err_o / T0)
        beta = beta - grad / t
        val, lam_w, om_w, err_l, err_o = step(beta, lam_w, om_w)
        vals.append(val)
    Yb = Y - X @ beta
    est = block_estimate(Yb[None], N0, T0, om_w[None], lam_w[None])
    return BlockFit(omega=om_w[None], lam=lam_w[None], beta=beta[None], estimate=est)


def placebo_weights(Y: np.ndarray, N0: int, T0: int, ctrl: np.ndarray, treated: np.ndarray, opts: BlockOptions,
                    omega: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The weights of replications that keep controls ``ctrl`` (R, n0) and treat ``treated`` (R, n1) (rows of
    ``Y``'s first ``N0``): :func:`fit_block` on each ``Y[concat(ctrl, treated)]``, without building the blocks'
    Gram matrices: every unit-weight problem's regressors are columns of the controls' (centred) pre-period
    matrix, so its Gram matrix is a block of one ``N0 x N0`` matrix (:func:`frank_wolfe_shared`).

    ``omega`` (R, n0) / ``lam`` (R, T0): starting points, or the weights themselves when not updated.
    """
    R = ctrl.shape[0]
    if opts.update_lambda:
        top = np.concatenate([Y[:N0, :T0], Y[:N0, T0:].mean(axis=1, keepdims=True)], axis=1)
        lam_w = sc_weights(top[ctrl], opts.zeta_lambda, intercept=opts.lambda_intercept, init=lam,
                           min_decrease=opts.min_decrease, max_iter=opts.max_iter,
                           max_iter_pre_sparsify=opts.max_iter_pre_sparsify)
    else:
        lam_w = np.broadcast_to(np.asarray(lam, dtype=np.float64), (R, T0))
    if not opts.update_omega:
        return np.broadcast_to(np.asarray(omega, dtype=np.float64), ctrl.shape).copy(), np.array(lam_w)
    Ac = Y[:N0, :T0].T
    b = Y[treated, :T0].mean(axis=1)  # (R, T0)
    if opts.omega_intercept:
        Ac = Ac - Ac.mean(axis=0, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
    G = Ac.T @ Ac
    c = np.take_along_axis(b @ Ac, ctrl, axis=1)
    eta = T0 * opts.zeta_omega ** 2

    def solve(x: np.ndarray, iters: int) -> np.ndarray:
        return frank_wolfe_shared(G, ctrl, c, x, eta, min_decrease=opts.min_decrease, n=T0, max_iter=iters)[0]

    x0 = np.broadcast_to(np.asarray(omega, dtype=np.float64), ctrl.shape)
    if opts.max_iter_pre_sparsify is None:
        om_w = solve(x0, opts.max_iter)
    else:
        om_w = solve(sparsify(solve(x0, opts.max_iter_pre_sparsify)), opts.max_iter)
    return om_w, np.array(lam_w)
