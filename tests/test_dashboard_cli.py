"""`rhizome dashboard`: flags, fast help, and a real server that stops cleanly when told to."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import gateway.process.signals
from dashboard.cli import dashboard, run_dashboard
from gateway.process.cli import main, parse
from gateway.process.settings import Settings
from gateway.store.db import make_engine
from gateway.store.migrate import upgrade


def test_flags_override_settings() -> None:
    ctx = parse(["dashboard", "--host", "0.0.0.0", "--port", "8123"])
    assert ctx.command is dashboard and ctx.params == {"host": "0.0.0.0", "port": 8123}


@pytest.mark.slow
def test_registering_the_command_imports_no_web_stack() -> None:
    code = "import sys, dashboard.cli; print(sorted({'flask', 'folium', 'sqlalchemy'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_bad_port_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="port"):
        run_dashboard(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"), port=70000)
    assert main(["--db", f"sqlite:///{tmp_path / 'x.db'}", "dashboard", "--port", "70000"]) == 1


def test_serves_until_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'rhizome.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    stop = threading.Event()
    monkeypatch.setattr(
        gateway.process.signals, "stop_on_signals", lambda: stop
    )  # no signal handlers in a test thread
    caplog.set_level(logging.INFO, logger="dashboard.cli")
    settings = Settings(database_url=url)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(run_dashboard(settings, host="127.0.0.1", port=0)))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/", caplog.text)):
            assert time.monotonic() < deadline and thread.is_alive(), caplog.text
            time.sleep(0.05)
        with urllib.request.urlopen(f"{found.group(0)}api/health", timeout=10) as response:
            assert json.load(response)["status"] == "ok"
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive() and result == [0]
    assert "dashboard stopped" in caplog.text


def test_dashboard_account_command_stores_a_hashed_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from dashboard.web.accounts import FileAccountStore, authenticate

    monkeypatch.delenv("RHIZOME_ACCOUNTS_FILE", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough secret\n"))
    argv = ["--data-dir", str(tmp_path), "dashboard-account", "luz", "--role", "crew", "--member", "4"]
    assert main([*argv, "--password-stdin"]) == 0
    store = FileAccountStore(tmp_path / "dashboard-accounts.json")
    account = authenticate(store, "luz", "a long enough secret")
    assert account is not None and (account.role, account.member_id) == ("crew", 4)
    assert "a long enough secret" not in (tmp_path / "dashboard-accounts.json").read_text()


def test_dashboard_accounts_command_saves_every_login_of_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How the demo saves its four sign-ins in one child: each one signs in, none is stored in clear."""
    import io

    from dashboard.web.accounts import FileAccountStore, authenticate

    monkeypatch.delenv("RHIZOME_ACCOUNTS_FILE", raising=False)
    batch = [
        {"username": "coordinator", "password": "first long secret", "role": "coordinator", "member": None},
        {"username": "crew", "password": "second long secret", "role": "crew", "member": 7},
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(batch)))
    assert main(["--data-dir", str(tmp_path), "dashboard-accounts"]) == 0
    store = FileAccountStore(tmp_path / "dashboard-accounts.json")
    crew = authenticate(store, "crew", "second long secret")
    assert crew is not None and (crew.role, crew.member_id) == ("crew", 7)
    assert authenticate(store, "coordinator", "first long secret") is not None
    assert "long secret" not in (tmp_path / "dashboard-accounts.json").read_text()


def test_dashboard_accounts_command_refuses_a_batch_without_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps([{"username": "x", "role": "viewer"}])))
    assert main(["--data-dir", str(tmp_path), "dashboard-accounts"]) != 0
    assert "expected a JSON list of {username, password, role" in caplog.text
    assert not (tmp_path / "dashboard-accounts.json").exists()


def test_dashboard_account_command_honours_the_accounts_file_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from dashboard.web.accounts import FileAccountStore, authenticate

    elsewhere = tmp_path / "etc" / "accounts.json"
    monkeypatch.setenv("RHIZOME_ACCOUNTS_FILE", str(elsewhere))
    monkeypatch.setattr(sys, "stdin", io.StringIO("another long secret\n"))
    argv = ["--data-dir", str(tmp_path / "data"), "dashboard-account", "ana", "--role", "viewer"]
    assert main([*argv, "--password-stdin"]) == 0
    assert authenticate(FileAccountStore(elsewhere), "ana", "another long secret") is not None
    assert not (tmp_path / "data").exists()
