"""Sun & Abraham (2021) interaction-weighted event study."""
