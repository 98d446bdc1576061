"""The dashboard app: the map page works offline and escapes every name; the API answers JSON, 4xx not 500."""

from __future__ import annotations

import gzip
import json
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select, update

from dashboard.read import mapdata
from dashboard.web.app import create_app
from dashboard.web.config import DashboardConfig, from_environ
from dashboard.web.store import get_store
from gateway.contract.errors import Conflict, InvalidInput, NotFound, RhizomeError, Unavailable
from gateway.process.settings import Settings
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import Device, Site
from gateway.store.region import load_region

XSS = "<img src=x onerror=alert(1)></script>"
TEMPLATE_BREAKER = "Back`tick ${alert(2)} \\u00"  # ends or interpolates a JS template literal if unescaped
GOOD_XSS = "Rice</script><script>alert(3)</script>"
SEEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _site(slug: str, name: str, kind: str, lat: float, lon: float, **extra: Any) -> dict[str, Any]:
    return {"slug": slug, "name": name, "kind": kind, "lat": lat, "lon": lon, **extra}


REGION: dict[str, Any] = {
    "format": "rhizome-region/1",
    "name": "Dashboard test region",
    "goods": [
        {"slug": "water", "name": "Water", "unit": "L", "sector": "water", "essential": True},
        {"slug": "rice", "name": GOOD_XSS, "unit": "kg", "sector": "food", "essential": True},
        {"slug": "eggs", "name": "Eggs", "unit": "dozen", "sector": "food", "essential": False},
    ],
    "communities": [
        {  # short: a non-essential good below its minimum
            "slug": "alpha",
            "name": "Alpha",
            "lat": 18.2,
            "lon": -66.5,
            "population": 1000,
            "sites": [
                _site("hub", "Alpha hub", "storage", 18.21, -66.51, stock={"water": 500, "eggs": 2}),
            ],
            "needs": {"water": {"minimum": 100, "target": 800}, "eggs": {"minimum": 10, "target": 20}},
        },
        {  # critical: water (essential) far below minimum, and eggs short too
            "slug": "beta",
            "name": "Beta Ñandú",
            "lat": 18.4,
            "lon": -66.1,
            "population": 40000,
            "sites": [
                _site(
                    "pump-1",
                    "Beta pump",
                    "pump",
                    18.41,
                    -66.11,
                    devices=[{"slug": "beta-pump-1", "kind": "pump"}],
                ),
                _site("hub", "Beta hub", "storage", 18.4, -66.1, stock={"water": 200, "rice": 50}),
            ],
            "needs": {
                "water": {"minimum": 1000, "target": 3000},
                "rice": {"minimum": 10, "target": 100},
                "eggs": {"minimum": 5, "target": 10},
            },
        },
        {  # hostile names; no needs at all, so ok
            "slug": "xss",
            "name": XSS,
            "lat": 18.0,
            "lon": -67.0,
            "population": 10,
            "sites": [
                _site(
                    "hub",
                    TEMPLATE_BREAKER,
                    "storage",
                    18.01,
                    -67.01,
                    devices=[{"slug": "xss-hub", "kind": "stock"}],
                )
            ],
        },
    ],
}
NAMES = ("Alpha", "Beta Ñandú", XSS)


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite store holding REGION, one pump faulty and one hub sensor online (read-only)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'rhizome.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with make_session_factory(engine).begin() as session:
        load_region(session, REGION)
        session.execute(update(Device).where(Device.slug == "beta-pump-1").values(state="fault"))
        session.execute(
            update(Device).where(Device.slug == "xss-hub").values(state="online", last_seen_at=SEEN)
        )
    engine.dispose()
    return url


@pytest.fixture
def app(store_url: str) -> Iterator[Flask]:
    app = create_app(Settings(database_url=store_url), test_config={"TESTING": True})
    yield app
    get_store(app).engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def page(client: FlaskClient) -> str:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def asset_urls(html: str) -> list[str]:
    """Every script src and link href of the page, except inline data: URLs."""
    urls = re.findall(r"""<(?:script|link)\b[^>]*\b(?:src|href)=["']([^"']+)["']""", html)
    return [u for u in urls if not u.startswith("data:")]


def data_block(page: str, name: str) -> Any:
    """The JSON of the page's data block `rz-data-<name>` (what map.js reads)."""
    block = re.search(rf'<script type="application/json" id="rz-data-{name}"[^>]*>(.*?)</script>', page, re.S)
    assert block is not None, name
    return json.loads(block.group(1))


