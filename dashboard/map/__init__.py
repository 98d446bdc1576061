"""The regional map: folium's frame and map.js's data (render.py), its vendored libraries (vendor.py)."""
