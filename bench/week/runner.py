"""Run the region for a simulated week: the real processes under gateway.process.demo's Supervisor,
simulated people
acting through the dashboard, then the figures from the store (measure.py) and the report (report.py)."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.week.actors import Behaviour, People
from bench.week.timescale import (
    SWEEP_EVERY_S,
    WEEK_INTERVALS,
    scaled_rules,
    store_region,
    with_intervals,
)
from bench.week.webclient import DashboardClient
from gateway.broker.embedded import BrokerAccount, EmbeddedBroker
from gateway.contract import clock
from gateway.process.demo import _wait_for
from gateway.process.procutil import free_port, wait_for_port
from gateway.process.settings import Settings, to_env
from gateway.process.supervisor import Supervisor
from gateway.store.db import make_engine, make_session_factory
from gateway.store.migrate import upgrade
from gateway.store.models import Community, Fault, Reading, RepairTask
from gateway.store.region import load_region, read_region, sample_region_path
from gateway.store.sample_board import post_sample_tasks, set_sample_goals

log = logging.getLogger(__name__)
COORDINATOR = "week-coordinator"
PROGRESS_EVERY_S = 30.0


@dataclass(frozen=True)
class WeekConfig:
    """One run: which scenario, how long and how fast, and where the report goes."""

    scenario: Path
    region: Path | None = None
    days: float = 7.0
    speed: float = 500.0
    seed: int = 1
    start: datetime = datetime(2025, 6, 2, 4, 0, tzinfo=UTC)  # a Monday, before dawn
    plan_every_h: float = 6.0  # simulated hours between planner runs
    plan_lead_h: float = 12.0  # the planner plans for the stock expected this many simulated hours ahead
    plan_time_limit_s: float = 10.0
    # The work clock (people's time: routes, pledges per week, declines) starts this many real seconds after
    # the run begins, when the devices start: enough for the gateway, dashboard and planner to come up.
    clock_lead_s: float = 15.0
    out_dir: Path = Path("docs/reports")
    name: str = "region_week"
    behaviour: dict[str, Any] = field(default_factory=dict)  # overrides of actors.Behaviour
    intervals: dict[str, int] = field(default_factory=lambda: dict(WEEK_INTERVALS))  # report every, by kind

    def __post_init__(self) -> None:
        if not self.speed > 0 or not self.days > 0:
            raise ValueError("speed and days must be positive")

    @property
    def wall_s(self) -> float:
        """Real seconds the simulated period takes."""
        return self.days * 86400 / self.speed


@dataclass
class RunRecord:
    """What the run hands to the measurement: where the data is and what was heard on the members' topics."""

    database_url: str
    data_dir: Path
    t0: datetime  # real time of the simulated start (the first reading's device clock)
    receipts: list[Any]
    published: int | None  # readings the devices sent, from the simulator's final log line
    tally: Any
    wall_s: float
    baseline: Path | None = None  # the same week's stock with no deliveries (devices/baseline.py)
    work_clock: str = ""  # RHIZOME_WORK_CLOCK of every process: people's simulated time


