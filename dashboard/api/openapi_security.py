"""Who may call what, for the OpenAPI document: the sign-in cookie, the CSRF header, and the requirements
the operations name (reads follow the map, writes need both)."""

from __future__ import annotations

from typing import Any

# Who may call (components.securitySchemes): reads follow the map, public when RHIZOME_PUBLIC_MAP is on (the
# empty requirement) and otherwise for a signed-in session; writes need the session and its CSRF token.
READ: list[dict[str, list[str]]] = [{}, {"session": []}]
SIGNED_IN: list[dict[str, list[str]]] = [{"session": []}]
WRITE: list[dict[str, list[str]]] = [{"session": [], "csrf": []}]

SECURITY_SCHEMES: dict[str, Any] = {
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "rhizome_session",
        "description": (
            "The signed session cookie. Sign in with POST /login, an HTML form (application/x-www-form-"
            "urlencoded: username, password, and csrf_token, the hidden field of the form GET /login shows, "
            "read with the cookie that page sets); a 302 answers a right password and sets a fresh cookie, a "
            "401 a wrong one, a 429 with Retry-After too many failures. POST /logout (with csrf_token) ends "
            "it. HttpOnly, SameSite=Lax, and Secure when RHIZOME_COOKIE_SECURE is set."
        ),
    },
    "csrf": {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRF-Token",
        "description": (
            "The session's CSRF token, required with the session on every POST, PATCH and DELETE (a 400 "
            "without it, before anything else is checked). GET /api/board/mine returns it as csrf_token for "
            "an account linked to a member; every page's forms carry it in their csrf_token field. It "
            "changes at each sign-in."
        ),
    },
}
