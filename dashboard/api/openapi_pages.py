"""The OpenAPI description of the machine-read paths outside /api: the map's site points, a route's GPX and
the live alert streams. They sit beside the pages, so their errors are HTML pages, not the API's JSON, and a
signed-out visitor is sent to /login where a page would be (the GPX answers a 401: a file is not a page)."""

from __future__ import annotations

from typing import Any

from dashboard.api.openapi_security import READ, SIGNED_IN
from dashboard.read.mapdata import COORD_SCALE, SITE_STATES

_PAGE = {"$ref": "#/components/responses/ErrorPage"}
_TO_LOGIN = {"$ref": "#/components/responses/SignInFirst"}
RESPONSES: dict[str, Any] = {
    "ErrorPage": {
        "description": "An error, as a small HTML page (this path is not under /api)",
        "content": {"text/html": {"schema": {"type": "string"}}},
    },
    "SignInFirst": {
        "description": "Not signed in (or the map is not public): a redirect to /login?next=<this path>",
        "headers": {"Location": {"schema": {"type": "string"}, "description": "the login page"}},
    },
}
_ROW_ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
_COUNTER = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}


def _event(name: str, data: dict[str, Any], with_id: bool) -> dict[str, Any]:
    """One Server-Sent Event as OpenAPI 3.2 reads a stream's item: its name, and JSON in its data lines."""
    properties: dict[str, Any] = {
        "event": {"const": name},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
    }
    return {
        "type": "object",
        "properties": properties,
        "required": ["event", "data", *(["id"] if with_id else [])],
    }


_ALERT = _event(
    "alert",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "text": {"type": "string", "description": "user text: escape before showing as HTML"},
        },
        "required": ["id", "at", "text"],
    },
    with_id=True,
)
_TASK = _event(
    "task",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string", "description": "user text: escape before showing as HTML"},
            "urgency": {"type": "integer"},
            "status": {"type": "string"},
            "site": {"type": "string"},
            "community": {"type": "string"},
        },
        "required": ["id", "title", "urgency", "status", "site", "community"],
    },
    with_id=False,  # a task event carries no id of its own (EventSource keeps the last alert's)
)
_STREAM_TEXT = (
    " The stream starts with `retry: 1000`, sends a `: keep-alive` comment at least every 15 s and ends"
    " after five minutes (the dashboard's sse_max_s), when the browser reconnects with Last-Event-ID, the"
    " id of the last alert, so no alert comes twice. Each event's data is one JSON object."
)


def _stream(
    operation_id: str, summary: str, events: list[dict[str, Any]], extra: list[dict[str, Any]]
) -> dict[str, Any]:
    after = {
        "name": "after",
        "in": "query",
        "required": False,
        "schema": _COUNTER,
        "description": "send only alerts with a greater id (as Last-Event-ID does)",
    }
    last_id = {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "set by EventSource on a reconnect; the greater of it and ?after= counts",
    }
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "description": summary + _STREAM_TEXT,
            "security": SIGNED_IN,
            "parameters": [after, *extra, last_id],
            "responses": {
                "200": {
                    "description": "Server-Sent Events: "
                    + ", ".join(e["properties"]["event"]["const"] for e in events),
                    "content": {"text/event-stream": {"schema": {"oneOf": events}}},
                },
                "302": _TO_LOGIN,
                "400": _PAGE,
                "403": _PAGE,
                "404": _PAGE,
                "503": _PAGE,
            },
        }
    }


def paths() -> dict[str, Any]:
    """The path items (their pieces are shared: openapi.document() hands out a deep copy)."""
    return {
        "/map/sites.json": {
            "get": {
                "operationId": "getMapSites",
                "summary": "Every site for the map's clustered layer, packed",
                "description": (
                    "points is flat: lat, lon, state, id for each site in turn, lat and lon as integers of "
                    "1/scale degrees, state an index into states (the worst state of the site's sensors)."
                ),
                "security": READ,
                "parameters": [],
                "responses": {
                    "200": {
                        "description": "The sites (gzip when asked for)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "scale": {"const": COORD_SCALE},
                                        "states": {"const": list(SITE_STATES)},
                                        "points": {"type": "array", "items": {"type": "integer"}},
                                    },
                                    "required": ["scale", "states", "points"],
                                    "additionalProperties": False,
                                }
                            }
                        },
                    },
                    "302": _TO_LOGIN,
                    "400": _PAGE,
                    "503": _PAGE,
                },
            }
        },
        "/routes/{route_id}.gpx": {
            "get": {
                "operationId": "downloadRouteGpx",
                "summary": "A driver's route as GPX 1.1 (signed-in driver of the route, or a coordinator)",
                "security": SIGNED_IN,
                "parameters": [
                    {
                        "name": "route_id",
                        "in": "path",
                        "required": True,
                        "schema": _ROW_ID,
                        "description": "route id",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "GPX",
                        "content": {"application/gpx+xml": {"schema": {"type": "string"}}},
                    },
                    "401": _PAGE,
                    "403": _PAGE,
                    "404": _PAGE,
                    "503": _PAGE,
                },
            }
        },
        "/board/events": _stream(
            "streamBoardAlerts",
            "My alerts as they come (any account linked to a member): a suggestion for me, an urgent place "
            "near me, a task I am in changed or cancelled.",
            [_ALERT],
            [],
        ),
        "/crew/events": _stream(
            "streamCrewAlerts",
            "A crew member's alerts and repair tasks newly given to them (crew; a coordinator with "
            "?member=).",
            [_ALERT, _TASK],
            [
                {
                    "name": "tasks_after",
                    "in": "query",
                    "required": False,
                    "schema": _COUNTER,
                    "description": "send only tasks with a greater id",
                },
                {
                    "name": "member",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999},
                    "description": "coordinators: whose stream (a member id)",
                },
            ],
        ),
    }
