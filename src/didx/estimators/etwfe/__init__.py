"""Extended two-way fixed effects (Wooldridge): :mod:`didx.estimators.etwfe.estimator`."""
