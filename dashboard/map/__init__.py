"""The regional map: folium frame, local assets, vendoring."""