def test_map_page_shows_every_community(page: str) -> None:
    rows = data_block(page, "communities")  # [slug, name, lat, lon, radius, level index]
    assert sorted(c[1] for c in rows) == sorted(NAMES)
    assert {c[0]: c[5] for c in rows} == {"beta": 0, "alpha": 1, "xss": 2}  # critical, short, ok
    for name in ("Alpha", "Beta Ñandú"):  # the no-script table: the communities short of something
        assert f">{escape(name)}</a>" in page
    frame = re.search(r'<div class="folium-map" id="(map_[0-9a-f]+)" ></div>', page)  # folium's map
    assert frame is not None and f"RhizomeMap.draw({frame.group(1)}, {{}});" in page  # map.js draws on it
    layers = [layer["kind"] for layer in data_block(page, "layers")]
    assert layers == ["areas", "flows", "communities", "sites", "tasks", "labels"]
    assert "3 communities" in page


def test_map_page_needs_no_internet(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    urls = asset_urls(page)
    assert urls and all(u.startswith("/static/") for u in urls), urls
    assert any(u.startswith("/static/vendor/leaflet/") for u in urls)


def test_every_asset_the_page_links_is_served(page: str, client: FlaskClient) -> None:
    for url in asset_urls(page):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.content_length and response.content_length > 0, url
        response.close()


def test_hostile_names_are_text_not_markup(page: str) -> None:
    assert XSS not in page and "<img" not in page
    assert "alert(3)</script>" not in page and "<script>alert" not in page
    # every </script> in the page closes one of the page's own script tags
    assert page.count("</script>") == len(re.findall(r"<script\b", page))
    # Names reach map.js as JSON strings (double quotes: ` and ${} are inert there), never as markup.
    assert XSS in [c[1] for c in data_block(page, "communities")]
    assert TEMPLATE_BREAKER not in page  # site names come with the popup, from /api/sites/<id>


@pytest.mark.slow
def test_map_script_is_valid_javascript(page: str, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not installed")
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, flags=re.DOTALL)
    for attributes, text in scripts:
        if 'type="application/json"' in attributes:
            json.loads(text)  # a data block: JSON, never code
    inline = tmp_path / "inline.js"
    inline.write_text("\n;\n".join(t for a, t in scripts if "type=" not in a and t.strip()), encoding="utf-8")
    static = Path(__file__).resolve().parents[1] / "dashboard" / "static" / "js"
    for source in (inline, *sorted(static.glob("*.js"))):
        result = subprocess.run([node, "--check", str(source)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (source.name, result.stderr)


def test_page_scripts_carry_the_csp_nonce(client: FlaskClient) -> None:
    response = client.get("/")
    policy = response.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None and "default-src 'self'" in policy
    tags = re.findall(r"<script\b[^>]*>", response.get_data(as_text=True))
    assert tags and all(f'nonce="{nonce.group(1)}"' in tag for tag in tags)


def test_communities_api(client: FlaskClient) -> None:
    body = client.get("/api/communities").get_json()
    assert body["count"] == 3
    by_slug = {c["slug"]: c for c in body["communities"]}
    assert set(by_slug) == {"alpha", "beta", "xss"}
    assert by_slug["xss"]["name"] == XSS  # JSON carries the raw text; escaping is the renderer's job
    assert {k: by_slug["beta"][k] for k in ("population", "lat", "lon", "level")} == {
        "population": 40000,
        "lat": 18.4,
        "lon": -66.1,
        "level": "critical",
    }
    worst = by_slug["beta"]["worst_shortage"]
    assert (worst["good"], worst["quantity"], worst["minimum"], worst["essential"]) == (
        "water",
        200,
        1000,
        True,
    )
    assert by_slug["alpha"]["level"] == "short" and by_slug["alpha"]["worst_shortage"]["good"] == "eggs"
    assert by_slug["xss"]["level"] == "ok" and by_slug["xss"]["worst_shortage"] is None


def test_community_detail(client: FlaskClient) -> None:
    body = client.get("/api/communities/beta").get_json()
    goods = {g["good"]: (g["quantity"], g["minimum"], g["target"], g["level"]) for g in body["goods"]}
    assert goods == {
        "water": (200, 1000, 3000, "critical"),
        "rice": (50, 10, 100, "ok"),
        "eggs": (0, 5, 10, "short"),
    }
    assert body["devices"] == [
        {"slug": "beta-pump-1", "kind": "pump", "site": "pump-1", "state": "fault", "last_seen_at": None}
    ]


@pytest.mark.parametrize("slug", ["nowhere", "NOT-A-SLUG", "%3Cscript%3E"])
def test_unknown_community_is_a_json_404(client: FlaskClient, slug: str) -> None:
    response = client.get(f"/api/communities/{slug}")
    assert response.status_code == 404
    assert response.get_json()["status"] == 404
    assert "no community" in response.get_json()["message"]


def test_stock_rows_and_filters(client: FlaskClient) -> None:
    rows = client.get("/api/stock").get_json()["stock"]
    assert [(r["community"], r["site"], r["good"], r["quantity"]) for r in rows] == [
        ("alpha", "hub", "eggs", 2),
        ("alpha", "hub", "water", 500),
        ("beta", "hub", "rice", 50),
        ("beta", "hub", "water", 200),
    ]
    assert rows[0]["unit"] == "dozen" and datetime.fromisoformat(rows[0]["updated_at"]).tzinfo is not None
    water = client.get("/api/stock?good=water").get_json()["stock"]
    assert [r["community"] for r in water] == ["alpha", "beta"]
    one = client.get("/api/stock?community=beta&good=rice").get_json()
    assert [(r["site"], r["quantity"]) for r in one["stock"]] == [("hub", 50)]
    page2 = client.get("/api/stock?limit=2&offset=2").get_json()
    assert [r["good"] for r in page2["stock"]] == ["rice", "water"] and page2["limit"] == 2


def test_devices_api(client: FlaskClient) -> None:
    devices = client.get("/api/devices").get_json()["devices"]
    assert {d["slug"]: d["state"] for d in devices} == {"beta-pump-1": "fault", "xss-hub": "online"}
    online = client.get("/api/devices?state=online").get_json()["devices"]
    assert online == [
        {
            "slug": "xss-hub",
            "kind": "stock",
            "site": "hub",
            "community": "xss",
            "state": "online",
            "last_seen_at": SEEN.isoformat(),
        }
    ]


def test_site_popup_api(client: FlaskClient) -> None:
    answer = client.get("/map/sites.json")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-cache"
    points, states, scale = (answer.get_json()[k] for k in ("points", "states", "scale"))
    rows = [points[i : i + 4] for i in range(0, len(points), 4)]  # [lat, lon, state index, id]
    assert sorted(states[r[2]] for r in rows) == ["fault", "no sensor", "no sensor", "online"]
    online = next(r for r in rows if states[r[2]] == "online")
    assert (online[0] / scale, online[1] / scale) == (18.01, -67.01)
    body = client.get(f"/api/sites/{online[3]}").get_json()
    assert (body["name"], body["community"], body["community_url"]) == (
        TEMPLATE_BREAKER,
        "xss",
        "/communities/xss",
    )
    assert body["devices"] == [
        {
            "slug": "xss-hub",
            "kind": "stock",
            "site": "hub",
            "state": "online",
            "last_seen_at": SEEN.isoformat(),
        }
    ]
    assert client.get("/api/sites/999999").status_code == 404
    assert client.get("/api/sites/99999999999999999999999").status_code == 404  # not a driver overflow
    assert client.get("/api/sites/0").status_code == 404


def test_site_summaries_match_each_sites_popup(store_url: str) -> None:
    engine = make_engine(store_url)
    with make_session_factory(engine)() as session:
        summaries = mapdata.site_summaries(session)
        ids = session.scalars(select(Site.id).order_by(Site.id)).all()
        details = [mapdata.site_detail(session, site_id) for site_id in ids]
    engine.dispose()
    assert [(s.community, s.slug) for s in summaries] == [
        ("alpha", "hub"),
        ("beta", "hub"),
        ("beta", "pump-1"),
        ("xss", "hub"),
    ]
    assert sorted(summaries, key=lambda s: (s.community, s.slug)) == sorted(
        (d for d in details if d is not None), key=lambda s: (s.community, s.slug)
    )
    assert {s.slug: [d.state for d in s.devices] for s in summaries if s.community == "beta"} == {
        "hub": [],
        "pump-1": ["fault"],
    }


def test_health(client: FlaskClient) -> None:
    body = client.get("/api/health").get_json()
    assert body == {"status": "ok", "counts": {"communities": 3, "sites": 4, "devices": 2, "goods": 3}}


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/stock?limit=abc", 400),
        ("/api/stock?limit=0", 400),
        ("/api/stock?limit=-1", 400),
        ("/api/stock?limit=10001", 400),
        ("/api/stock?offset=1.5", 400),
        ("/api/stock?limit=%EF%BC%91", 400),  # a fullwidth digit is still not a number here
        ("/api/stock?community=Not%20A%20Slug", 400),
        ("/api/stock?community=nowhere", 404),
        ("/api/stock?good=gold", 404),
        ("/api/stock?colour=red", 400),
        ("/api/stock?good=water&good=rice", 400),
        ("/api/devices?state=broken", 400),
        ("/api/devices?kind=toaster", 400),
        ("/api/communities?x=1", 400),
        ("/api/nothing-here", 404),
    ],
)
def test_bad_requests_get_json_4xx(client: FlaskClient, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status
    body = response.get_json()
    assert body["status"] == status and body["message"]


def test_wrong_method_is_a_json_405(client: FlaskClient) -> None:
    response = client.post("/api/communities")
    assert response.status_code == 405 and response.get_json()["status"] == 405


def test_unknown_page_is_a_small_escaped_html_404(client: FlaskClient) -> None:
    response = client.get("/<img src=x>")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "<img" not in response.get_data(as_text=True)


def test_gzip_when_accepted(client: FlaskClient) -> None:
    plain = client.get("/")
    zipped = client.get("/", headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    frame = b'<div class="folium-map"'
    assert gzip.decompress(zipped.data).count(frame) == plain.data.count(frame) == 1
    assert len(zipped.data) < len(plain.data) / 2


def test_static_files_are_gzipped_and_small_answers_are_not(client: FlaskClient) -> None:
    script = client.get("/static/vendor/leaflet/leaflet.js", headers={"Accept-Encoding": "gzip"})
    assert script.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(script.data).startswith(b"/* @preserve")
    script.close()
    health = client.get("/api/health", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in health.headers
    refused = client.get("/api/communities", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers


def test_a_compressed_static_file_is_closed_once_read(client: FlaskClient) -> None:
    """A browser leaving a page mid-download dropped the connection before the server closed the file, which
    stayed open until the garbage collector found it (a ResourceWarning in the browser tests)."""
    from flask import send_from_directory

    from dashboard.web.compression import compress

    app = client.application
    with app.test_request_context("/static/vendor/leaflet/leaflet.js", headers={"Accept-Encoding": "gzip"}):
        response = send_from_directory(app.static_folder or "", "vendor/leaflet/leaflet.js")
        opened = response.response.file  # werkzeug's FileWrapper around the open file
        assert not opened.closed
        compress(response)
        assert response.headers["Content-Encoding"] == "gzip" and opened.closed


def test_store_down_is_a_503_not_a_500(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}"))  # a directory, not a file
    with app.test_client() as client:
        assert client.get("/api/health").status_code == 503
        assert client.get("/").status_code == 503
    get_store(app).engine.dispose()


def test_map_with_a_tile_server(store_url: str) -> None:
    tiles = "https://{s}.tiles.example.org/{z}/{x}/{y}.png"
    config = DashboardConfig(tile_url=tiles, tile_attribution="Ex")
    app = create_app(Settings(database_url=store_url), config)
    response = app.test_client().get("/")
    assert response.status_code == 200
    assert f'L.tileLayer(\n                "{tiles}",' in response.get_data(as_text=True)
    assert "img-src 'self' data: https://*.tiles.example.org" in response.headers["Content-Security-Policy"]
    get_store(app).engine.dispose()


@pytest.mark.parametrize(
    "tiles", ["ftp://x/{z}/{x}/{y}", "https://x/{z}/{x}.png", 'https://x/{z}/{x}/{y}"</script>', "tiles"]
)
def test_bad_tile_url_fails_at_startup(tiles: str) -> None:
    with pytest.raises(ValueError, match="tile URL"):
        DashboardConfig(tile_url=tiles)
    with pytest.raises(ValueError, match="tile URL"):
        from_environ({"RHIZOME_TILE_URL": tiles})


def test_config_from_the_environment() -> None:
    environ = {
        "RHIZOME_TILE_URL": "/tiles/{z}/{x}/{y}.png",
        "RHIZOME_TILE_ATTRIBUTION": "Our tiles",
        "RHIZOME_ACCOUNTS_FILE": "/srv/accounts.json",
        "RHIZOME_PUBLIC_MAP": "off",
        "RHIZOME_COOKIE_SECURE": "1",
        "RHIZOME_UNRELATED": "x",
    }
    assert from_environ(environ) == DashboardConfig(
        tile_url="/tiles/{z}/{x}/{y}.png",
        tile_attribution="Our tiles",
        accounts_file=Path("/srv/accounts.json"),
        public_map=False,
        cookie_secure=True,
    )
    assert from_environ({"RHIZOME_PUBLIC_MAP": ""}) == DashboardConfig()  # empty: the default
    assert DashboardConfig().accounts_path(Path("/var/lib/rhizome")) == Path(
        "/var/lib/rhizome/dashboard-accounts.json"
    )
    with pytest.raises(ValueError, match="RHIZOME_PUBLIC_MAP"):
        from_environ({"RHIZOME_PUBLIC_MAP": "maybe"})
    with pytest.raises(ValueError, match="MAP_MAX_ZOOM"):
        DashboardConfig(map_max_zoom=30)


def test_the_app_reads_its_config_not_the_environment(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RHIZOME_PUBLIC_MAP", "0")
    monkeypatch.setenv("RHIZOME_TILE_URL", "not a tile url")
    app = create_app(Settings(database_url=store_url), DashboardConfig(cookie_secure=True))
    assert app.config["PUBLIC_MAP"] is True and app.config["SESSION_COOKIE_SECURE"] is True
    assert app.test_client().get("/api/communities").status_code == 200
    get_store(app).engine.dispose()


@pytest.mark.parametrize(
    ("error", "status"),
    [(InvalidInput, 400), (NotFound, 404), (Conflict, 409), (Unavailable, 503), (RhizomeError, 500)],
)
def test_domain_errors_become_their_status_once(store_url: str, error: type[Exception], status: int) -> None:
    app = create_app(Settings(database_url=store_url))

    def refuse() -> str:
        raise error("<b>refused</b> for a reason")

    app.add_url_rule("/api/refuse", "api_refuse", refuse)
    app.add_url_rule("/refuse", "refuse", refuse)
    client = app.test_client()
    body = client.get("/api/refuse").get_json()
    message = "internal error, see the log" if status == 500 else "<b>refused</b> for a reason"
    assert (body["status"], body["message"]) == (status, message)
    page = client.get("/refuse")
    assert page.status_code == status and page.mimetype == "text/html"
    assert "<b>" not in page.get_data(as_text=True)
    get_store(app).engine.dispose()


def test_secret_key_from_settings_or_random(store_url: str) -> None:
    key = secrets.token_hex(32)
    apps = [
        create_app(Settings(database_url=store_url, secret_key=key)),
        create_app(Settings(database_url=store_url)),
        create_app(Settings(database_url=store_url)),
    ]
    assert apps[0].secret_key == key
    assert apps[1].secret_key != apps[2].secret_key and len(str(apps[1].secret_key)) >= 32
    for app in apps:
        get_store(app).engine.dispose()


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("CHANGE-ME", "fewer than 32"),
        ("s3cret", "fewer than 32"),
        ("k" * 64, "one character repeated"),
        ("change-me-change-me-change-me-change-me", "placeholder"),
        ("my-example-secret-key-for-the-dashboard", "placeholder"),
    ],
)
def test_a_placeholder_or_short_secret_key_stops_dashboard(store_url: str, key: str, problem: str) -> None:
    """Security 7: a key copied from the example env file would let anyone who read it forge a session."""
    with pytest.raises(ValueError, match=f"RHIZOME_SECRET_KEY .*{problem}.*secrets.token_hex"):
        create_app(Settings(database_url=store_url, secret_key=key))


def test_compiled_templates_are_shared_by_apps_and_an_edited_one_is_compiled_again() -> None:
    from jinja2 import DictLoader, Environment

    from dashboard.web.template_cache import SharedTemplateCode

    code = SharedTemplateCode()
    sources = {"page.html": "<p>{{ name }}</p>"}
    first = Environment(loader=DictLoader(sources), bytecode_cache=code, autoescape=True)
    assert first.get_template("page.html").render(name="<b>") == "<p>&lt;b&gt;</p>"
    second = Environment(loader=DictLoader(sources), bytecode_cache=code, autoescape=True)
    compiled: list[str] = []
    original = second._compile

    def counting(source: str, filename: str) -> Any:
        compiled.append(filename)
        return original(source, filename)

    second._compile = counting  # type: ignore[method-assign]
    assert second.get_template("page.html").render(name="x") == "<p>x</p>"
    assert compiled == []  # the second environment loaded the first one's code
    sources["page.html"] = "<em>{{ name }}</em>"
    third = Environment(loader=DictLoader(sources), bytecode_cache=code, autoescape=True)
    assert third.get_template("page.html").render(name="x") == "<em>x</em>"
