"""The regional map: its data for static/js/map.js (render.py) and its two vendored libraries (vendor.py)."""
