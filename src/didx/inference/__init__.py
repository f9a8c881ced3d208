"""Inference: covariance estimators, Wald tests, bootstraps and uniform bands, all from stored results."""