def run_week(settings: Settings, config: WeekConfig) -> RunRecord:
    """Bring the system up, run the simulated week, stop everything cleanly; the store stays for measuring."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    data_dir = (settings.data_dir / f"week-{stamp}").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    broker: EmbeddedBroker | None = None
    supervisor: Supervisor | None = None
    people: People | None = None
    engine = None
    try:
        if settings.mqtt_url is None:
            account = BrokerAccount("rhizome-week", secrets.token_urlsafe(16))
            broker = EmbeddedBroker(data_dir / "broker", [account])
            broker.start()
            settings = settings.with_overrides(mqtt_url=broker.url(account), mqtt_protocol=broker.protocol)
            settings = replace(settings, mqtt_password=None, mqtt_password_file=None)  # the URL has it
        settings = settings.with_overrides(
            data_dir=data_dir,
            dashboard_port=free_port(settings.dashboard_host),
            plan_interval_s=max(5.0, config.plan_every_h * 3600 / config.speed),
            plan_lead_s=config.plan_lead_h * 3600 / config.speed,
            gateway_client_id=f"rhizome-week-{stamp}",
        )
        engine = make_engine(settings.effective_database_url)
        upgrade(engine)
        sessions = make_session_factory(engine)
        region = read_region(config.region or sample_region_path())
        if config.intervals:
            region = with_intervals(region, config.intervals)
        region_path = data_dir / "region.json"
        region_path.write_text(json.dumps(region, ensure_ascii=False), encoding="utf-8")
        with sessions.begin() as session:
            if session.scalar(select(func.count()).select_from(Community)):
                raise ValueError("the database is not empty: a week needs a fresh store (or none: SQLite)")
            load_region(session, store_region(region, config.speed))
            # Work in every sector beside repairs and deliveries, and the month's goals to measure it by.
            posted = post_sample_tasks(session, config.start)
            goals_set = set_sample_goals(session, config.start)
        log.info("board: %s tasks posted, %s sector goals set for %s", posted, goals_set, config.start.date())
        rules = data_dir / "rules.toml"
        rules.write_text(scaled_rules(config.speed), encoding="utf-8")
        # People live on the devices' simulated time: the work clock reads config.start when they start.
        work_clock = clock.WorkClock(config.start, time.time() + config.clock_lead_s, config.speed)
        env = {**os.environ, **to_env(settings), "PYTHONUNBUFFERED": "1", clock.ENV: work_clock.encode()}
        password = secrets.token_urlsafe(18)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.process.cli",
                "dashboard-account",
                COORDINATOR,
                "--role",
                "coordinator",
                "--password-stdin",
            ],
            input=password + "\n",
            text=True,
            env=env,
            check=True,
            capture_output=True,
        )
        supervisor = Supervisor(env, data_dir / "logs")
        ready = data_dir / "gateway.ready"
        supervisor.start(
            "gateway",
            "gateway",
            "--rules",
            str(rules),
            "--ready-file",
            str(ready),
            "--sweep-every",
            str(SWEEP_EVERY_S),
        )
        _wait_for(ready.exists, 60, "gateway subscription", supervisor)
        supervisor.start(
            "dashboard",
            "dashboard",
            "--host",
            settings.dashboard_host,
            "--port",
            str(settings.dashboard_port),
        )
        wait_for_port(settings.dashboard_host, settings.dashboard_port, 60)
        web = DashboardClient(f"http://{settings.dashboard_host}:{settings.dashboard_port}")
        web.login(COORDINATOR, password)
        people = People(
            settings.mqtt(),
            sessions,
            web,
            Behaviour(config.speed, config.seed, **config.behaviour),
            work_clock=work_clock,
        )
        people.start()
        supervisor.start("planner", "plan", "--loop", "--time-limit", str(config.plan_time_limit_s))
        simulate = [
            "devices",
            "simulate",
            "--region",
            str(region_path),
            "--scenario",
            str(config.scenario),
            "--speed",
            str(config.speed),
            "--seed",
            str(config.seed),
            "--control",
            "--start",
            config.start.isoformat(),
        ]
        if broker is not None and broker.kind == "amqtt":
            simulate += ["--mode", "multiplexed", "--connections", "4"]
        _start_with_the_clock(work_clock)
        supervisor.start("devices", *simulate)
        t0 = _first_reading(sessions, supervisor)
        lag = (t0.timestamp() - work_clock.real_start) * config.speed
        log.info("the devices' first reading came %.0f simulated s after the work clock's start", lag)
        log.info("simulated week started at %s (real), %.0f s to go", t0.isoformat(), config.wall_s)
        _watch(sessions, supervisor, t0, config)
        supervisor.stop("devices", timeout=60)
        supervisor.stop("planner", timeout=60)  # nothing new is planned after the week's end
        _wait_drained(sessions)
        people.stop()
        people_tally, receipts = people.tally, people.receipts
        people = None
        supervisor.stop_all()
        log.info("people: %s", people_tally)
        baseline = _baseline(env, region_path, config, data_dir / "baseline.json")
        return RunRecord(
            database_url=settings.effective_database_url,
            data_dir=data_dir,
            t0=t0,
            receipts=receipts,
            published=_published(data_dir / "logs" / "devices.log"),
            tally=people_tally,
            wall_s=config.wall_s,
            baseline=baseline,
            work_clock=work_clock.encode(),
        )
    finally:
        if people is not None:
            people.stop()
        if supervisor is not None:
            supervisor.stop_all()
        if broker is not None:
            broker.stop()
        if engine is not None:
            engine.dispose()


def _start_with_the_clock(work_clock: clock.WorkClock) -> None:
    """Wait for the work clock's start, so the devices' simulated start and the people's are one moment."""
    ahead = work_clock.real_start - time.time()
    if ahead < 0:
        log.warning("the system took %.1f s more than the work clock's lead to come up", -ahead)
    time.sleep(max(0.0, ahead))


