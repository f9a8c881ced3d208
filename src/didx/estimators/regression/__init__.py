"""Regression estimators: 2x2, TWFE, the TWFE event study, OLS, collapsing and stacked DiD."""
