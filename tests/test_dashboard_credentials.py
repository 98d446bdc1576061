"""Coordinator device credentials from the dashboard: provision, rotate and revoke against a real Mosquitto
reading the files the page writes; the password shows once and is kept nowhere, the forms need the
coordinator role and the CSRF token, bad input is a 4xx."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, select

from dashboard.web.accounts import Account, MemoryAccountStore, make_account
from dashboard.web.app import create_app
from dashboard.web.store import get_store
from gateway.broker.files import write_broker_files
from gateway.process.settings import Settings
from gateway.store.db import make_session_factory
from gateway.store.models import BrokerCredential, Member
from gateway.store.region import load_region
from tests.conftest import require_mosquitto, tiny_region_data
from tests.secure_broker import Probe, SecureMosquitto
from tests.test_dashboard_pages import PASSWORD, Auth

PUMP = "utuado-pump-1-pump"
PASSWORD_RE = re.compile(r"password <code>([^<]+)</code>")


@pytest.fixture(scope="module")
def password_hash() -> str:
    return make_account("someone", PASSWORD, "viewer").password_hash


@pytest.fixture
def make_app(engine: Engine, database_url: str, password_hash: str) -> Iterator[Callable[[Settings], Flask]]:
    with make_session_factory(engine).begin() as session:
        load_region(session, tiny_region_data())
        ana = session.scalars(select(Member.id)).one()
    accounts = MemoryAccountStore(
        [Account("coord", password_hash, "coordinator", None), Account("ana", password_hash, "crew", ana)]
    )
    apps: list[Flask] = []

    def make(settings: Settings) -> Flask:
        app = create_app(settings, test_config={"TESTING": True}, accounts=accounts)
        apps.append(app)
        return app

    yield make
    for app in apps:
        get_store(app).engine.dispose()


@pytest.fixture
def broker(engine: Engine, tmp_path: Path) -> Iterator[SecureMosquitto]:
    require_mosquitto()
    with make_session_factory(engine)() as session:
        write_broker_files(session, tmp_path / "broker-files")  # no accounts yet
    broker = SecureMosquitto(tmp_path / "mosquitto", tmp_path / "broker-files")
    broker.start()
    yield broker
    broker.stop()


def shown_password(page: str) -> str:
    found = PASSWORD_RE.search(page)
    assert found is not None, page[-2000:]
    return found.group(1)


@pytest.mark.network
def test_a_coordinator_provisions_rotates_and_revokes_a_device(
    make_app: Callable[[Settings], Flask], database_url: str, broker: SecureMosquitto
) -> None:
    settings = Settings(
        database_url=database_url, broker_dir=broker.broker_dir, broker_pid_file=broker.pid_file
    )
    app = make_app(settings)
    auth = Auth(app.test_client())
    auth.login("coord")
    listing = auth.client.get("/coordinator/devices").get_data(as_text=True)
    assert PUMP in listing and "none" in listing
    response = auth.post("/coordinator/devices/provision", {"device": PUMP}, page="/coordinator/devices")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    first = shown_password(page)
    assert "reloaded" in page
    with auth.client.session_transaction() as session:  # not flashed, not in the cookie
        assert first not in repr(dict(session))
    assert first not in auth.client.get("/coordinator/devices").get_data(as_text=True)  # shown once
    with get_store(app).sessions() as db:
        stored = db.scalars(select(BrokerCredential.password_hash)).one()
        assert stored is not None and first not in stored
    device = Probe(broker.port, PUMP, first, "dash-1")
    probes = [device]
    try:
        assert device.connected()
        assert device.publish(f"rhizome/v1/utuado/pump-1/{PUMP}/telemetry", b"{}") == "accepted"

        page = auth.post("/coordinator/devices/rotate", {"device": PUMP}, page="/coordinator/devices")
        second = shown_password(page.get_data(as_text=True))
        assert second != first
        assert device.wait(lambda: device.disconnects) and device.refused()  # the old password is gone
        probes.append(Probe(broker.port, PUMP, second, "dash-2"))
        assert probes[-1].connected()

        revoked = auth.post("/coordinator/devices/revoke", {"device": PUMP}, page="/coordinator/devices")
        assert revoked.status_code == 200 and not PASSWORD_RE.search(revoked.get_data(as_text=True))
        probes.append(Probe(broker.port, PUMP, second, "dash-3"))
        assert probes[-1].refused()
        assert probes[1].wait(lambda: probes[1].disconnects)  # the connected one is cut off too
    finally:
        for probe in probes:
            probe.close()


def test_the_forms_need_a_coordinator_the_csrf_token_and_good_input(
    make_app: Callable[[Settings], Flask], database_url: str, tmp_path: Path
) -> None:
    app = make_app(Settings(database_url=database_url, broker_dir=tmp_path / "files"))
    auth = Auth(app.test_client())
    auth.login("ana")
    assert auth.client.get("/coordinator/devices").status_code == 403
    assert auth.post("/coordinator/devices/provision", {"device": PUMP}).status_code == 403
    auth.client.post("/logout", data={"csrf_token": auth.token("/")})
    auth.login("coord")
    assert (
        auth.client.post("/coordinator/devices/provision", data={"device": PUMP}).status_code == 400
    )  # no token
    assert auth.post("/coordinator/devices/explode", {"device": PUMP}).status_code == 404
    bad = auth.post("/coordinator/devices/provision", {"device": "<b>nope</b>"})
    assert bad.status_code == 400 and "&lt;b&gt;nope&lt;/b&gt;" in bad.get_data(as_text=True)
    assert auth.post("/coordinator/devices/revoke", {"device": PUMP}).status_code == 400  # nothing to revoke
    ok = auth.post("/coordinator/devices/provision", {"device": PUMP})
    assert ok.status_code == 200 and "Reload the broker" in ok.get_data(as_text=True)  # no pid file set
    again = auth.post("/coordinator/devices/provision", {"device": PUMP})
    assert again.status_code == 400 and "rotate" in again.get_data(as_text=True)


def test_unwritable_broker_files_change_nothing(
    make_app: Callable[[Settings], Flask], database_url: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    app = make_app(Settings(database_url=database_url, broker_dir=blocker))
    auth = Auth(app.test_client())
    auth.login("coord")
    response = auth.post("/coordinator/devices/provision", {"device": PUMP})
    assert response.status_code == 503 and "nothing changed" in response.get_data(as_text=True)
    assert not PASSWORD_RE.search(response.get_data(as_text=True))
    with get_store(app).sessions() as db:
        assert db.scalars(select(BrokerCredential)).all() == []
