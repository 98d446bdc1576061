"""Rewrite the CDN URLs folium emits to the app's vendored copies, per render, and refuse any left over.

Folium's class-level `default_js`/`default_css` are shared by every map in the process, so mutating them
would leak; instead each rendered page is rewritten through this explicit table. A folium upgrade or a new
plugin that links an unlisted URL makes the page fail loudly instead of silently needing the internet.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

# CDN URL emitted by folium 0.20 -> path under the app's static folder, or None to drop the tag.
CDN_ASSETS: Mapping[str, str | None] = {
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js": "vendor/leaflet/leaflet.js",
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css": "vendor/leaflet/leaflet.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "vendor/jquery/jquery.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js": (
        "vendor/bootstrap/js/bootstrap.bundle.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/css/bootstrap.min.css": (
        "vendor/bootstrap/css/bootstrap.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@6.2.0/css/all.min.css": (
        "vendor/fontawesome-free/css/all.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.js": (
        "vendor/leaflet.awesome-markers/leaflet.awesome-markers.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.css": (
        "vendor/leaflet.awesome-markers/leaflet.awesome-markers.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/leaflet.markercluster.js": (
        "vendor/leaflet.markercluster/leaflet.markercluster.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.css": (
        "vendor/leaflet.markercluster/MarkerCluster.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.Default.css": (
        "vendor/leaflet.markercluster/MarkerCluster.Default.css"
    ),
    # Bootstrap 3 glyphicons only serve folium.Icon(prefix="glyphicon"): use prefix="fa" for icons instead.
    "https://netdna.bootstrapcdn.com/bootstrap/3.0.0/css/bootstrap-glyphicons.css": None,
    # Only serves folium.Icon(angle=...) (classes fa-rotate-<n>), which the dashboard does not use.
    "https://cdn.jsdelivr.net/gh/python-visualization/folium/folium/templates/"
    "leaflet.awesome.rotate.min.css": None,
}

# A <script src=...></script> or <link href=...> tag; the attribute value is group "url".
_ASSET_TAG = re.compile(
    r"""<(?P<tag>script|link)\b[^>]*?\b(?:src|href)\s*=\s*(?P<q>["'])(?P<url>.*?)(?P=q)[^>]*>"""
    r"""(?:\s*</script\s*>)?""",
    re.IGNORECASE | re.DOTALL,
)
_EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


class UnmappedAssetError(RuntimeError):
    """The page links a script or stylesheet from outside the app; it would not load offline."""


def localize_assets(
    html: str,
    static_url: Callable[[str], str],
    assets: Mapping[str, str | None] = CDN_ASSETS,
) -> str:
    """Point every external script/link tag of `html` at the app's static files; raise if one is unknown."""
    unmapped: list[str] = []

    def replace(match: re.Match[str]) -> str:
        url = match.group("url")
        if not _EXTERNAL.match(url):
            return match.group(0)
        if url not in assets:
            unmapped.append(url)
            return match.group(0)
        local = assets[url]
        if local is None:
            return ""
        start, end = match.span("url")
        offset = match.start()
        return match.group(0)[: start - offset] + static_url(local) + match.group(0)[end - offset :]

    rewritten = _ASSET_TAG.sub(replace, html)
    if unmapped:
        raise UnmappedAssetError(
            "page links assets that are not vendored (add them to dashboard/map/vendor.py and "
            f"dashboard/map/assets.py): {', '.join(sorted(set(unmapped)))}"
        )
    return rewritten


def external_asset_urls(html: str) -> list[str]:
    """The external script/link URLs still in `html` (for checks and tests)."""
    return [m.group("url") for m in _ASSET_TAG.finditer(html) if _EXTERNAL.match(m.group("url"))]


def add_nonce(html: str, nonce: str) -> str:
    """Give every inline or linked <script> of trusted markup the page's CSP nonce."""
    return re.sub(r"<script(?=[\s>])", f'<script nonce="{nonce}"', html, flags=re.IGNORECASE)
