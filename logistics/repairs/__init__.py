"""Repair assignment: data -> model -> solve -> plan."""
