"""The options and the run of bench/region_week.py: a simulated week (or any span) of the region, measured
and reported."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from bench.week import measure
from bench.week.actors import Behaviour
from bench.week.report import write_report
from bench.week.runner import WeekConfig, run_week, scenario_events
from gateway.process.settings import Settings
from gateway.store.db import make_engine, make_session_factory

log = logging.getLogger(__name__)
JSON_KEYS = (
    "faults",
    "faults_detected",
    "faults_alerted",
    "faults_confirmed",
    "tasks_closed_unconfirmed",
    "fault_to_alert_median_s",
    "essential_coverage",
    "baseline_coverage",
    "members_over_pledge",
    "max_load_ratio",
    "load_gini",
    "hours_given",
    "hours_pledged",
    "km_per_covered_day",
    "stored_equals_sent",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of bench/region_week.py: the scenario FILE, the region, the span, speed, seed, report."""
    parser.add_argument(
        "file",
        type=Path,
        nargs="?",
        default=Path("devices/scenarios/region-week.json"),
        help="scenario file [devices/scenarios/region-week.json]",
    )
    parser.add_argument("--region", type=Path, help="region file [bundled Puerto Rico sample]")
    parser.add_argument("--days", type=float, default=7.0, help="simulated days [7]")
    parser.add_argument("--speed", type=float, default=500.0, help="simulated seconds per real second [500]")
    parser.add_argument("--seed", type=int, default=1, help="seed of readings and of people's choices [1]")
    parser.add_argument(
        "--plan-every", type=float, default=6.0, metavar="H", help="simulated hours between planner runs [6]"
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=Path("docs/reports/region_week.md"),
        help="Markdown report; the PNGs go next to it [docs/reports/region_week.md]",
    )


def config_of(args: argparse.Namespace) -> WeekConfig:
    """WeekConfig from the parsed options."""
    if not args.file.is_file():
        raise ValueError(f"no scenario file {args.file}")
    return WeekConfig(
        scenario=args.file,
        region=args.region,
        days=args.days,
        speed=args.speed,
        seed=args.seed,
        plan_every_h=args.plan_every,
    )


def run_and_report(settings: Settings, config: WeekConfig, report: Path) -> dict[str, Any]:
    """Run the scenario, measure from the store, write the report; return the figures."""
    started = time.monotonic()
    record = run_week(settings, config)
    receipts = [{"at": r.at.isoformat(), "topic": r.topic, "body": r.body} for r in record.receipts]
    (record.data_dir / "receipts.json").write_text(json.dumps(receipts), encoding="utf-8")  # to re-measure
    clock = measure.Clock(record.t0, config.speed, config.days, config.start)
    engine = make_engine(record.database_url)
    try:
        with make_session_factory(engine)() as session:
            rows = measure.fault_rows(session, scenario_events(config.scenario), clock, record.receipts)
            baseline = json.loads(record.baseline.read_text(encoding="utf-8")) if record.baseline else None
            cov = measure.coverage(session, clock, baseline)
            vol = measure.volunteering(session, clock)
            msg = measure.messages(session, record.published, record.receipts)
            brd = measure.board(session, clock)
            figures = measure.summarise(rows, cov, vol, msg, session, brd)
    finally:
        engine.dispose()
    figures["wall_s"] = round(time.monotonic() - started, 1)
    figures = {
        **{k: figures[k] for k in JSON_KEYS},
        **{k: v for k, v in figures.items() if k not in JSON_KEYS},
    }
    behaviour = Behaviour(config.speed, config.seed, **config.behaviour)
    preface = (
        f"Scenario `{config.scenario}` on the "
        f"{'bundled sample' if config.region is None else str(config.region)} "
        f"region: {config.days:g} simulated days at speed {config.speed:g} ({config.wall_s:.0f} s of real "
        "time), "
        f"seed {config.seed}, planner every {config.plan_every_h:g} simulated hours. Every figure is read "
        "from "
        "the store and the outbox after the run (and the alert receipts on the members' MQTT topics), "
        "not from "
        "the simulator. Crews and drivers are simulated (bench/week/actors.py): they act through the "
        "dashboard's own forms as a coordinator acting for them, travel at 35 km/h (drivers 40 km/h) "
        "over 1.35 "
        "times the straight-line distance, repair in 0.5-5 h by fault, decline 10% of tasks, do not show "
        "up for "
        "7% (a coordinator declines for them after 4 h). Drivers accept a route before driving it, "
        "decline 8% of the routes they are offered, give back (release) 3% of those they accepted before "
        "leaving, drive only the stops they accepted, and leave alone a route the planner revised or "
        "withdrew before they answered. The open task board holds the sample tasks of every sector "
        "(gateway/store/sample_board.py) in six communities, and the region's goals for the month; members "
        f"the matcher suggests answer as they answer tasks, take an urgent place they are told of "
        f"{behaviour.urgent_take_p:.0%} of the time, and every six "
        f"simulated hours {behaviour.browse_p:.0%} of the members with "
        "a pledge take a free place near them that fits their offer."
    )
    coverage_note = (
        "A **need-day** is one (community, essential good with a minimum) on one simulated day; its "
        "stock is the "
        "community's total at the end of the day, from the stock ledger. The **baseline** is the same "
        "week with no deliveries: every stock device stepped again offline from the same seed "
        "(`rhizome devices baseline`, devices/baseline.py) with nobody moving goods, so its harvests, use "
        "and the stores' own restocking (below 60% of their initial level) follow their own levels. A "
        "**shortage-day** is a need-day under the "
        "minimum in the baseline; it is **covered** when the stock with the planner's deliveries is at "
        "or above "
        f"the minimum at the end of that day. {cov['communities']} communities have essential needs."
    )
    run_note = (
        f"Wall time {figures['wall_s']} s on a {os.cpu_count()}-core machine, load average "
        f"{os.getloadavg()[1]:.1f} over the last 5 minutes of the run. "
        f"Data directory of the run: `{record.data_dir}` (process logs in `logs/`). "
        f"Simulated people: {record.tally}."
    )
    write_report(
        report,
        {
            "rows": rows,
            "coverage": cov,
            "volunteering": vol,
            "messages": msg,
            "board": brd,
            "figures": figures,
            "preface": preface,
            "coverage_note": coverage_note,
            "run_note": run_note,
            "json": measure.dumps(figures),
        },
    )
    log.info("report written to %s", report)
    figures["report"] = str(report)
    return figures
