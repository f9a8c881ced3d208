"""Goodman-Bacon (2021) decomposition of the TWFE estimate."""
