"""Interop findings about the API and its document, pinned (issue 17, Interop 1): the OpenAPI document says
which values `kind` and `state` take and how far `offset` goes, as the API enforces them; a 405 names the
methods allowed; the GPX download answers a 401 signed out, as documented, not a redirect to a login page."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from dashboard.read.links import SHOWN_STATES
from dashboard.web.app import MAX_ROW_ID, up_to
from gateway.store.models.vocab import DEVICE_KINDS
from tests import test_dashboard_pages as pages
from tests.test_dashboard_pages import Auth

ids, password_hash, app, client, auth = pages.ids, pages.password_hash, pages.app, pages.client, pages.auth


def test_the_document_gives_the_values_the_api_accepts(client: FlaskClient) -> None:
    document = client.get("/api/openapi.json").get_json()
    params = {p["name"]: p["schema"] for p in document["paths"]["/api/devices"]["get"]["parameters"]}
    assert params["kind"] == {"enum": list(DEVICE_KINDS)} and params["state"] == {"enum": list(SHOWN_STATES)}
    assert params["offset"]["maximum"] == 10**9
    assert client.get("/api/devices?state=melted").status_code == 400
    assert client.get(f"/api/devices?offset={10**9 + 1}").status_code == 400


def test_a_405_says_which_methods_are_allowed(client: FlaskClient) -> None:
    for path in ("/api/health", "/board"):
        response = client.delete(path)
        assert response.status_code == 405
        assert "GET" in response.headers["Allow"], (path, dict(response.headers))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/api/board/99999999999"),
        ("PATCH", "/api/board/2147483648"),
        ("PATCH", "/api/board/0"),
        ("POST", "/api/board/99999999999/cancel"),
        ("GET", "/api/board/99999999999"),
    ],
)
def test_a_row_id_out_of_range_is_a_404_whatever_the_method(
    client: FlaskClient, method: str, path: str
) -> None:
    """The fuzzer's find (Interop 1): PATCH /api/board/119265535325 answered 405 "Allow: GET" where GET
    answered 404, werkzeug checking the GET rule's method before the PATCH rule's converter range."""
    response = client.open(path, method=method)
    assert response.status_code == 404, (response.status_code, dict(response.headers))
    assert response.get_json()["status"] == 404


@given(
    st.integers(min_value=0, max_value=10**12) | st.sampled_from([MAX_ROW_ID, MAX_ROW_ID + 1, 10**9, 10**10])
)
def test_the_row_id_pattern_holds_exactly_the_ids_a_32_bit_column_does(number: int) -> None:
    pattern = re.compile(up_to(MAX_ROW_ID))
    assert bool(pattern.fullmatch(str(number))) == (1 <= number <= MAX_ROW_ID)
    assert bool(pattern.fullmatch(f"00{number}")) == (1 <= number <= MAX_ROW_ID)  # leading zeros, as before


@pytest.mark.parametrize("limit", [1, 7, 9, 10, 11, 99, 100, 101, 2024])
def test_the_range_pattern_for_small_limits(limit: int) -> None:
    pattern = re.compile(up_to(limit))
    assert [n for n in range(limit * 3 + 20) if pattern.fullmatch(str(n))] == list(range(1, limit + 1))
    assert pattern.fullmatch("\u0661") is None  # an Arabic-Indic one: int() reads it, a URL id is ASCII


def test_the_gpx_answers_401_signed_out_and_403_to_the_wrong_role(auth: Auth, ids: dict[str, int]) -> None:
    path = f"/routes/{ids['route']}.gpx"
    signed_out = auth.client.get(path)
    assert signed_out.status_code == 401 and "sign in" in signed_out.get_data(as_text=True)
    auth.login("viewer")
    assert auth.client.get(path).status_code == 403


@pytest.mark.parametrize(
    "target",
    [
        "/%09/evil.example",
        "/%0A/evil.example",
        "/%5Cevil.example",
        "//evil.example",
        "/%2F/evil.example",
        "https://evil.example",
        "/%0D%0A/evil.example",
        "/%7F/evil",
    ],
)
def test_login_never_redirects_off_the_site(auth: Auth, target: str) -> None:
    """Security 4: /login?next=/%09/evil.example answered Location: //evil.example."""
    token = auth.token(f"/login?next={target}")
    data = {"username": "coord", "password": pages.PASSWORD, "csrf_token": token}
    response = auth.client.post(f"/login?next={target}", data=data)
    assert response.status_code == 302 and response.location == "/", response.location


def test_login_still_returns_to_a_page_of_the_site(auth: Auth) -> None:
    data = {"username": "coord", "password": pages.PASSWORD, "csrf_token": auth.token()}
    response = auth.client.post("/login?next=/board%3Fsector%3Dfood", data=data)
    assert response.location == "/board?sector=food"


def test_login_returns_to_a_page_whose_address_holds_a_space(auth: Auth) -> None:
    """A space (or its %20) is part of an ordinary search, not a way off the site."""
    for target, expected in (("/board%3Fq%3Dwater%2520pump", "/board?q=water%20pump"),):
        token = auth.token(f"/login?next={target}")
        data = {"username": "coord", "password": pages.PASSWORD, "csrf_token": token}
        response = auth.client.post(f"/login?next={target}", data=data)
        assert response.status_code == 302 and response.location == expected, response.location
    auth.client.post("/logout", data={"csrf_token": auth.token()})
    token = auth.token("/login?next=/board%3Fq%3Dwater%20pump")
    data = {"username": "coord", "password": pages.PASSWORD, "csrf_token": token}
    response = auth.client.post("/login?next=/board%3Fq%3Dwater%20pump", data=data)
    assert response.status_code == 302 and response.location.startswith("/board?q=water"), response.location
    assert response.location != "/"
