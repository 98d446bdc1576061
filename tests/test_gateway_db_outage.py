"""PostgreSQL stopped for 10 s mid-stream: the gateway stops acknowledging, retries, and loses nothing.

The test runs its own PostgreSQL (initdb + pg_ctl on a free loopback port) so the shared one stays up.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.contract.target import MqttTarget
from gateway.process.procutil import free_port
from gateway.store.db import make_engine
from gateway.store.migrate import upgrade
from tests.conftest import ShippedBroker
from tests.gateway_procs import (
    Gateway,
    publish_stream,
    region_topics,
    wait_for_count,
)

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.postgres]


def _postgres_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class OwnPostgres:
    """A throwaway PostgreSQL cluster owned by the `postgres` user (initdb refuses to run as root)."""

    def __init__(self) -> None:
        bin_dir = _postgres_bin()
        if bin_dir is None or os.geteuid() != 0:
            reason = "needs initdb and root (to run it as the postgres user)"
            if os.environ.get("RHIZOME_TEST_REQUIRE_SERVICES") == "1":
                pytest.fail(reason)
            pytest.skip(reason)
        self.bin = bin_dir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rhizome-pg-", dir="/tmp"))
        user = pwd.getpwnam("postgres")
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._as_postgres(
            "initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def _as_postgres(self, tool: str, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", str(self.bin / tool), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            "pg_ctl", "-D", str(self.dir / "data"), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    pg.start()
    yield pg
    pg.remove()


def test_postgres_down_for_10_s_loses_nothing_and_the_gateway_survives(
    shipped_mosquitto: ShippedBroker, own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    engine: Engine = make_engine(own_postgres.url)
    upgrade(engine)
    topics = region_topics(engine, 20)
    engine.dispose()
    url = shipped_mosquitto.url
    gateway = Gateway(tmp_path, url, own_postgres.url, f"gw-{uuid.uuid4().hex[:6]}")
    gateway.start()
    total = 12_000
    publisher = threading.Thread(
        target=publish_stream, args=(MqttTarget.from_url(url), topics, total, "pg"), daemon=True
    )
    try:
        publisher.start()
        time.sleep(0.5)
        own_postgres.stop()
        time.sleep(10)
        own_postgres.start()
        publisher.join(180)
        assert not publisher.is_alive()
        engine = make_engine(own_postgres.url)
        assert wait_for_count(engine, total, timeout=90) == total
        engine.dispose()
        assert gateway.process is not None and gateway.process.poll() is None, "the gateway died"
    finally:
        gateway.stop()
    log = (tmp_path / f"{gateway.client_id}.log").read_text()
    assert "database unavailable" in log
