# Three commands matter: `make demo`, `make check` (lint, types and the unit tests: 2.5 minutes on two
# cores) and `make test` (everything, as CI runs it). Each creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The unit lane: every test without a lane marker (pyproject.toml lists them; tests/lanes.py guards it).
UNIT   := not network and not postgres and not browser and not slow
# `make test` splits the suite into five disjoint lanes that together are every test: the slow broker tests (in
# two lanes, by file) and the other broker tests (the longest lanes, so they start first), the unit tests, the
# other integration tests.
NETWORK_SLOW := network and slow
NETWORK := network and not slow
OTHERS  := not network and (postgres or browser or slow)
DURATIONS := --durations=8
NICE := nice -n 15  # `make test`'s CPU-bound jobs yield to the lanes that wait on clocks (see test:)

.PHONY: demo check test lint typecheck unit lane-network-slow lane-network-slow-b lane-network lane-others lane-unit lane-unit-a lane-unit-b venv clean

# Python may keep compiled modules (some machines set PYTHONDONTWRITEBYTECODE): the suite starts hundreds of
# Python processes, and each would compile the project again (collecting the tests alone: 15 s of CPU per
# lane against 6 s).
unexport PYTHONDONTWRITEBYTECODE

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rhizome demo

lint: $(STAMP)
	$(NICE) $(BIN)/ruff check .
	$(NICE) $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(NICE) $(BIN)/mypy

# Unit tests never reach a service: without the CI services' URLs, `database_url` is a SQLite file.
unit: $(STAMP)
	env -u RHIZOME_TEST_MQTT_URL -u RHIZOME_TEST_POSTGRES_URL -u RHIZOME_TEST_REQUIRE_SERVICES \
		$(BIN)/python -m pytest -q -m "$(UNIT)" $(PYTEST_ARGS)

# Two jobs: lint and mypy on one core while the unit tests run on the other; -k: report every failure.
check: $(STAMP)
	$(MAKE) --no-print-directory -j2 -k --output-sync=target -o $(STAMP) lint typecheck unit

# Everything, as CI runs it: the lanes and lint+mypy as three jobs on two cores (the broker lanes mostly wait
# on the broker and the clock: a two-job run used 5 min of CPU in 7.5 min). Lanes share only the services, and
# safely: each test gets its own PostgreSQL database, its own ports and its own topics. With the services'
# URLs kept, unit tests asking for `database_url` still run on PostgreSQL, as they did in one serial run.
# --output-sync prints each lane's whole output when it ends; -k runs them all and fails if any failed.
# The slow broker tests are split in two lanes by file (the nodes' and bridges' federation tests, the demo's
# end to end runs, and the rest): each is minutes of waiting on brokers and clocks, not of CPU.
# The unit tests (and lint and mypy) are CPU-bound, the rest mostly wait on brokers and clocks, and a loaded
# machine makes their clocks late: every lane starts at once, the CPU-bound ones at a low priority (nice), so
# the waiting lanes run as on a quiet machine and the unit tests take the cores they leave. The unit lane runs
# as two halves (tests/lanes.py --shard), so when the waiting lanes end both cores still have work. Each lane
# prints its slowest tests.
test: $(STAMP)
	$(BIN)/python -m compileall -q -j0 gateway dashboard logistics devices bench tests
	$(MAKE) --no-print-directory -j8 -k --output-sync=target -o $(STAMP) lane-network-slow-b lane-network-slow lane-others lane-network lane-unit-a lane-unit-b lint typecheck

SLOW_B := tests/test_nodes.py tests/test_federation.py tests/test_demo.py tests/browser/test_demo_browser.py

lane-network-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m "$(NETWORK_SLOW)" $(addprefix --ignore=,$(SLOW_B)) $(DURATIONS) $(PYTEST_ARGS)

lane-network-slow-b: $(STAMP)
	$(BIN)/python -m pytest -q -m "$(NETWORK_SLOW)" $(SLOW_B) $(DURATIONS) $(PYTEST_ARGS)

lane-network: $(STAMP)
	$(BIN)/python -m pytest -q -m "$(NETWORK)" $(DURATIONS) $(PYTEST_ARGS)

lane-others: $(STAMP)
	$(BIN)/python -m pytest -q -m "$(OTHERS)" $(DURATIONS) $(PYTEST_ARGS)

lane-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "$(UNIT)" $(PYTEST_ARGS)

lane-unit-a: $(STAMP)
	$(NICE) $(BIN)/python -m pytest -q -m "$(UNIT)" --shard 1/2 $(DURATIONS) $(PYTEST_ARGS)

lane-unit-b: $(STAMP)
	$(NICE) $(BIN)/python -m pytest -q -m "$(UNIT)" --shard 2/2 $(DURATIONS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info
