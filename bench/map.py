"""Map scale: page build time, time to drawn markers in headless Chromium, and one zoom step.

For each size, a synthetic region (one sensor per site, ten sites per community, random states, spread over
the sample region's island so its municipios and basemap are drawn under them) and a live plan of FLOWS
shipments are bulk-written into a fresh SQLite store; the real dashboard app serves it on 127.0.0.1, with the
geography on (the PMTiles basemap, the areas shaded by shortage, the place names) and the flows grouped per
place pair and good, and Debian's Chromium (through Playwright) opens the map.

- build_s: median server time of GET / (queries, map data, rendering), measured in-process, 3 runs;
  sites_s: the same for GET /map/sites.json, the site points the page fetches (html_mb and sites_mb are
  the two bodies, gzip_mb both gzipped as they travel).
- first_draw_s: from navigation start to the frame painted after every site marker was loaded into the
  cluster layer (communities, tasks and flows are drawn before it), on the browser's performance clock.
  It includes the server's work for both requests and the transfers; browser_draw_s is the part after the
  HTML arrived.
- zoom_s: median of 3 single zoom-in steps (no animation) until the next painted frame.
- geo_s: from navigation start until the areas were drawn and every basemap tile in view was painted;
  flow_lines: the grouped flows in the page, and how many the default view draws.

Targets (issue 6): 10k devices drawn in < 1.5 s, 50k in < 3 s, a zoom step < 0.5 s.

    .venv/bin/python bench/map.py [--sizes 1000,10000,50000] [--flows 1000] [--no-geography]

Prints a table, then one line of JSON: {"devices": [...], "build_s": [...], "first_draw_s": [...], ...}.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select

from dashboard.web.accounts import MemoryAccountStore
from dashboard.web.app import create_app
from dashboard.web.store import get_store
from gateway.process.settings import Settings
from gateway.store.db import make_engine
from gateway.store.migrate import upgrade
from gateway.store.models import (
    Community,
    DeliveryPlan,
    Device,
    Good,
    NeedLevel,
    Shipment,
    Site,
    Stock,
    utcnow,
)
from gateway.store.region import read_region, sample_region_path

CHROMIUM = os.environ.get("RHIZOME_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SITES_PER_COMMUNITY = 10
STATES = ("online",) * 17 + ("fault", "offline", "stale")
SEED = 6


def populate(engine: Engine, devices: int, flows: int, seed: int = SEED) -> None:
    """Bulk-write a region of `devices` sensors (one per site) and a live plan of `flows` shipments."""
    rng = random.Random(seed)
    goods = read_region(sample_region_path())["goods"]
    communities = max(1, devices // SITES_PER_COMMUNITY)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(Good),
            [
                {k: g[k] for k in ("slug", "name", "unit", "sector", "essential", "weight_kg_per_unit")}
                for g in goods
            ],
        )
        good_ids = list(conn.scalars(select(Good.id).order_by(Good.id)))
        # Puerto Rico's box (the vendored geography's): the areas match these communities by place.
        towns = [(17.95 + rng.random() * 0.5, -67.25 + rng.random() * 1.65) for _ in range(communities)]
        conn.execute(
            insert(Community),
            [
                {
                    "slug": f"c{i:05d}",
                    "name": f"Community {i}",
                    "lat": lat,
                    "lon": lon,
                    "population": int(math.exp(rng.gauss(8.5, 1.0))),
                }
                for i, (lat, lon) in enumerate(towns)
            ],
        )
        community_ids = list(conn.scalars(select(Community.id).order_by(Community.id)))
        site_rows = []
        for n in range(devices):
            town = n % communities
            lat, lon = towns[town]
            site_rows.append(
                {
                    "community_id": community_ids[town],
                    "slug": f"s{n:06d}",
                    "name": f"Site {n}",
                    "kind": "pump" if n % 3 else "storage",
                    "lat": lat + rng.uniform(-0.03, 0.03),
                    "lon": lon + rng.uniform(-0.03, 0.03),
                }
            )
        conn.execute(insert(Site), site_rows)
        site_ids = list(conn.scalars(select(Site.id).order_by(Site.id)))
        conn.execute(
            insert(Device),
            [
                {
                    "slug": f"d{n:06d}",
                    "site_id": site_id,
                    "kind": "pump",
                    "state": rng.choice(STATES),
                    "last_seen_at": now,
                }
                for n, site_id in enumerate(site_ids)
            ],
        )
        hubs = site_ids[:communities]  # the first site of each community
        conn.execute(
            insert(Stock),
            [
                {"site_id": hub, "good_id": good, "quantity": rng.uniform(0, 500), "updated_at": now}
                for hub in hubs
                for good in good_ids[:3]
            ],
        )
        conn.execute(
            insert(NeedLevel),
            [
                {"community_id": c, "good_id": good, "minimum": 100.0, "target": 300.0}
                for c in community_ids
                for good in good_ids[:3]
            ],
        )
        plan_id = conn.execute(
            insert(DeliveryPlan).values(status="active").returning(DeliveryPlan.id)
        ).scalar_one()
        shipments = []
        for _ in range(flows):
            source, dest = rng.sample(hubs, 2) if len(hubs) > 1 else (site_ids[0], site_ids[-1])
            shipments.append(
                {
                    "plan_id": plan_id,
                    "good_id": rng.choice(good_ids),
                    "from_site_id": source,
                    "to_site_id": dest,
                    "quantity": rng.uniform(5, 500),
                    "status": rng.choice(("planned", "assigned", "picked_up")),
                }
            )
        conn.execute(insert(Shipment), shipments)


def measure(devices: int, flows: int, workdir: Path, browser: Any, geography: bool = True) -> dict[str, Any]:
    """Build, draw and zoom the map of one synthetic region (with or without its basemap and areas)."""
    from werkzeug.serving import make_server

    url = f"sqlite:///{workdir / f'map-{devices}.db'}"
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    populate(engine, devices, flows)
    populate_s = time.perf_counter() - started
    engine.dispose()
    no_geography = {} if geography else {"BASEMAP_FILE": None, "MAP_AREAS_FILE": None}
    app = create_app(Settings(database_url=url), test_config=no_geography, accounts=MemoryAccountStore())
    client = app.test_client()
    builds, sites, body, points = [], [], b"", b""
    for _ in range(3):
        started = time.perf_counter()
        response = client.get("/")
        builds.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status
        body = response.data
        started = time.perf_counter()
        response = client.get("/map/sites.json")
        sites.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status
        points = response.data
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 800})
        outside: list[str] = []

        def guard(route: Any) -> None:
            if route.request.url.startswith(f"http://127.0.0.1:{server.server_port}/"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{server.server_port}/", wait_until="commit")
        page.wait_for_function(
            "() => window.RhizomeMap && RhizomeMap.registry.sitesDrawnAt !== null", timeout=120_000
        )
        # Both on the page's clock, which starts at navigation: the frame painted after the last site marker
        # was loaded, and when the HTML had fully arrived (so the browser's own share can be told apart).
        first_draw_ms, response_end_ms = page.evaluate(
            "() => [RhizomeMap.registry.sitesDrawnAt,"
            " performance.getEntriesByType('navigation')[0].responseEnd]"
        )
        drawn = page.evaluate("() => RhizomeMap.registry.layers.sites.getLayers().length")
        assert drawn == devices, (drawn, devices)
        if geography:
            page.wait_for_function(
                "() => RhizomeMap.registry.areasDrawnAt && RhizomeMap.registry.basemapLoadedAt",
                timeout=60_000,
            )
        geo_ms, areas, flow_lines = page.evaluate(
            """() => { const r = RhizomeMap.registry;
                return [Math.max(r.areasDrawnAt || 0, r.basemapLoadedAt || 0), r.areasMatched || 0,
                        r.flowsDrawn + "/" + r.flowsTotal]; }"""
        )
        zooms = [
            page.evaluate(
                """() => new Promise(done => {
                    const map = RhizomeMap.registry.map, t0 = performance.now();
                    map.setZoom(map.getZoom() + 1, {animate: false});
                    requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)));
                })"""
            )
            for _ in range(3)
        ]
        context.close()
        assert not outside, outside
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        get_store(app).engine.dispose()
    return {
        "devices": devices,
        "flows": flows,
        "populate_s": round(populate_s, 2),
        "build_s": round(statistics.median(builds), 3),
        "sites_s": round(statistics.median(sites), 3),
        "first_draw_s": round(first_draw_ms / 1000, 3),
        "browser_draw_s": round((first_draw_ms - response_end_ms) / 1000, 3),
        "zoom_s": round(statistics.median(zooms) / 1000, 3),
        "geo_s": round(geo_ms / 1000, 3),
        "areas": areas,
        "flow_lines": flow_lines,
        "html_mb": round(len(body) / 1e6, 2),
        "sites_mb": round(len(points) / 1e6, 2),
        "gzip_mb": round((len(gzip.compress(body, 6)) + len(gzip.compress(points, 6))) / 1e6, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sizes and print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000", help="device counts, comma-separated")
    parser.add_argument("--flows", type=int, default=1000, help="planned shipments drawn as flows")
    parser.add_argument(
        "--no-geography", action="store_true", help="without the basemap and areas (to see what they cost)"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if any(s < 2 for s in sizes) or args.flows < 0:
        parser.error("sizes must be at least 2 and flows non-negative")

    from playwright.sync_api import sync_playwright

    results = []
    with tempfile.TemporaryDirectory(prefix="rhizome-bench-map-") as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for size in sizes:
                results.append(measure(size, args.flows, Path(tmp), browser, not args.no_geography))
                print(f"measured {size} devices", file=sys.stderr, flush=True)
        finally:
            browser.close()
    header = (
        "devices",
        "flows",
        "build_s",
        "sites_s",
        "first_draw_s",
        "browser_draw_s",
        "zoom_s",
        "geo_s",
        "areas",
        "flow_lines",
        "html_mb",
        "sites_mb",
        "gzip_mb",
        "populate_s",
    )
    print(" | ".join(f"{h:>12}" for h in header))
    for r in results:
        print(" | ".join(f"{r[h]:>12}" for h in header))
    print(json.dumps({key: [r[key] for r in results] for key in header}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
