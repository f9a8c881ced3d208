"""Synthetic difference-in-differences and synthetic control (Arkhangelsky et al. 2021; Clarke et al. 2023)."""
