"""Delivery routing: data -> search and set partitioning -> routes."""
