"""Imputation estimators sharing one untreated-outcome first stage: Borusyak, Jaravel & Spiess (2024) and
Gardner's two-stage DiD (did2s)."""
