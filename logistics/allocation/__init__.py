"""Surplus allocation: data -> model -> solve -> plan."""
