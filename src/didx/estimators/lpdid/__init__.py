"""Local-projections difference-in-differences: :mod:`didx.estimators.lpdid.estimator`."""
