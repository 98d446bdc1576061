"""Offline assets and escaping: every CDN URL folium emits is vendored, checked, and rewritten per render."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import folium
import folium.folium
import pytest
from folium.plugins import Fullscreen, MarkerCluster

from dashboard.map import vendor
from dashboard.map.assets import CDN_ASSETS, UnmappedAssetError, external_asset_urls, localize_assets
from dashboard.map.render import (
    MapData,
    MapOptions,
    build_map,
    escape_text,
    radius,
    render_map,
    script_json,
    site_state,
)
from dashboard.read.queries import CommunitySummary, DeviceRow, GoodLevel, SiteSummary

STATIC = Path(vendor.__file__).resolve().parents[1] / "static"


def static_url(path: str) -> str:
    return f"/static/{path}"


def community(slug: str, name: str, population: int, *goods: GoodLevel) -> CommunitySummary:
    return CommunitySummary(1, slug, name, 18.0, -66.0, population, goods)


def test_vendored_files_match_the_manifest() -> None:
    assert vendor.verify() == []


def test_manifest_pins_every_package_of_the_script() -> None:
    manifest = json.loads((vendor.VENDOR_DIR / vendor.MANIFEST).read_text(encoding="utf-8"))
    listed = {(p["package"], p["version"], p["integrity"]) for p in manifest["packages"]}
    assert listed == {(p.name, p.version, p.integrity) for p in vendor.PACKAGES}
    for record in manifest["packages"]:
        paths = [f["path"] for f in record["files"]]
        assert any("LICEN" in p.upper() for p in paths), record["package"]
        assert not any(p.endswith(".map") for p in paths), record["package"]
    total = sum(f["bytes"] for p in manifest["packages"] for f in p["files"])
    assert total < 3_000_000


def one_community_map(name: str = "A") -> folium.Map:
    return build_map(MapData([community("a", name, 10)]), MapOptions())


def test_every_url_folium_links_is_mapped() -> None:
    plugins = MarkerCluster.default_js + MarkerCluster.default_css
    emitted = {url for _, url in folium.folium._default_js + folium.folium._default_css + plugins}
    assert emitted == set(CDN_ASSETS), (
        "folium's CDN links changed: update dashboard/map/assets.py and vendor.py"
    )
    for local in filter(None, CDN_ASSETS.values()):
        assert (STATIC / local).is_file(), local


@pytest.mark.parametrize("css", sorted(STATIC.rglob("*.css")), ids=lambda p: str(p.relative_to(STATIC)))
def test_css_references_resolve_to_served_files(css: Path) -> None:
    for ref in re.findall(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", css.read_text(encoding="utf-8")):
        if ref.startswith(("data:", "#")):
            continue
        assert not re.match(r"^(?:[a-z]+:)?//", ref), f"{css.name} loads {ref} from outside"
        assert (css.parent / ref.split("?")[0].split("#")[0]).resolve().is_file(), f"{css.name}: {ref}"


def test_rewrite_points_at_static_and_drops_unused() -> None:
    html = "".join(f'<link rel="stylesheet" href="{url}"/>\n' for url in CDN_ASSETS)
    html += '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script><script>var a = 1;</script>'
    out = localize_assets(html, static_url)
    assert external_asset_urls(out) == []
    assert "glyphicons" not in out and "rotate" not in out
    assert '<script src="/static/vendor/jquery/jquery.min.js"></script><script>var a = 1;</script>' in out


@pytest.mark.parametrize(
    "tag",
    [
        '<script src="https://cdn.example.org/x.js"></script>',
        "<link rel='stylesheet' href='//cdn.example.org/x.css'>",
        '<script defer src="http://cdn.example.org/y.js"></script>',
    ],
)
def test_an_unmapped_external_asset_fails_loudly(tag: str) -> None:
    with pytest.raises(UnmappedAssetError, match=r"cdn\.example\.org"):
        localize_assets(f"<head>{tag}</head>", static_url)


def test_a_plugin_with_unvendored_assets_fails_the_render() -> None:
    fmap = one_community_map()
    Fullscreen().add_to(fmap)
    with pytest.raises(UnmappedAssetError, match="fullscreen"):
        render_map(fmap, static_url, "n")


def test_rendering_leaves_folium_class_defaults_alone() -> None:
    before = (list(folium.Map.default_js), list(folium.Map.default_css))
    parts = render_map(one_community_map(), static_url, "n0nce")
    assert (list(folium.Map.default_js), list(folium.Map.default_css)) == before
    assert external_asset_urls(parts.header) == [] and "/static/vendor/leaflet/leaflet.js" in parts.header
    assert all('nonce="n0nce"' in tag for tag in re.findall(r"<script\b[^>]*>", parts.header))
    assert external_asset_urls(folium.Map().get_root().render())  # a plain folium map still uses CDNs


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<img src=x onerror=alert(1)></script>", "&lt;img src=x onerror=alert(1)&gt;&lt;/script&gt;"),
        ("a`b${c}\\d", "a&#96;b&#36;&#123;c&#125;&#92;d"),
        ("{{ 7*7 }} {% if x %}", "&#123;&#123; 7*7 &#125;&#125; &#123;% if x %&#125;"),
        ('O\'Brien & "Sons"', "O&#39;Brien &amp; &#34;Sons&#34;"),
        ("Cataño", "Cataño"),
    ],
)
def test_escape_text(raw: str, escaped: str) -> None:
    assert escape_text(raw) == escaped


def test_hostile_names_stay_text_in_popups_and_tooltips() -> None:
    hostile = "</script><img src=x onerror=alert(1)>`${x}`"
    good = GoodLevel("w", hostile, "<b>L</b>", True, 1.0, 5.0, 9.0)
    parts = render_map(build_map(MapData([community("a", hostile, 10, good)]), MapOptions()), static_url, "n")
    data = dict(parts.data)
    assert "<img" not in parts.header + parts.html
    for text in (parts.script, *data.values()):  # each is inlined in a <script>
        assert "<img" not in text and "</script>" not in text and "<b>" not in text
    # Names travel as JSON data for map.js to set as text, and never through folium's script.
    assert hostile not in parts.script and "alert" not in parts.script
    assert json.loads(data["communities"])[0][:2] == ["a", hostile]
    assert "w" not in json.loads(data["communities"])[0]  # goods come with the popup, from the API


@pytest.mark.parametrize(
    "name", ["{{ 7*7 }}", "{% if true %}x{% endif %}", "{# c #}", "{{ cycler.__init__ }}"]
)
def test_names_are_never_evaluated_as_templates(name: str) -> None:
    """branca renders every element's script as a Jinja template: names must not reach it."""
    parts = render_map(build_map(MapData([community("a", name, 10)]), MapOptions()), static_url, "n")
    assert json.loads(dict(parts.data)["communities"])[0][1] == name
    assert name not in parts.script and "cycler" not in parts.script


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
def test_site_state(states: tuple[str, ...], expected: str) -> None:
    devices = tuple(DeviceRow(f"d{i}", "pump", s, None, "s", "S", "c") for i, s in enumerate(states))
    assert site_state(SiteSummary("s", "S", "pump", 0.0, 0.0, "c", "C", devices)) == expected


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
