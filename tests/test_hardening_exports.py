"""Hardening findings about data on disk and in exports, each pinned (issue 17):

- Low, "the SQLite store and the broker log are world-readable (0644)": created 0600 / 0640 now, and an
  existing store loses access for others.
- Interop 2, "a site name with a control character makes the GPX invalid XML; a NUL in a community name is
  accepted": refused at every entry (coordinator forms, region files, the board), replaced on output anyway.
- Interop 7, "CSV exports without a BOM open garbled in spreadsheet programs": UTF-8 with a BOM now, and
  ?bom=0 without.
"""

from __future__ import annotations

import io
import os
import secrets
import stat
import xml.dom.minidom
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from dashboard.read.routes import RouteView, gpx
from dashboard.web.store import get_store
from gateway.broker.embedded import BrokerAccount, EmbeddedBroker
from gateway.contract.text import has_control, without_control
from gateway.store.db import make_engine
from gateway.store.models import Site
from gateway.store.region import RegionError, validate_region
from tests import test_dashboard_pages as pages
from tests.conftest import tiny_region_data
from tests.test_dashboard_pages import Auth

ids, password_hash, app, client, auth = pages.ids, pages.password_hash, pages.app, pages.client, pages.auth
ESCAPE = "Depot\x1b[31m\x07 B"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "rhizome.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()
    assert _mode(path) == 0o600


def test_an_existing_world_readable_store_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.touch()
    os.chmod(path, 0o644)
    make_engine(f"sqlite:///{path}").dispose()
    assert _mode(path) == 0o640  # others lose access; the owner's group keeps what it had


@pytest.mark.network
def test_the_embedded_broker_log_is_not_world_readable(tmp_path: Path) -> None:
    account = BrokerAccount("perm-test", secrets.token_urlsafe(12))
    with EmbeddedBroker(tmp_path, [account]) as broker:
        assert broker.log_path is not None
        assert _mode(broker.log_path) & 0o007 == 0, oct(_mode(broker.log_path))


@pytest.mark.parametrize("value", ["a\x00b", ESCAPE, "x\u2028y", "\x7f", "\x85"])
def test_control_characters_are_found_and_replaced(value: str) -> None:
    assert has_control(value) and not has_control(without_control(value))
    assert not has_control("Añasco\tcentre\nline two")  # tab and line feed are text


def test_a_region_file_with_a_control_character_is_refused() -> None:
    data: dict[str, Any] = tiny_region_data()
    data["communities"][0]["name"] = "Utuado\x00"
    with pytest.raises(RegionError, match=r"communities\.0\.name: a control character"):
        validate_region(data)
    data = tiny_region_data()
    data["communities"][0]["sites"][0]["name"] = ESCAPE
    with pytest.raises(RegionError, match=r"sites\.0\.name"):
        validate_region(data)


@pytest.mark.parametrize(
    ("form", "data"),
    [
        ("community", {"slug": "x", "name": "X\x00", "lat": "1", "lon": "1", "population": "1"}),
        (
            "site",
            {"community": "utuado", "slug": "s", "name": ESCAPE, "kind": "pump", "lat": "1", "lon": "1"},
        ),
        ("good", {"slug": "g", "name": "G\u2028H", "unit": "kg", "sector": "food"}),
    ],
)
def test_coordinator_forms_refuse_control_characters(auth: Auth, form: str, data: dict[str, str]) -> None:
    auth.login("coord")
    response = auth.post(f"/coordinator/{form}", data, page="/coordinator")
    assert response.status_code == 400 and "control character" in response.get_data(as_text=True)


def test_the_gpx_stays_valid_xml_with_a_name_stored_before_the_rule(
    app: Flask, auth: Auth, ids: dict[str, int]
) -> None:
    with get_store(app).sessions.begin() as session:
        site = session.scalar(select(Site).where(Site.id == ids["jayuya_hub"]))
        assert site is not None
        site.name = ESCAPE  # as an older store may hold it
    auth.login("anadriver")
    body = auth.client.get(f"/routes/{ids['route']}.gpx").get_data(as_text=True)
    document = xml.dom.minidom.parseString(body.encode("utf-8"))  # raises on invalid XML
    names = [n.firstChild.data for n in document.getElementsByTagName("name") if n.firstChild is not None]
    assert any(name.startswith("1. Depot [31m  B") for name in names), names


def test_gpx_of_a_plain_route_is_unchanged() -> None:
    route = RouteView.__new__(RouteView)  # the function reads only stops
    object.__setattr__(route, "stops", ())
    assert "<name>Ana &amp; Bo</name>" in gpx(route, "Ana & Bo")


def test_the_shortages_csv_has_a_byte_order_mark_for_spreadsheets(client: FlaskClient) -> None:
    with_bom = client.get("/api/shortages.csv")
    assert with_bom.headers["Content-Type"] == "text/csv; charset=utf-8"
    raw = with_bom.get_data()
    assert raw.startswith(b"\xef\xbb\xbfcommunity,")
    assert io.StringIO(raw.decode("utf-8-sig")).readline().startswith("community,")
    plain = client.get("/api/shortages.csv?bom=0").get_data()
    assert plain.startswith(b"community,")
    assert client.get("/api/shortages.csv?bom=yes").status_code == 400


def test_a_device_refuses_a_payload_the_broker_would_never_acknowledge(tmp_path: Path) -> None:
    """Faults 3: over the broker's packet limit the connection drops with no PUBACK, and a device that
    retries until acknowledged loops for ever; the client refuses such a payload before it is spooled."""
    from devices.forwarder import Forwarder
    from devices.netloop import NetworkLoop
    from devices.spool import Spool
    from gateway.contract.payloads import MAX_PAYLOAD_BYTES

    spool = Spool(tmp_path / "spool.db")
    loop = NetworkLoop()
    loop.start()
    try:
        forwarder = Forwarder(spool, loop)
        with pytest.raises(ValueError, match="would never be acknowledged"):
            forwarder.put("pump-1", "telemetry", 1, "rhizome/v1/x/telemetry", b"x" * (MAX_PAYLOAD_BYTES + 1))
        assert spool.after(0, 10) == []
        assert forwarder.put("pump-1", "telemetry", 2, "rhizome/v1/x/telemetry", b"{}") is True
    finally:
        loop.stop()
        spool.close()


def test_a_deactivated_member_loses_their_broker_account(sqlite_engine: Any) -> None:
    """Security 9: a member deactivated keeps no account in the broker's files (the next write drops it)."""
    from gateway.broker.accounts import provision
    from gateway.broker.files import accounts
    from gateway.store.db import make_session_factory
    from gateway.store.models import Member
    from gateway.store.region import load_region

    with make_session_factory(sqlite_engine).begin() as session:
        load_region(session, tiny_region_data())
        ana = session.scalars(select(Member)).one()
        provision(session, "member", ana.id)
        assert f"member.{ana.id}" in {a.username for a in accounts(session)}
        ana.active = False
        session.flush()
        assert f"member.{ana.id}" not in {a.username for a in accounts(session)}
