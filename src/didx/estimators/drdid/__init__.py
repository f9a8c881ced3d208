"""Sant'Anna & Zhao (2020) doubly robust DiD: panel and repeated cross-section cell estimators."""