def _baseline(env: dict[str, str], region: Path, config: WeekConfig, out: Path) -> Path:
    """Step the same week's stock devices offline with nobody moving goods (`rhizome devices baseline`)."""
    log.info("stepping the same week without deliveries (the baseline)")
    command = [sys.executable, "-m", "gateway.process.cli", "devices", "baseline", "--region", str(region)]
    command += ["--seed", str(config.seed), "--start", config.start.isoformat(), "--days", str(config.days)]
    command += ["--scenario", str(config.scenario), "--out", str(out)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OSError(f"the baseline week failed: {result.stderr.strip()[-2000:]}")
    return out


def _first_reading(sessions: Any, supervisor: Supervisor) -> datetime:
    """The simulated clock's start in real time: every device reads at offset 0, so the earliest reading."""

    def first() -> datetime | None:
        with sessions() as session:
            return session.scalar(select(func.min(Reading.device_ts)))

    _wait_for(lambda: first() is not None, 90, "the first reading", supervisor)
    value = first()
    assert value is not None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _watch(sessions: Any, supervisor: Supervisor, t0: datetime, config: WeekConfig) -> None:
    """Wait out the simulated period, with a progress line every 30 s; a dead child ends the run."""
    end = t0 + timedelta(seconds=config.wall_s)
    next_note = time.monotonic() + PROGRESS_EVERY_S
    while (now := datetime.now(UTC)) < end:
        dead = supervisor.dead()
        if dead:
            raise OSError(f"{dead[0].name} exited during the run; see {dead[0].log_path}")
        time.sleep(min(1.0, (end - now).total_seconds()))
        if time.monotonic() >= next_note:
            next_note = time.monotonic() + PROGRESS_EVERY_S
            with sessions() as session:
                readings = session.scalar(select(func.count()).select_from(Reading))
                faults = session.scalar(select(func.count()).select_from(Fault))
                closed = session.scalar(select(func.count()).where(RepairTask.status == "closed"))
            day = (datetime.now(UTC) - t0).total_seconds() * config.speed / 86400
            log.info(
                "day %.2f of %g: %s readings, %s faults, %s tasks closed",
                day,
                config.days,
                readings,
                faults,
                closed,
            )


def _wait_drained(sessions: Any, quiet_s: float = 3.0, timeout_s: float = 90.0) -> None:
    """Wait until the gateway has stored everything in flight (the count stops moving)."""
    deadline, last, since = time.monotonic() + timeout_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        with sessions() as session:
            count = session.scalar(select(func.count()).select_from(Reading)) or 0
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)
    log.warning("readings still arriving after %.0f s; measuring anyway", timeout_s)


_PUBLISHED = re.compile(r"published (\d+) messages in [\d.]+ s")


def _published(log_path: Path) -> int | None:
    """The devices' own count of readings sent, from the simulator's last line."""
    try:
        matches = _PUBLISHED.findall(log_path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return int(matches[-1]) if matches else None


def scenario_events(path: Path) -> list[dict[str, Any]]:
    """The scenario file's events (raw JSON); the simulator validates them at start."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return list(data.get("events", []))
