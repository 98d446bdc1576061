"""The driver's page as an installable app that works offline: its web manifest and service worker.

A service worker controls the pages inside its scope, and its scope can be no wider than the folder its
script is served from unless the Service-Worker-Allowed header says so. So the worker is served here, at
/routes/sw.js with scope /routes (the list and every route page, /routes/<id> and its GPX), not from
/static/js/ (whose scope would be /static/js/). Its text is the static file driver-sw.js after a preamble
naming this build's version and the assets to keep: the version is a hash of the worker and those assets,
so a new release installs a new worker, which drops the old copies.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Final

from flask import Blueprint, Response, current_app, url_for

from dashboard.views.map import file_etag
from dashboard.web.config import SAMPLE_BASEMAP, map_options

bp = Blueprint("driver_app", __name__, url_prefix="/routes")
SCOPE: Final = "/routes"
WORKER: Final = "js/driver-sw.js"
# What a route page needs besides itself (static paths): kept by the worker when it installs.
ASSETS: Final = (
    "css/dashboard.css",
    "css/route.css",
    "js/nav.js",
    "js/route-map.js",
    "js/driver-queue.js",
    "js/route.js",
    "vendor/leaflet/leaflet.css",
    "vendor/leaflet/leaflet.js",
    "vendor/protomaps-leaflet/protomaps-leaflet.js",
    "icons/driver-192.png",
    "icons/driver-512.png",
)
_BUILT = "rhizome.driver_worker"
BASEMAP_KEPT_WHOLE: Final = 8 * 1024 * 1024  # bytes: the sample region's is 63 kB, a town's extract a few MB


@bp.get("/sw.js")
def service_worker() -> Response:
    """The service worker, allowed to control /routes (not only /routes/)."""
    body = current_app.extensions.get(_BUILT)
    if body is None:
        body = current_app.extensions[_BUILT] = _worker_text()
    return Response(
        body,
        mimetype="text/javascript",
        headers={"Service-Worker-Allowed": SCOPE, "Cache-Control": "no-cache"},
    )


def _worker_text() -> str:
    """driver-sw.js after its preamble: version, assets to keep, where tiles come from."""
    static = Path(current_app.static_folder or "")
    digest = hashlib.sha256()
    for name in (WORKER, *ASSETS):
        digest.update(name.encode())
        digest.update((static / name).read_bytes())
    options = map_options(current_app.config)
    tiles = options.tile_url or ""
    config = {
        "version": digest.hexdigest()[:16],
        "scope": SCOPE,
        "assets": [url_for("static", filename=name) for name in ASSETS],
        "static": url_for("static", filename=""),
        # same-origin tiles are kept as they are seen; tiles from another host are left to the browser
        "tiles": tiles.split("{", 1)[0] if tiles.startswith("/") else "",
        **_basemap_config(options.basemap and not tiles),
    }
    preamble = f"const RZ_CONFIG = {json.dumps(config)};\n"
    return preamble + (static / WORKER).read_text(encoding="utf-8")


def _basemap_config(drawn: bool) -> dict[str, Any]:
    """Where the route map's PMTiles basemap is read from, and the file's identity (its cache is per file,
    so a new extract replaces the old copy). A file up to BASEMAP_KEPT_WHOLE is kept whole once a route page
    is shown; a larger one keeps the ranges the page read."""
    path = current_app.config.get("BASEMAP_FILE", SAMPLE_BASEMAP) if drawn else None
    if path is None:
        return {"basemap": "", "basemapId": "", "basemapWhole": False}
    file = Path(path)
    return {
        "basemap": url_for("map.basemap"),
        "basemapId": file_etag(file),
        "basemapWhole": file.stat().st_size <= BASEMAP_KEPT_WHOLE,
    }


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    """The web app manifest: "Add to home screen" opens My routes full-screen, like an app."""
    doc: dict[str, Any] = {
        "name": "Rhizome routes",
        "short_name": "Routes",
        "description": "Your delivery routes, usable offline",
        "start_url": url_for("routes.mine"),
        "scope": SCOPE,
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#1f3b2d",
        "icons": [
            {
                "src": url_for("static", filename=f"icons/driver-{size}.png"),
                "sizes": f"{size}x{size}",
                "type": "image/png",
                "purpose": "any",
            }
            for size in (192, 512)
        ],
    }
    return Response(json.dumps(doc), mimetype="application/manifest+json")
