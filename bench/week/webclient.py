"""The dashboard as simulated crews and drivers use it: a signed-in session posting the forms people post."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Final

TIMEOUT_S: Final = 30.0
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class DashboardError(RuntimeError):
    """The dashboard refused an action; `status` is its HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class DashboardClient:
    """A coordinator's session: it may act for any member (?member=<id>), as the dashboard allows."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.token = ""

    def _request(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data)
        if form is not None and self.token:
            request.add_header("X-CSRF-Token", self.token)
        try:
            with self.opener.open(request, timeout=TIMEOUT_S) as response:
                return response.status, response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", errors="replace")

    def login(self, username: str, password: str) -> None:
        """Sign in and keep the session's CSRF token for the posts that follow."""
        status, page = self._request("/login")
        match = _TOKEN.search(page)
        if status != 200 or match is None:
            raise DashboardError(f"login page: HTTP {status}", status)
        self.token = match.group(1)
        status, page = self._request(
            "/login", {"username": username, "password": password, "csrf_token": self.token}
        )
        if status != 200 or "/logout" not in page:
            raise DashboardError(f"login as {username} failed: HTTP {status}", status)
        match = _TOKEN.search(page)  # a fresh session, a fresh token
        if match is None:
            raise DashboardError("no CSRF token after login", status)
        self.token = match.group(1)

    def _post(self, path: str, reason: str, **fields: str) -> None:
        status, page = self._request(path, {"reason": reason, "csrf_token": self.token, **fields})
        if status >= 400:
            text = re.sub(r"<[^>]+>", " ", page)
            raise DashboardError(f"POST {path}: HTTP {status}: {' '.join(text.split())[:200]}", status)

    def task_action(self, member_id: int, task_id: int, action: str, reason: str = "") -> None:
        """Accept, decline, start or mark fixed, as the member (the crew page's buttons)."""
        self._post(f"/crew/tasks/{task_id}/{action}?member={member_id}", reason)

    def stop_outcome(
        self, route_id: int, stop_id: int, outcome: str, reason: str = "", quantity: float | None = None
    ) -> None:
        """Record a stop done (picked up / delivered, a pickup with what was loaded) or failed."""
        fields = {} if quantity is None else {"quantity": f"{quantity:g}"}
        self._post(f"/routes/{route_id}/stops/{stop_id}/{outcome}", reason, **fields)

    def decline_route(self, route_id: int, reason: str) -> None:
        """Decline a route not started (the route page's button): its shipments go back to the planner."""
        self._post(f"/routes/{route_id}/decline", reason)

    def accept_route(self, route_id: int) -> None:
        """Accept a proposed route (the driver's hours are reserved for it); 409 once it is no longer
        proposed (revised, withdrawn, declined)."""
        self._post(f"/routes/{route_id}/accept", "")

    def release_route(self, route_id: int, reason: str) -> None:
        """Give an accepted route back before driving it: its shipments go back to the planner."""
        self._post(f"/routes/{route_id}/release", reason)
