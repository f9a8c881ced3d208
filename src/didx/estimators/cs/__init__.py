"""Callaway & Sant'Anna (2021): ATT(g,t) from cohort x period sums and their aggregations."""
