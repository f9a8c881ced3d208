"""Estimators: one module per family."""
