"""The map's geography: TopoJSON cut into a region's areas, the generated PMTiles basemap, the files served
with Range requests, their settings, and the flows summed per place pair and good."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import pytest
from flask import Flask
from pmtiles.tile import TileType, deserialize_directory, deserialize_header, find_tile, zxy_to_tileid
from sqlalchemy import select

from dashboard.map import basemap, geography
from dashboard.read import mapdata
from dashboard.web.app import create_app
from dashboard.web.config import SAMPLE_AREAS, SAMPLE_BASEMAP, DashboardConfig, from_environ
from dashboard.web.store import get_store
from gateway.process.settings import Settings
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import Community, DeliveryPlan, Good, Shipment, Site
from gateway.store.region import load_region, read_region, sample_region_path
from tests.test_dashboard_app import REGION

# Two unit squares side by side, sharing arc 1 (x = 1); quantized with scale 1 and no offset.
TOPOLOGY: dict[str, Any] = {
    "type": "Topology",
    "transform": {"scale": [0.1, 0.1], "translate": [-66.0, 18.0]},
    "arcs": [
        [[10, 0], [-10, 0], [0, 10], [10, 0]],  # west square's outer edge: (1,0) -> (0,0) -> (0,1) -> (1,1)
        [[10, 10], [0, -10]],  # the shared edge: (1,1) -> (1,0)
        [[10, 0], [10, 0], [0, 10], [-10, 0]],  # east square's outer edge: (1,0) -> (2,0) -> (2,1) -> (1,1)
    ],
    "objects": {
        "counties": {
            "type": "GeometryCollection",
            "geometries": [
                {"type": "Polygon", "id": "72002", "arcs": [[~2, ~1]], "properties": {"name": "East"}},
                {"type": "Polygon", "id": "72001", "arcs": [[0, 1]], "properties": {"name": "West"}},
                {"type": "Polygon", "id": "01001", "arcs": [[0, 1]], "properties": {"name": "Elsewhere"}},
            ],
        }
    },
}


def test_topojson_areas_are_decoded_and_chosen_by_id() -> None:
    features = geography.area_features(TOPOLOGY, "counties", "72")
    assert [f["properties"]["name"] for f in features] == ["West", "East"]  # by id; 01001 left out
    west = features[0]["geometry"]["coordinates"][0][0]
    assert west == [(-65.0, 18.0), (-66.0, 18.0), (-66.0, 19.0), (-65.0, 19.0), (-65.0, 18.0)]
    east = features[1]["geometry"]["coordinates"][0][0]  # arcs walked backwards (~i): closed all the same
    assert east == [(-65.0, 19.0), (-64.0, 19.0), (-64.0, 18.0), (-65.0, 18.0), (-65.0, 19.0)]


def test_only_shared_arcs_are_inner_borders() -> None:
    assert geography.inner_borders(TOPOLOGY, "counties", "72") == [[(-65.0, 19.0), (-65.0, 18.0)]]


def _tile(archive: bytes, z: int, x: int, y: int) -> dict[str, Any] | None:
    header = deserialize_header(archive[:127])
    root = archive[header["root_offset"] : header["root_offset"] + header["root_length"]]
    entry = find_tile(deserialize_directory(root), zxy_to_tileid(z, x, y))
    if entry is None:
        return None
    start = header["tile_data_offset"] + entry.offset
    data = gzip.decompress(archive[start : start + entry.length])
    return dict(mapbox_vector_tile.decode(data))


def test_the_basemap_has_land_sea_and_borders_in_the_protomaps_schema() -> None:
    features = geography.area_features(TOPOLOGY, "counties", "72")
    archive = basemap.build_pmtiles(features, geography.inner_borders(TOPOLOGY, "counties", "72"), "Test")
    header = deserialize_header(archive[:127])
    assert header["tile_type"] == TileType.MVT
    assert (header["min_zoom"], header["max_zoom"]) == (0, basemap.MAX_ZOOM)
    assert basemap.metadata_of(archive)["attribution"] == "Test"
    tile = _tile(archive, 6, 20, 28)  # the tile holding both squares (lon -66..-64, lat 18..19)
    assert tile is not None
    assert set(tile) == {"earth", "water", "boundaries"}
    assert tile["boundaries"]["features"][0]["properties"] == {"kind": "county", "kind_detail": 6}
    assert basemap.build_pmtiles(features, [], "Test") == basemap.build_pmtiles(features, [], "Test")


def test_the_sample_geography_names_every_community() -> None:
    areas = json.loads(SAMPLE_AREAS.read_text(encoding="utf-8"))
    names = sorted(f["properties"]["name"] for f in areas["features"])
    assert names == sorted(c["name"] for c in read_region(sample_region_path())["communities"])
    assert areas["source"].startswith("us-atlas@3.0.1/")
    header = deserialize_header(SAMPLE_BASEMAP.read_bytes()[:127])
    assert header["max_zoom"] == basemap.MAX_ZOOM and header["addressed_tiles_count"] > 500


def test_basemap_and_areas_settings(tmp_path: Path) -> None:
    assert DashboardConfig().basemap_file == SAMPLE_BASEMAP
    off = from_environ({"RHIZOME_BASEMAP": "off", "RHIZOME_MAP_AREAS": "OFF"})
    assert off.basemap_file is None and off.map_areas_file is None
    with pytest.raises(ValueError, match="RHIZOME_BASEMAP"):
        from_environ({"RHIZOME_BASEMAP": str(tmp_path / "missing.pmtiles")})
    fake = tmp_path / "fake.pmtiles"
    fake.write_bytes(b"not a tile archive" * 10)
    with pytest.raises(ValueError, match="not a PMTiles"):
        DashboardConfig(basemap_file=fake)
    with pytest.raises(ValueError, match="RHIZOME_MAP_AREAS"):
        DashboardConfig(map_areas_file=SAMPLE_BASEMAP)  # not a .geojson


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    url = f"sqlite:///{tmp_path / 'rhizome.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with make_session_factory(engine).begin() as session:
        load_region(session, REGION)
    engine.dispose()
    app = create_app(Settings(database_url=url), test_config={"TESTING": True})
    yield app
    get_store(app).engine.dispose()


def test_the_basemap_is_served_by_ranges(app: Flask) -> None:
    client = app.test_client()
    with client.get("/map/basemap.pmtiles") as whole:
        assert whole.status_code == 200 and whole.data == SAMPLE_BASEMAP.read_bytes()
        assert whole.headers["Accept-Ranges"] == "bytes" and "Content-Encoding" not in whole.headers
    headers = {"Range": "bytes=0-126", "Accept-Encoding": "gzip"}
    with client.get("/map/basemap.pmtiles", headers=headers) as part:
        assert part.status_code == 206 and len(part.data) == 127 and part.data[:7] == b"PMTiles"
        assert part.headers["Content-Range"] == f"bytes 0-126/{SAMPLE_BASEMAP.stat().st_size}"
    size = SAMPLE_BASEMAP.stat().st_size
    with client.get("/map/basemap.pmtiles", headers={"Range": "bytes=-10"}) as tail:
        assert tail.status_code == 206 and tail.data == SAMPLE_BASEMAP.read_bytes()[-10:]
        etag = tail.headers["ETag"]
    with client.get("/map/basemap.pmtiles", headers={"Range": f"bytes={size - 5}-{size + 500}"}) as end:
        assert end.status_code == 206 and len(end.data) == 5  # clamped to the file
    assert client.get("/map/basemap.pmtiles", headers={"Range": f"bytes={size}-"}).status_code == 416
    with client.get("/map/basemap.pmtiles", headers={"Range": "bytes=0-9", "If-Range": etag}) as fresh:
        assert fresh.status_code == 206 and len(fresh.data) == 10
    with client.get("/map/basemap.pmtiles", headers={"Range": "bytes=0-9", "If-Range": '"old"'}) as stale:
        assert stale.status_code == 200 and len(stale.data) == size  # the file changed: all of it
    assert client.get("/map/basemap.pmtiles?x=1").status_code == 400
    with client.get("/map/areas.geojson") as areas:
        assert areas.status_code == 200 and len(areas.get_json()["features"]) == 78


def test_no_basemap_when_it_is_off(app: Flask) -> None:
    app.config["BASEMAP_FILE"] = None
    client = app.test_client()
    assert client.get("/map/basemap.pmtiles").status_code == 404
    assert 'id="rz-data-basemap"' not in client.get("/").get_data(as_text=True)


def test_flows_are_summed_per_place_pair_and_good(app: Flask) -> None:
    with get_store(app).sessions.begin() as session:
        site = {
            (c, s): i
            for i, c, s in session.execute(
                select(Site.id, Community.slug, Site.slug).join(Community, Site.community_id == Community.id)
            )
        }
        good = {slug: id_ for slug, id_ in session.execute(select(Good.slug, Good.id))}
        plan = DeliveryPlan(status="active")
        session.add(plan)
        session.flush()
        alpha, beta, pump = site["alpha", "hub"], site["beta", "hub"], site["beta", "pump-1"]
        for good_slug, source, dest, quantity, status in (
            ("water", alpha, beta, 100.0, "planned"),
            ("water", alpha, pump, 50.0, "picked_up"),  # another site of Beta: the same line
            ("eggs", alpha, beta, 3.0, "assigned"),
            ("water", beta, pump, 9.0, "planned"),  # within one community: no line
            ("water", alpha, beta, 70.0, "delivered"),  # arrived: gone from the map
        ):
            session.add(
                Shipment(
                    plan_id=plan.id,
                    good_id=good[good_slug],
                    from_site_id=source,
                    to_site_id=dest,
                    quantity=quantity,
                    status=status,
                )
            )
    with get_store(app).sessions() as session:
        flows = mapdata.good_flows(session)
    assert [(f.from_name, f.to_name, f.good, f.quantity, f.shipments, f.moving) for f in flows] == [
        ("Alpha", "Beta Ñandú", "Water", 150.0, 2, 1),
        ("Alpha", "Beta Ñandú", "Eggs", 3.0, 1, 0),
    ]
    assert flows[0].essential and flows[0].sector == "water" and not flows[1].essential


def test_the_page_carries_the_basemap_and_areas_layers_with_the_attribution_as_text() -> None:
    from dashboard.map.render import MapData, MapOptions, render_map
    from dashboard.read.queries import CommunitySummary

    options = MapOptions(basemap=True, basemap_attribution="<b>OSM</b> & co", basemap_max_zoom=14, areas=True)
    parts = render_map(
        MapData([CommunitySummary(1, "a", "A", 18.0, -66.0, 10, ())]), options, "/s/{}".format, "n"
    )
    data = {name: json.loads(text) for name, text in parts.data}
    assert data["basemap"] == {
        "name": "Offline map",
        "url": "/map/basemap.pmtiles",
        "attribution": "&lt;b&gt;OSM&lt;/b&gt; &amp; co",  # Leaflet shows attributions as HTML
        "maxDataZoom": 14,
        "active": True,
    }
    kinds = [layer["kind"] for layer in data["layers"]]
    assert kinds == ["areas", "flows", "communities", "sites", "tasks", "labels"]
    assert data["layers"][0]["options"]["url"] == "/map/areas.geojson"
    assert "/s/vendor/protomaps-leaflet/protomaps-leaflet.js" in parts.header
