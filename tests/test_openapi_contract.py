"""The OpenAPI document against itself and against the API (issue 17, Interop 1): it is valid OpenAPI 3.1,
names each operation once and who may call it, describes the paths outside /api that tools read (the map's
site points, the GPX, the live streams), and a property-based fuzzer (schemathesis) finds the API answering
every operation as documented: no 500, only documented status codes and content types, bodies that fit."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from dashboard.api.openapi import document
from dashboard.web.accounts import Account, MemoryAccountStore
from dashboard.web.app import create_app
from dashboard.web.config import DashboardConfig
from dashboard.web.store import get_store
from gateway.contract.topics import member_alerts_topic
from gateway.process.settings import Settings
from gateway.store.models import OutboxMessage
from tests import test_dashboard_pages as pages
from tests.test_api_board import _draft
from tests.test_dashboard_pages import Auth

ids, password_hash = pages.ids, pages.password_hash
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Per operation and mode: 12 keeps the run near 10 s and the same every run (derandomized); a deeper, random
# run: RHIZOME_FUZZ_EXAMPLES=200 .venv/bin/python -m pytest -s tests/test_openapi_contract.py -k fuzzer
EXAMPLES = int(os.environ.get("RHIZOME_FUZZ_EXAMPLES", "12"))
DERANDOMIZE = "RHIZOME_FUZZ_EXAMPLES" not in os.environ


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(document())  # raises, naming the place, if it is not


def test_each_operation_has_its_own_id_and_says_who_may_call_it() -> None:
    doc = document()
    assert doc["servers"] == [{"url": "/", "description": doc["servers"][0]["description"]}]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["session"] | {"description": ""} == {
        "type": "apiKey",
        "in": "cookie",
        "name": "rhizome_session",
        "description": "",
    }
    assert (schemes["csrf"]["in"], schemes["csrf"]["name"]) == ("header", "X-CSRF-Token")
    ids_seen = Counter(op["operationId"] for _, _, op in _operations(doc))
    assert ids_seen and max(ids_seen.values()) == 1, ids_seen.most_common(3)
    for path, method, operation in _operations(doc):
        requirements = operation["security"]
        if method != "get":  # every write needs the session and its CSRF token
            assert requirements == [{"session": [], "csrf": []}], (path, method)
        else:
            assert {} not in requirements or path not in ("/api/board/mine", "/routes/{route_id}.gpx")
            assert all(set(r) <= {"session"} for r in requirements), (path, requirements)


def test_a_caller_changing_its_document_changes_no_other() -> None:
    mine = document()
    mine["paths"]["/board/events"]["get"]["responses"]["200"]["content"].clear()
    mine["paths"]["/api/devices"]["get"]["parameters"][0]["schema"]["pattern"] = "x"
    assert document()["paths"]["/crew/events"]["get"]["responses"]["200"]["content"]
    assert document()["paths"]["/api/stock"]["get"]["parameters"][0]["schema"]["pattern"] != "x"


def test_the_document_names_the_session_cookie_the_app_sets(app: Flask) -> None:
    assert app.config["SESSION_COOKIE_NAME"] == document()["components"]["securitySchemes"]["session"]["name"]


def test_the_paths_outside_api_are_real_routes_and_the_streams_name_their_events(app: Flask) -> None:
    doc = document()
    rules = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule): r for r in app.url_map.iter_rules()}
    outside = [p for p in doc["paths"] if not p.startswith("/api/")]
    assert sorted(outside) == ["/board/events", "/crew/events", "/map/sites.json", "/routes/{route_id}.gpx"]
    for path in outside:
        assert path in rules and "GET" in (rules[path].methods or ()), path
    streams = {
        path: doc["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"]["oneOf"]
        for path in ("/board/events", "/crew/events")
    }
    names = {path: [e["properties"]["event"]["const"] for e in events] for path, events in streams.items()}
    assert names == {"/board/events": ["alert"], "/crew/events": ["alert", "task"]}


@pytest.fixture
def app(engine: Engine, database_url: str, ids: dict[str, int], password_hash: str) -> Iterator[Flask]:
    """The seeded tiny region; `coord` is a coordinator linked to Ana, so the member-only operations (take a
    place, my board, the streams) answer too instead of a 403."""
    accounts = MemoryAccountStore([Account("coord", password_hash, "coordinator", ids["member"])])
    app = create_app(
        Settings(database_url=database_url),
        DashboardConfig(sse_poll_s=0.01, sse_max_s=0.02),
        accounts,
        test_config={"TESTING": True},
    )
    yield app
    get_store(app).engine.dispose()


@pytest.fixture
def signed_in(app: Flask, ids: dict[str, int]) -> tuple[dict[str, str], dict[str, str], dict[str, list[Any]]]:
    """The coordinator's session cookie and CSRF header, signed in through the real form, the ids of rows
    made through the API (a board task with a place taken, a goal) for the path parameters to hit, and an
    alert to Ana for the streams."""
    client: FlaskClient = app.test_client()
    auth = Auth(client)
    assert auth.login("coord").status_code == 302
    token = client.get("/api/board/mine").get_json()["csrf_token"]  # where the document says it is
    write = {"X-CSRF-Token": token}
    task = client.post("/api/board", json=_draft(), headers=write).get_json()
    shift, slot = task["shifts"][0]["id"], next(s["id"] for s in task["slots"] if s["skill"] is None)
    signup = client.post(f"/api/board/shifts/{shift}/slots/{slot}/take", headers=write).get_json()
    goal = client.post("/api/goals", json={"sector": "food", "kind": "hours", "target": 10}, headers=write)
    known = {
        "task_id": [task["id"]],
        "shift_id": [s["id"] for s in task["shifts"]],
        "slot_id": [s["id"] for s in task["slots"]],
        "signup_id": [signup["signup_id"]],
        "goal_id": [goal.get_json()["id"]],
        "route_id": [ids["route"]],
        "site_id": [ids["pump"], ids["utuado_hub"]],
        "slug": ["utuado", "jayuya"],
    }
    with get_store(app).sessions.begin() as session:  # an alert, so the streams have an event to send
        session.add(
            OutboxMessage(topic=member_alerts_topic(ids["member"]), payload=b'{"text": "Pump <1> dry"}')
        )
    cookie = client.get_cookie("rhizome_session")
    assert cookie is not None
    # identity: schemathesis's WSGI transport reads the body as sent, and a gzip body is not JSON to it
    return {"rhizome_session": cookie.value}, {**write, "Accept-Encoding": "identity"}, known


@pytest.mark.slow  # about 10 s: some 480 requests through the whole app
def test_the_fuzzer_finds_every_operation_answering_as_documented(
    app: Flask, signed_in: tuple[dict[str, str], dict[str, str], dict[str, list[Any]]]
) -> None:
    """Every operation, positive and negative data (where it has inputs), EXAMPLES each, half of them on rows
    that exist; the figures are printed (pytest -s)."""
    cookies, headers, known = signed_in
    served = app.test_client().get("/api/openapi.json").get_json()
    schema = schemathesis.openapi.from_dict(served)  # not from_wsgi, which leaves the document's own path out
    schema.app = app  # called in-process, through WSGI
    failures: list[str] = []
    examples: Counter[str] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(1 for _ in _operations(document()))
    statuses: dict[str, Counter[int]] = {}
    for operation in operations:
        raw = operation.definition.raw
        has_input = bool(raw.get("parameters") or raw.get("requestBody"))
        # negative data needs something to make invalid: a path with no parameters and no body has none
        modes = (
            (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_input else (GenerationMode.POSITIVE,)
        )
        in_path = [p["name"] for p in raw.get("parameters", []) if p["in"] == "path" and p["name"] in known]
        seen = statuses.setdefault(operation.label, Counter())
        for mode in modes:

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=DERANDOMIZE,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(data=st.data())
            def run(data: st.DataObject) -> None:
                fixed = {}
                if in_path and data.draw(st.booleans()):  # noqa: B023
                    fixed = {n: data.draw(st.sampled_from(known[n])) for n in in_path}  # noqa: B023
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)  # noqa: B023
                case = data.draw(strategy)
                examples[mode.value] += 1  # noqa: B023
                response = case.call(headers=headers, cookies=cookies)
                seen[response.status_code] += 1  # noqa: B023
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    print(f"fuzzed {len(operations)} operations, {dict(examples)} examples, {len(failures)} failures")
    for label, counted in sorted(statuses.items()):
        print(f"  {label}: {dict(sorted(counted.items()))}")
    assert not failures, "\n\n".join(failures)
