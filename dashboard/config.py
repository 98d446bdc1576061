"""Dashboard configuration beyond gateway Settings: the optional map tile source, read at the entry point."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from dashboard.mapview import MapOptions

# Absolute http(s) or same-origin path; no quotes, spaces or angle brackets (it lands in a script).
_TILE_URL = re.compile(r"^(?:https?://[^\s\"'<>`\\]+|/[^\s\"'<>`\\]*)$")
DEFAULTS: Mapping[str, Any] = {"TILE_URL": None, "TILE_ATTRIBUTION": "Base map tiles", "MAP_MAX_ZOOM": 18}


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """RHIZOME_TILE_URL and RHIZOME_TILE_ATTRIBUTION as app config keys (unset: offline plain background)."""
    config: dict[str, Any] = {}
    if environ.get("RHIZOME_TILE_URL"):
        config["TILE_URL"] = environ["RHIZOME_TILE_URL"]
    if environ.get("RHIZOME_TILE_ATTRIBUTION"):
        config["TILE_ATTRIBUTION"] = environ["RHIZOME_TILE_ATTRIBUTION"]
    return config


def map_options(config: Mapping[str, Any]) -> MapOptions:
    """Validated map options from app config; raises ValueError for a tile URL that cannot work."""
    url = config.get("TILE_URL") or None
    if url is not None:
        if not _TILE_URL.match(url):
            raise ValueError(f"tile URL {url!r}: must be an http(s) URL or a /path, without quotes or spaces")
        missing = [p for p in ("{z}", "{x}", "{y}") if p not in url]
        if missing:
            raise ValueError(f"tile URL {url!r}: missing placeholder(s) {' '.join(missing)}")
    max_zoom = int(config.get("MAP_MAX_ZOOM", DEFAULTS["MAP_MAX_ZOOM"]))
    if not 1 <= max_zoom <= 24:
        raise ValueError(f"MAP_MAX_ZOOM {max_zoom}: must be between 1 and 24")
    attribution = str(config.get("TILE_ATTRIBUTION") or DEFAULTS["TILE_ATTRIBUTION"])
    return MapOptions(tile_url=url, tile_attribution=attribution, max_zoom=max_zoom)


def tile_origin(url: str | None) -> str | None:
    """The CSP source allowing the tile images ({s} subdomains as a wildcard), None for same-origin tiles."""
    if not url or url.startswith("/"):
        return None
    parts = urlsplit(url.replace("{s}", "*"))
    return f"{parts.scheme}://{parts.netloc}"
