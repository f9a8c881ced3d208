"""de Chaisemartin & D'Haultfoeuille: DID_l / DID_M and the TWFE weights."""
