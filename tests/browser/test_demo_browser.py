"""`rhizome demo` as a newcomer meets it: the sign-ins it prints work, its fault scenario opens a repair that
shows on the pages, and a driver's pickup stays in the hub's stock. The demo runs as a real process (its own
broker, SQLite store, devices, planner and dashboard); the pages are read in headless Chromium."""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.process.procutil import free_port
from gateway.store import stock
from gateway.store.db import make_engine
from gateway.store.models import Device, Fault, Reading, RepairTask, Stock
from gateway.store.models.vocab import LedgerSource
from gateway.store.region import read_region, sample_region_path
from tests.test_demo import READY, SIGN_IN, alive, descendants, get, sign_in

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.browser]


def seen_by_coordinator(browser: Any, url: str, password: str, engine: Any, task_id: int) -> None:
    """Sign in as the printed coordinator on a phone-sized page and find the scripted repair: on the crew
    overview while nobody has it, else on the page of the member it went to (a coordinator may open it)."""
    context = browser.new_context(viewport={"width": 360, "height": 780})
    try:
        page = context.new_page()
        page.goto(url + "login")
        page.fill("input[name=username]", "coordinator")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        assert page.locator("form[action='/logout']").count() == 1, page.content()[:500]
        deadline = time.monotonic() + 60
        while True:
            with Session(engine) as session:
                task = session.get(RepairTask, task_id)
                assert task is not None
                title, member = task.title, task.assigned_member_id
            page.goto(url + ("crew" if member is None else f"crew?member={member}"))
            if page.get_by_text(title).count() or time.monotonic() > deadline:
                break
            time.sleep(2)  # it moved between the read and the page: look again
        shown = page.inner_text("body")[:3000]
        assert page.get_by_text(title).count(), f"{title!r} is on neither page:\n{shown}"
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than a phone"
    finally:
        context.close()


def test_demo_prints_sign_ins_fails_a_pump_and_keeps_deliveries_in_stock(
    tmp_path: Path, browser: Any
) -> None:
    """A newcomer's first minutes on `make demo`'s defaults (SQLite, the embedded broker): the map lists every
    community, the printed accounts sign in, the scripted pump failure becomes an open fault with a repair
    task that a coordinator sees in Chromium, goods a driver took from the hub stay taken though its box
    reports on; Ctrl-C then stops every process and leaves each device offline (tests/test_demo.py runs the
    other setups)."""
    data = tmp_path / "var"
    args = ["--data-dir", str(data), "demo", "--port", str(free_port()), "--first-fault", "30"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RHIZOME_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "gateway.process.cli", *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    engine = make_engine(f"sqlite:///{data / 'rhizome.db'}")
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            output.append(line)
            if line.startswith("(new passwords every demo run"):
                break
        else:
            pytest.fail("demo exited before printing its sign-ins:\n" + "".join(output))
        url = READY.search("".join(output)).group(2)  # type: ignore[union-attr]
        processes = descendants(demo.pid)
        assert len(processes) >= 5  # gateway, devices, planner, dashboard, the embedded broker
        page = get(url).decode()
        region = read_region(sample_region_path())
        assert all(html.escape(c["name"], quote=False) in page for c in region["communities"])
        assert json.loads(get(url + "api/health"))["status"] == "ok"
        logins = {m.group(1): m for m in SIGN_IN.finditer("".join(output))}
        assert sorted(logins) == ["coordinator", "crew", "driver", "viewer"], "".join(output)[-2000:]
        assert logins["crew"].group(5) == logins["driver"].group(5) == "Aguada"
        saved = json.loads((data / "dashboard-accounts.json").read_text())["accounts"]
        assert {a["username"]: a["role"] for a in saved} == {name: name for name in logins}
        assert all(password not in (data / "dashboard-accounts.json").read_text() for password in
                   (m.group(2) for m in logins.values()))  # fmt: skip
        for name, match in logins.items():
            assert sign_in(url, name, match.group(2)) == 200, name
        assert sign_in(url, "crew", "not-the-password") == 401

        with Session(engine) as session:
            pump = session.scalars(select(Device).where(Device.slug == "aguada-pump-1-pump")).one()
            hub = session.scalars(select(Device).where(Device.slug == "aguada-hub-stock")).one()
            row = session.scalars(
                select(Stock).where(Stock.site_id == hub.site_id).order_by(Stock.quantity.desc())
            ).first()
            assert row is not None
            good_id, before = row.good_id, row.quantity
        taken = round(before / 4)  # the box restocks itself below 60 % of its start: stay above
        with Session(engine) as session, session.begin():  # what a driver's pickup records
            held = session.get(Stock, (hub.site_id, good_id))
            stock.record(
                session, held, hub.site_id, good_id, held.quantity - taken, -taken,  # type: ignore[union-attr]
                source=LedgerSource.DELIVERY, reason="pickup", at=datetime.now(UTC),
            )  # fmt: skip
        moved_at = time.monotonic()
        deadline = moved_at + 150
        kept = fault = task = None
        while time.monotonic() < deadline and not (kept and fault and task):  # every round checks the level
            time.sleep(2)
            with Session(engine) as session:
                level = session.get(Stock, (hub.site_id, good_id)).quantity  # type: ignore[union-attr]
                if time.monotonic() > moved_at + 10:  # its box reports every simulated minute: ten by now
                    assert level <= before - taken + 1, f"the box put the pickup back: {level} of {before}"
                    assert level >= 0.9 * (before - taken), f"the pickup was taken twice: {level} of {before}"
                    kept = True
                fault = session.scalars(
                    select(Fault).where(Fault.device_id == pump.id, Fault.status == "open")
                ).first()
                task = (
                    fault
                    and session.scalars(select(RepairTask).where(RepairTask.fault_id == fault.id)).first()
                )
        assert kept, "the level was never checked"
        assert fault is not None, "no open fault for the failed pump in 150 s"
        assert task is not None and task.status != "closed"
        seen_by_coordinator(browser, url, logins["coordinator"].group(2), engine, task.id)
        with Session(engine) as session:
            assert (session.scalar(select(func.count()).select_from(Reading)) or 0) >= 100

        demo.send_signal(signal.SIGINT)  # what Ctrl-C does
        rest, _ = demo.communicate(timeout=60)
        assert demo.returncode == 0, ("".join(output) + rest)[-3000:]
        time.sleep(0.5)
        assert not [pid for pid in processes if alive(pid)], "processes left behind"
        with Session(engine) as session:
            states = dict(session.execute(select(Device.state, func.count()).group_by(Device.state)).all())
        devices = sum(len(s["devices"]) for c in region["communities"] for s in c["sites"])
        assert states == {"offline": devices}
    finally:
        engine.dispose()
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            try:
                demo.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
