"""A week in the region: the whole system measured against what it exists for (`rhizome scenario run`).

    .venv/bin/python bench/region_week.py                       # 7 simulated days at speed 500 (~21 min)
    .venv/bin/python bench/region_week.py --days 1 --speed 3600 --report /tmp/day.md
    RHIZOME_MQTT_URL=mqtt://127.0.0.1:1883 RHIZOME_DATABASE_URL=postgresql://.../empty_db \\
        .venv/bin/python bench/region_week.py

Starts broker, gateway, planner, dashboard and device simulator (bench/week/runner.py), runs the scenario
(devices/scenarios/region-week.json: 23 faults of eight kinds) with simulated crews and drivers acting through
the dashboard, then prints the summary table and, as its last line, the figures as JSON (from the store and
the outbox). The Markdown report with two plots goes to docs/reports/region_week.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.week import measure
from bench.week.cli import add_arguments, config_of, run_and_report
from gateway.process.settings import from_env


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.add_argument(
        "--data-dir", help="where the run's store, logs and broker live [RHIZOME_DATA_DIR, ./var]"
    )
    args = parser.parse_args()
    logging.basicConfig(
        level="INFO", format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    settings = from_env(data_dir=Path(args.data_dir) if args.data_dir else None)
    figures = run_and_report(settings, config_of(args), args.report)
    for key, value in figures.items():
        print(f"{key:<28} {value}")
    print(measure.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
