"""Triple differences (Ortiz-Villavicencio & Sant'Anna 2025)."""
