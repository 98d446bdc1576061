# Three commands matter: `make demo`, `make check` (the fast lane: lint, types and the unit tests, under a
# minute) and `make test` (everything, as CI runs it). Each creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The unit lane: every test without a lane marker (pyproject.toml lists them; tests/lanes.py guards it).
UNIT   := not network and not postgres and not browser and not slow

.PHONY: demo check test lint typecheck unit venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rhizome demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Unit tests never reach a service: without the CI services' URLs, `database_url` is a SQLite file.
unit: $(STAMP)
	env -u RHIZOME_TEST_MQTT_URL -u RHIZOME_TEST_POSTGRES_URL -u RHIZOME_TEST_REQUIRE_SERVICES \
		$(BIN)/python -m pytest -q -m "$(UNIT)" $(PYTEST_ARGS)

# Two jobs: lint and mypy on one core while the unit tests run on the other; -k: report every failure.
check: $(STAMP)
	$(MAKE) --no-print-directory -j2 -k --output-sync=target -o $(STAMP) lint typecheck unit

test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info
