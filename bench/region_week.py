"""A week in the region: the whole system measured against what it exists for.

    .venv/bin/python bench/region_week.py                       # 7 simulated days at speed 500 (~21 min)
    .venv/bin/python bench/region_week.py --days 1 --speed 3600 --report /tmp/day.md
    RHIZOME_MQTT_URL=mqtt://127.0.0.1:1883 RHIZOME_DATABASE_URL=postgresql://.../empty_db \\
        .venv/bin/python bench/region_week.py

Starts broker (embedded unless RHIZOME_MQTT_URL), gateway, planner, dashboard and device simulator
(bench/week/runner.py) on a fresh store (SQLite in the data dir unless RHIZOME_DATABASE_URL names an empty
database), runs the scenario (devices/scenarios/region-week.json: 23 faults of eight kinds) with simulated
crews and drivers acting through the dashboard, then prints the summary table and, as its last line, the
figures as JSON (from the store and the outbox). The Markdown report with two plots goes to
docs/reports/region_week.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` is not installed: the repo root

from bench.week import measure
from bench.week.cli import add_arguments, config_of, run_and_report
from gateway.process.settings import from_env

log = logging.getLogger("bench.region_week")


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
    try:
        settings = from_env(data_dir=Path(args.data_dir) if args.data_dir else None)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        figures = run_and_report(settings, config_of(args), args.report)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError) as exc:  # a missing scenario file, a store that is not empty
        log.error("%s", exc)
        return 1
    for key, value in figures.items():
        print(f"{key:<28} {value}")
    print(measure.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
