"""Rhizome web dashboard: the regional map and a JSON API over the store (nothing imports this package)."""
