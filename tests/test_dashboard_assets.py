"""Offline assets and the map: every file a page or folium links is vendored and checked, names stay data."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import folium
import pytest

from dashboard.map import vendor
from dashboard.map.render import (
    LAYER_KINDS,
    VENDORED_CSS,
    VENDORED_JS,
    MapData,
    MapOptions,
    MapParts,
    radius,
    render_map,
    script_json,
)
from dashboard.read.mapdata import worst_state
from dashboard.read.queries import CommunitySummary, GoodLevel

STATIC = Path(vendor.__file__).resolve().parents[1] / "static"
TEMPLATES = STATIC.parent / "templates"
# A script or stylesheet tag and the address it loads.
ASSET_TAG = re.compile(r'<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*"([^"]*)"', re.I)


def community(
    slug: str, name: str, population: int, *goods: GoodLevel, lat: float = 18.0
) -> CommunitySummary:
    return CommunitySummary(1, slug, name, lat, -66.0, population, goods)


def static(path: str) -> str:
    return f"/static/{path}"


def rendered(data: MapData, options: MapOptions | None = None) -> MapParts:
    return render_map(data, options or MapOptions(), static, "N0NCE")


def blocks(data: MapData, options: MapOptions | None = None) -> dict[str, str]:
    return dict(rendered(data, options).data)


def test_vendored_files_match_the_manifest() -> None:
    assert vendor.verify() == []


def test_manifest_pins_every_package_of_the_script() -> None:
    manifest = json.loads((vendor.VENDOR_DIR / vendor.MANIFEST).read_text(encoding="utf-8"))
    listed = {(p["package"], p["version"], p["integrity"]) for p in manifest["packages"]}
    assert listed == {(p.name, p.version, p.integrity) for p in vendor.PACKAGES}
    assert {p["package"] for p in manifest["packages"]} == {
        "leaflet",
        "leaflet.markercluster",
        "protomaps-leaflet",
        "us-atlas",
    }
    for record in manifest["packages"]:
        paths = [f["path"] for f in record["files"]]
        assert any("LICEN" in p.upper() for p in paths), record["package"]
        assert not any(p.endswith(".map") for p in paths), record["package"]
    total = sum(f["bytes"] for p in manifest["packages"] for f in p["files"])
    assert total < 360_000  # Leaflet, its cluster plugin, the basemap renderer, the atlas's licence
    for record in manifest["derived"]:  # the geography cut from the atlas: its source and licence said
        assert record["source"].startswith("us-atlas@") and "public domain" in record["licence"]
        assert sorted(f["path"] for f in record["files"]) == [
            f"{record['region']}.geojson",
            f"{record['region']}.pmtiles",
        ]


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_templates_link_only_files_the_app_serves(template: Path) -> None:
    text = template.read_text(encoding="utf-8")
    assert not re.search(r"(?:https?:)?//[a-z0-9]", text, re.I), f"{template.name} links outside the app"
    for address in ASSET_TAG.findall(text):
        assert address.startswith(("{{ url_for('static'", "data:")), (template.name, address)
    for path in re.findall(r"url_for\('static', filename='([^']+)'\)", text):
        assert (STATIC / path).is_file(), (template.name, path)


@pytest.mark.parametrize(
    "source", sorted([*STATIC.glob("js/*.js"), *STATIC.glob("css/*.css")]), ids=lambda p: p.name
)
def test_the_apps_own_scripts_and_styles_load_nothing_from_outside(source: Path) -> None:
    text = source.read_text(encoding="utf-8")
    assert not re.search(r"""(?:url\(|import|fetch\()\s*['"]?(?:https?:)?//""", text, re.I), source.name


@pytest.mark.parametrize("css", sorted(STATIC.rglob("*.css")), ids=lambda p: str(p.relative_to(STATIC)))
def test_css_references_resolve_to_served_files(css: Path) -> None:
    for ref in re.findall(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", css.read_text(encoding="utf-8")):
        if ref.startswith(("data:", "#")):
            continue
        assert not re.match(r"^(?:[a-z]+:)?//", ref), f"{css.name} loads {ref} from outside"
        assert (css.parent / ref.split("?")[0].split("#")[0]).resolve().is_file(), f"{css.name}: {ref}"


def test_every_file_folium_links_is_vendored() -> None:
    # Folium's defaults come from CDNs (with jQuery, Bootstrap, FontAwesome): the map links the app's copies.
    options = MapOptions("https://{s}.tiles.example.org/{z}/{x}/{y}.png", "Ex")
    parts = rendered(MapData([community("a", "A", 10), community("b", "B", 5, lat=18.5)]), options)
    markup = parts.header + parts.html + parts.script
    linked = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]+)""", markup, re.I)
    assert sorted(linked) == sorted(static(path) for _, path in (*VENDORED_JS, *VENDORED_CSS))
    for address in linked:
        assert (STATIC / address.removeprefix("/static/")).is_file(), address
    assert not re.search(r"url\(|@import", parts.header), "folium's styles load a file"
    assert not re.search(r"jquery|bootstrap|fontawesome|awesome|glyphicons", markup, re.I)
    assert "cdn.jsdelivr.net" in dict(folium.Map.default_js)["leaflet"]  # folium's own lists untouched


def test_a_folium_asset_from_outside_the_app_fails_the_page() -> None:
    with pytest.raises(RuntimeError, match="outside the app"):
        render_map(MapData([community("a", "A", 10)]), MapOptions(), "https://cdn.example.org/{}".format, "n")


def test_folium_frames_the_region_and_map_js_draws_on_its_map() -> None:
    parts = rendered(MapData([community("a", "A", 10), community("b", "B", 5, lat=18.5)]))
    found = re.fullmatch(r'\s*<div class="folium-map" id="(map_[0-9a-f]{32})" ></div>\s*', parts.html)
    assert found is not None, parts.html
    name = found.group(1)
    assert f"var {name} = L.map(" in parts.script and f"L.control.scale().addTo({name});" in parts.script
    assert re.search(
        r'"preferCanvas": true,\s*"minZoom": 8,\s*"maxZoom": 18,\s*"zoomSnap": 0.25', parts.script
    )
    fit = r"\.fitBounds\(\s*\[\[18\.0, -66\.0\], \[18\.5, -66\.0\]\],\s*\{\"padding\": \[20, 20\]\}"
    assert re.search(re.escape(name) + fit, parts.script)
    assert "L.tileLayer" not in parts.script  # offline: a plain background
    assert parts.script.rstrip().endswith(f"RhizomeMap.draw({name}, {{}});")
    header_scripts = re.findall(r"<script\b[^>]*>", parts.header)
    assert header_scripts and all('nonce="N0NCE"' in tag for tag in header_scripts)
    layers = json.loads(dict(parts.data)["layers"])
    assert [layer["kind"] for layer in layers] == ["flows", "communities", "sites", "tasks", "labels"]
    assert {layer["kind"] for layer in layers} == set(LAYER_KINDS) - {"areas"}  # no area shapes served
    sites = next(layer for layer in layers if layer["kind"] == "sites")
    assert sites["options"] == {
        "disableClusteringAtZoom": 13,
        "url": "/map/sites.json",
        "siteUrl": "/api/sites/0",
    }


@pytest.mark.parametrize(("count", "center", "zoom"), [(0, "[0.0, 0.0]", 1), (1, "[18.0, -66.0]", 12)])
def test_one_place_or_none_is_shown_without_fitting(count: int, center: str, zoom: int) -> None:
    parts = rendered(MapData([community("a", "A", 10)][:count]), MapOptions(max_zoom=11))
    assert f"center: {center}," in parts.script and f'"zoom": {zoom},' in parts.script
    assert "fitBounds" not in parts.script and '"maxZoom": 11,' in parts.script
    sites = next(layer for layer in json.loads(dict(parts.data)["layers"]) if layer["kind"] == "sites")
    assert sites["options"]["disableClusteringAtZoom"] == 11  # never beyond the map's own max zoom


def test_a_tile_server_is_the_base_layer_with_its_attribution_as_text() -> None:
    options = MapOptions("https://{s}.tiles.example.org/{z}/{x}/{y}.png", "<b>OSM</b> & {{ 7*7 }}", 16)
    script = rendered(MapData([community("a", "A", 10)]), options).script
    tiles = re.search(r'var (tile_layer_[0-9a-f]{32}) = L\.tileLayer\(\s*"([^"]+)"', script)
    assert tiles is not None and tiles.group(2) == "https://{s}.tiles.example.org/{z}/{x}/{y}.png"
    assert re.search(r'"maxZoom": 16,\s*"maxNativeZoom": 16,', script)
    attribution = re.search(r'"attribution": ("[^"]*")', script)
    # Branca's Jinja pass ran nothing: no 7*7 evaluated (folium's random 32-hex ids may hold a "49").
    assert attribution is not None and "49" not in re.sub(r"_[0-9a-f]{32}", "_", script)
    assert json.loads(attribution.group(1)) == "&lt;b&gt;OSM&lt;/b&gt; &amp; &#123;&#123; 7*7 &#125;&#125;"
    assert f'{{"Base map": {tiles.group(1)}}});' in script  # the layer control's base layer


@pytest.mark.parametrize("url", ["https://x/{z}/{x}/{y}{{7*7}}", "/t/{z}/{x}/{y}{%raw%}", "/{#}{z}/{x}/{y}"])
def test_template_syntax_in_the_tile_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="tile URL"):
        MapOptions(url)


def test_hostile_names_stay_text_in_the_data_blocks() -> None:
    hostile = "</script><img src=x onerror=alert(1)>`${x}`"
    good = GoodLevel("w", hostile, "<b>L</b>", True, 1.0, 5.0, 9.0)
    parts = rendered(MapData([community("a", hostile, 10, good)]))
    data = dict(parts.data)
    assert list(data) == ["layers", "flows", "communities", "tasks"]
    for text in data.values():  # each is inlined in a <script>
        assert "<img" not in text and "</script>" not in text and "<b>" not in text
    for text in (parts.header, parts.html, parts.script, data["layers"]):
        assert "alert" not in text  # folium's frame and the layer list carry no names at all
    assert json.loads(data["communities"])[0][:2] == ["a", hostile]
    assert "w" not in json.loads(data["communities"])[0]  # goods come with the popup, from the API


@pytest.mark.parametrize(
    "name", ["{{ 7*7 }}", "{% if true %}x{% endif %}", "{# c #}", "{{ cycler.__init__ }}"]
)
def test_template_syntax_in_names_arrives_as_written(name: str) -> None:
    assert json.loads(blocks(MapData([community("a", name, 10)]))["communities"])[0][1] == name


@pytest.mark.parametrize(
    "value", ["</script><script>x()</script>", "a'b&c<!--", "\u2028line\u2029", "`${x}`"]
)
def test_script_json_cannot_end_the_script_and_round_trips(value: str) -> None:
    encoded = script_json({"name": value})
    assert not set("<>&'\u2028\u2029") & set(encoded)
    assert json.loads(encoded) == {"name": value}


def test_levels_and_worst_shortage() -> None:
    water = GoodLevel("water", "Water", "L", True, 50.0, 100.0, 200.0)  # half the minimum
    eggs = GoodLevel("eggs", "Eggs", "dozen", False, 0.0, 10.0, 20.0)  # none at all, but not essential
    rice = GoodLevel("rice", "Rice", "kg", True, 10.0, 10.0, 20.0)  # exactly the minimum: fine
    coffee = GoodLevel("coffee", "Coffee", "kg", False, 3.0)  # held, no need level
    assert [g.level for g in (water, eggs, rice, coffee)] == ["critical", "short", "ok", "ok"]
    assert community("c", "C", 1, eggs, water, rice).worst == water
    assert community("c", "C", 1, eggs, rice).level == "short"
    assert community("c", "C", 1, rice, coffee).worst is None


def test_radius_area_follows_population() -> None:
    small, large = radius(100, 10_000) - 5.0, radius(10_000, 10_000) - 5.0
    assert large == pytest.approx(21.0) and small == pytest.approx(2.1)
    assert radius(0, 0) == radius(0, 10) == 5.0


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((), "no sensor"),
        (("online", "online"), "online"),
        (("online", "fault"), "fault"),
        (("online", "stale"), "stale"),
    ],
)
def test_a_site_shows_its_worst_sensor(states: tuple[str, ...], expected: str) -> None:
    assert worst_state(states) == expected


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_extract_takes_only_the_listed_files(tmp_path: Path) -> None:
    package = vendor.NpmPackage(
        "@scope/lib", "1.0.0", "", ("dist/lib.js", "dist/img/*.png", "LICENSE"), "dist/"
    )
    data = _tarball(
        {
            "package/dist/lib.js": b"js",
            "package/dist/lib.js.map": b"map",
            "package/dist/img/a.png": b"png",
            "package/LICENSE": b"MIT",
            "package/src/lib.ts": b"ts",
        }
    )
    entries = vendor.extract(package, data, tmp_path / package.folder)
    assert package.folder == "lib" and package.tarball_url.endswith("/@scope/lib/-/lib-1.0.0.tgz")
    assert sorted(e["path"] for e in entries) == ["LICENSE", "img/a.png", "lib.js"]
    assert entries[-1]["sha256"] == hashlib.sha256(b"js").hexdigest()
    assert sorted(p.name for p in (tmp_path / "lib").rglob("*") if p.is_file()) == [
        "LICENSE",
        "a.png",
        "lib.js",
    ]


def test_extract_refuses_a_missing_file(tmp_path: Path) -> None:
    package = vendor.NpmPackage("lib", "1.0.0", "", ("dist/lib.js", "dist/gone.css"), "dist/")
    with pytest.raises(ValueError, match=r"gone\.css"):
        vendor.extract(package, _tarball({"package/dist/lib.js": b"js"}), tmp_path)


def test_integrity_mismatch_is_refused() -> None:
    good = "sha512-" + base64.b64encode(hashlib.sha512(b"abc").digest()).decode()
    vendor.check_integrity(b"abc", good)
    with pytest.raises(ValueError, match="integrity"):
        vendor.check_integrity(b"abd", good)


def test_fetch_only_talks_to_the_npm_registry() -> None:
    with pytest.raises(ValueError, match="npm registry"):
        vendor.fetch("https://example.org/registry.npmjs.org/x.tgz")
