"""The regional map: folium's frame and map.js's data (render.py), its vendored libraries (vendor.py)."""

import sys


def _load_folium_without_pandas() -> None:
    """Import folium once with pandas hidden. folium imports pandas only to accept DataFrames, which
    Rhizome never passes it; without this every dashboard process holds pandas and numpy (45 MB, a sixth of
    a community node's memory). The CSV export imports pandas itself when someone asks for one."""
    if "folium" in sys.modules or "pandas" in sys.modules:
        return
    sys.modules["pandas"] = None  # type: ignore[assignment]  # `import pandas` raises ImportError meanwhile
    try:
        import folium  # noqa: F401
    finally:
        del sys.modules["pandas"]


_load_folium_without_pandas()
