"""Dashboard configuration beyond gateway Settings (tiles, public map, accounts, cookies), read at start."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from dashboard.map.render import MapOptions

# Absolute http(s) or same-origin path; no quotes, spaces or angle brackets (it lands in a script).
_TILE_URL = re.compile(r"^(?:https?://[^\s\"'<>`\\]+|/[^\s\"'<>`\\]*)$")
DEFAULTS: Mapping[str, Any] = {
    "TILE_URL": None,
    "TILE_ATTRIBUTION": "Base map tiles",
    "MAP_MAX_ZOOM": 18,
    "PUBLIC_MAP": True,  # assembly screens see the map and read-only pages without an account
    "ACCOUNTS_FILE": None,  # default: <data dir>/dashboard-accounts.json
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_WINDOW_S": 900.0,
    "SSE_POLL_S": 0.5,  # how often an open alert stream looks for new rows
    "SSE_MAX_S": 300.0,  # a stream ends after this and the browser reconnects (frees the worker thread)
    "SESSION_COOKIE_NAME": "rhizome_session",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,  # set RHIZOME_COOKIE_SECURE=1 behind HTTPS
    "PERMANENT_SESSION_LIFETIME": 12 * 3600,
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(f"{name}={raw!r}: must be 1/0, true/false, yes/no or on/off")
    return value in _TRUE


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """RHIZOME_TILE_URL and RHIZOME_TILE_ATTRIBUTION as app config keys (unset: offline plain background)."""
    config: dict[str, Any] = {}
    if environ.get("RHIZOME_TILE_URL"):
        config["TILE_URL"] = environ["RHIZOME_TILE_URL"]
    if environ.get("RHIZOME_TILE_ATTRIBUTION"):
        config["TILE_ATTRIBUTION"] = environ["RHIZOME_TILE_ATTRIBUTION"]
    if environ.get("RHIZOME_ACCOUNTS_FILE"):
        config["ACCOUNTS_FILE"] = environ["RHIZOME_ACCOUNTS_FILE"]
    for variable, key in (
        ("RHIZOME_PUBLIC_MAP", "PUBLIC_MAP"),
        ("RHIZOME_COOKIE_SECURE", "SESSION_COOKIE_SECURE"),
    ):
        if environ.get(variable):
            config[key] = _flag(variable, environ[variable])
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
