"""Dashboard configuration beyond gateway Settings (tiles, basemap, public map, accounts, sessions, logins,
proxies).

An entry point reads it once with `from_environ(os.environ)` and hands the frozen `DashboardConfig` to
`create_app`; tests build their own. Nothing below the entry point reads the environment. Inside the app
the values live in Flask's config under the keys of `flask_config()`, where views and hooks read them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dashboard.map.render import MapOptions

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
# The sample region's geography, derived at vendoring time (dashboard/map/vendor.py): its municipios as
# GeoJSON and a PMTiles basemap. A community sets RHIZOME_BASEMAP to its own OpenStreetMap extract.
SAMPLE_BASEMAP = STATIC_DIR / "vendor" / "geo" / "puerto_rico.pmtiles"
SAMPLE_AREAS = STATIC_DIR / "vendor" / "geo" / "puerto_rico.geojson"
SAMPLE_BASEMAP_ATTRIBUTION = "U.S. Census Bureau shapes"
OFF = "off"  # RHIZOME_BASEMAP=off / RHIZOME_MAP_AREAS=off: no basemap, no area shapes

ACCOUNTS_FILE = "dashboard-accounts.json"  # in the data dir, unless RHIZOME_ACCOUNTS_FILE says otherwise
# Absolute http(s) or same-origin path; no quotes, spaces or angle brackets (it lands in a script).
_TILE_URL = re.compile(r"^(?:https?://[^\s\"'<>`\\]+|/[^\s\"'<>`\\]*)$")
# Fixed for every deployment: the session cookie's name and safety flags (Secure is configurable).
COOKIE_DEFAULTS: Mapping[str, Any] = {
    "SESSION_COOKIE_NAME": "rhizome_session",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class DashboardConfig:
    """How this dashboard runs; checked when made, so a tile URL that cannot work stops the start."""

    tile_url: str | None = None  # None: a plain background, works offline
    tile_attribution: str = "Base map tiles"
    map_max_zoom: int = 18
    basemap_file: Path | None = SAMPLE_BASEMAP  # a .pmtiles file (an OSM extract); None: no basemap
    basemap_attribution: str = SAMPLE_BASEMAP_ATTRIBUTION
    map_areas_file: Path | None = SAMPLE_AREAS  # GeoJSON polygons named like the communities; None: none
    public_map: bool = True  # assembly screens see the map and read-only pages without an account
    accounts_file: Path | None = None  # None: <data dir>/dashboard-accounts.json
    cookie_secure: bool = False  # True behind HTTPS
    login_max_failures: int = 5  # free failures per account and address before the backoff starts
    login_backoff_s: float = 2.0  # the first wait; doubles per failure (per account: grows by it, <= 60 s)
    login_backoff_max_s: float = 900.0
    login_window_s: float = 86400.0  # a failure count is forgotten this long after its last failure
    session_idle_s: float = 8 * 3600.0  # a session unused this long ends
    session_max_s: float = 7 * 86400.0  # and every session ends this long after its login
    trusted_proxies: int = 0  # reverse proxies in front whose X-Forwarded-For/-Proto are believed
    sse_poll_s: float = 0.5  # no broker: how often the process's one poll looks for new outbox rows
    sse_max_s: float = 300.0  # a stream ends after this and the browser reconnects (frees the worker thread)

    def __post_init__(self) -> None:
        check_tile_url(self.tile_url)
        for name, path, suffix in (
            ("RHIZOME_BASEMAP", self.basemap_file, ".pmtiles"),
            ("RHIZOME_MAP_AREAS", self.map_areas_file, ".geojson"),
        ):
            if path is not None and (path.suffix != suffix or not path.is_file()):
                raise ValueError(f"{name} {path}: must be an existing {suffix} file (or {OFF!r})")
        if self.basemap_file is not None:
            pmtiles_max_zoom(self.basemap_file)  # a file that is no PMTiles v3 archive stops the start
        if not 1 <= self.map_max_zoom <= 24:
            raise ValueError(f"MAP_MAX_ZOOM {self.map_max_zoom}: must be between 1 and 24")
        if not 0 <= self.trusted_proxies <= 5:
            raise ValueError(f"RHIZOME_TRUSTED_PROXIES {self.trusted_proxies}: must be between 0 and 5")
        if not 0 < self.session_idle_s <= self.session_max_s:
            raise ValueError(
                f"RHIZOME_SESSION_IDLE_S {self.session_idle_s:g}: must be > 0 and at most "
                f"RHIZOME_SESSION_MAX_S ({self.session_max_s:g})"
            )

    def accounts_path(self, data_dir: Path) -> Path:
        """The accounts file: the configured one, or ACCOUNTS_FILE in `data_dir`."""
        return self.accounts_file or data_dir / ACCOUNTS_FILE

    def flask_config(self) -> dict[str, Any]:
        """The app config keys this configuration sets (the cookie defaults included)."""
        return {
            **COOKIE_DEFAULTS,
            "TILE_URL": self.tile_url,
            "TILE_ATTRIBUTION": self.tile_attribution,
            "MAP_MAX_ZOOM": self.map_max_zoom,
            "BASEMAP_FILE": self.basemap_file,
            "BASEMAP_ATTRIBUTION": self.basemap_attribution,
            "MAP_AREAS_FILE": self.map_areas_file,
            "PUBLIC_MAP": self.public_map,
            "SESSION_COOKIE_SECURE": self.cookie_secure,
            "PERMANENT_SESSION_LIFETIME": int(self.session_max_s),  # the cookie; the store enforces both
            "LOGIN_MAX_FAILURES": self.login_max_failures,
            "LOGIN_BACKOFF_S": self.login_backoff_s,
            "LOGIN_BACKOFF_MAX_S": self.login_backoff_max_s,
            "LOGIN_WINDOW_S": self.login_window_s,
            "SESSION_IDLE_S": self.session_idle_s,
            "SESSION_MAX_S": self.session_max_s,
            "TRUSTED_PROXIES": self.trusted_proxies,
            "SSE_POLL_S": self.sse_poll_s,
            "SSE_MAX_S": self.sse_max_s,
        }


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(f"{name}={raw!r}: must be 1/0, true/false, yes/no or on/off")
    return value in _TRUE


def _number(name: str, raw: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(raw.strip())
    except ValueError:
        raise ValueError(f"{name}={raw!r}: must be a {'whole ' if kind is int else ''}number") from None


def from_environ(environ: Mapping[str, str]) -> DashboardConfig:
    """The configuration from RHIZOME_TILE_URL, RHIZOME_TILE_ATTRIBUTION, RHIZOME_BASEMAP (a .pmtiles path or
    "off"), RHIZOME_BASEMAP_ATTRIBUTION, RHIZOME_MAP_AREAS (a .geojson path or "off"), RHIZOME_ACCOUNTS_FILE,
    RHIZOME_PUBLIC_MAP, RHIZOME_COOKIE_SECURE, RHIZOME_TRUSTED_PROXIES, RHIZOME_SESSION_IDLE_S and
    RHIZOME_SESSION_MAX_S; an unset or empty variable keeps the default."""
    values: dict[str, Any] = {}
    if environ.get("RHIZOME_TILE_URL"):
        values["tile_url"] = environ["RHIZOME_TILE_URL"]
    if environ.get("RHIZOME_TILE_ATTRIBUTION"):
        values["tile_attribution"] = environ["RHIZOME_TILE_ATTRIBUTION"]
    for variable, field in (("RHIZOME_BASEMAP", "basemap_file"), ("RHIZOME_MAP_AREAS", "map_areas_file")):
        if environ.get(variable):
            raw = environ[variable].strip()
            values[field] = None if raw.lower() == OFF else Path(raw)
    if environ.get("RHIZOME_BASEMAP_ATTRIBUTION"):
        values["basemap_attribution"] = environ["RHIZOME_BASEMAP_ATTRIBUTION"]
    if environ.get("RHIZOME_ACCOUNTS_FILE"):
        values["accounts_file"] = Path(environ["RHIZOME_ACCOUNTS_FILE"])
    for variable, field in (("RHIZOME_PUBLIC_MAP", "public_map"), ("RHIZOME_COOKIE_SECURE", "cookie_secure")):
        if environ.get(variable):
            values[field] = _flag(variable, environ[variable])
    numbers: tuple[tuple[str, str, type[int] | type[float]], ...] = (
        ("RHIZOME_TRUSTED_PROXIES", "trusted_proxies", int),
        ("RHIZOME_SESSION_IDLE_S", "session_idle_s", float),
        ("RHIZOME_SESSION_MAX_S", "session_max_s", float),
    )
    for variable, field, kind in numbers:
        if environ.get(variable):
            values[field] = _number(variable, environ[variable], kind)
    return DashboardConfig(**values)


def check_tile_url(url: str | None) -> None:
    """Raise ValueError for a tile URL that cannot work (None, offline, is fine)."""
    if url is None:
        return
    if not _TILE_URL.match(url):
        raise ValueError(f"tile URL {url!r}: must be an http(s) URL or a /path, without quotes or spaces")
    missing = [p for p in ("{z}", "{x}", "{y}") if p not in url]
    if missing:
        raise ValueError(f"tile URL {url!r}: missing placeholder(s) {' '.join(missing)}")


def map_options(config: Mapping[str, Any]) -> MapOptions:
    """Validated map options from app config; raises ValueError for a tile URL that cannot work."""
    url = config.get("TILE_URL") or None
    check_tile_url(url)
    max_zoom = int(config.get("MAP_MAX_ZOOM", DashboardConfig.map_max_zoom))
    if not 1 <= max_zoom <= 24:
        raise ValueError(f"MAP_MAX_ZOOM {max_zoom}: must be between 1 and 24")
    attribution = str(config.get("TILE_ATTRIBUTION") or DashboardConfig.tile_attribution)
    basemap = config.get("BASEMAP_FILE", SAMPLE_BASEMAP)
    return MapOptions(
        tile_url=url,
        tile_attribution=attribution,
        max_zoom=max_zoom,
        basemap=basemap is not None,
        basemap_max_zoom=pmtiles_max_zoom(basemap) if basemap is not None else 15,
        basemap_attribution=str(config.get("BASEMAP_ATTRIBUTION") or SAMPLE_BASEMAP_ATTRIBUTION),
        areas=config.get("MAP_AREAS_FILE", SAMPLE_AREAS) is not None,
    )


def pmtiles_max_zoom(path: Path) -> int:
    """The deepest zoom of a PMTiles v3 archive, from its fixed 127-byte header; ValueError if it is none."""
    with path.open("rb") as handle:
        header = handle.read(127)
    if len(header) < 127 or header[:7] != b"PMTiles" or header[7] != 3:
        raise ValueError(f"RHIZOME_BASEMAP {path}: not a PMTiles version 3 archive")
    return header[101]  # after magic, version, 11 offsets and counts, and 5 one-byte fields


def tile_origin(url: str | None) -> str | None:
    """The CSP source allowing the tile images ({s} subdomains as a wildcard), None for same-origin tiles."""
    if not url or url.startswith("/"):
        return None
    parts = urlsplit(url.replace("{s}", "*"))
    return f"{parts.scheme}://{parts.netloc}"
