"""Shortages as downloads: CSV (pandas, spreadsheet-safe) and GeoJSON points."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashboard.read.progress import Shortage

COLUMNS = (
    "community",
    "community_name",
    "good",
    "good_name",
    "sector",
    "essential",
    "level",
    "quantity",
    "minimum",
    "target",
    "gap",
    "unit",
    "lat",
    "lon",
)
# A cell starting with one of these is a formula in Excel and LibreOffice (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def shortage_record(s: Shortage) -> dict[str, Any]:
    """One shortage as a flat record (the CSV row, the GeoJSON properties, the API item)."""
    return {
        "community": s.community,
        "community_name": s.community_name,
        "good": s.good,
        "good_name": s.good_name,
        "sector": s.sector,
        "essential": s.essential,
        "level": s.level,
        "quantity": s.quantity,
        "minimum": s.minimum,
        "target": s.target,
        "gap": s.gap,
        "unit": s.unit,
        "lat": s.lat,
        "lon": s.lon,
    }


def shortages_csv(shortages: Sequence[Shortage]) -> str:
    """CSV with a header row; text cells that a spreadsheet would run as formulas are quoted with '."""
    import pandas as pd  # here, not at import: the map leaves pandas out of the dashboard (dashboard/map)

    frame = pd.DataFrame([shortage_record(s) for s in shortages], columns=list(COLUMNS))
    for column in ("community_name", "good_name", "unit"):
        frame[column] = frame[column].map(_cell)
    return frame.to_csv(index=False, lineterminator="\n")


def shortages_geojson(shortages: Sequence[Shortage]) -> dict[str, Any]:
    """A FeatureCollection of points (lon, lat order, as GeoJSON wants), one per shortage."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [s.lon, s.lat]},
                "properties": {k: v for k, v in shortage_record(s).items() if k not in ("lat", "lon")},
            }
            for s in shortages
        ],
    }
