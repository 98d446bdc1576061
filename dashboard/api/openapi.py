"""The OpenAPI 3.1 description of /api, served at /api/openapi.json; a test checks it lists every route."""

from __future__ import annotations

import copy
from typing import Any

from dashboard.api import openapi_driver as driver
from dashboard.api import openapi_pages as pages
from dashboard.api.openapi_security import READ, SECURITY_SCHEMES, SIGNED_IN, WRITE
from dashboard.read.federation import SHIPMENT_STATUSES
from dashboard.read.links import SHOWN_STATES
from gateway.store.models.vocab import DEVICE_KINDS

VERSION = "1.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _param(
    name: str, where: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": description}


_SLUG = {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$"}
_ERRORS = {
    "400": {"$ref": "#/components/responses/Error"},
    "401": {"$ref": "#/components/responses/Error"},
    "404": {"$ref": "#/components/responses/Error"},
    "503": {"$ref": "#/components/responses/Error"},
}
_PAGING = [
    _param(
        "limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000}, "page size"
    ),
    _param(
        "offset", "query", {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0}, "rows to skip"
    ),
]
_WRITE_ERRORS = {
    "403": {"$ref": "#/components/responses/Error"},
    "409": {"$ref": "#/components/responses/Error"},
}
_BOARD_FILTERS = [
    _param(
        "sector",
        "query",
        {"enum": ["food", "education", "health", "maintenance", "governance", "other"]},
        "sector",
    ),
    _param("skill", "query", {"type": "string"}, "places needing this skill; none: places needing no skill"),
    _param("community", "query", {"type": "string"}, "community slug"),
    _param(
        "km",
        "query",
        {"type": "number", "exclusiveMinimum": 0, "maximum": 500},
        "within this distance of my home",
    ),
    _param("from", "query", {"type": "string", "format": "date"}, "first day"),
    _param("to", "query", {"type": "string", "format": "date"}, "last day"),
]
_COMMUNITY_FILTER = _param("community", "query", _SLUG, "only this community (slug)")
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def _get(
    operation_id: str,
    summary: str,
    ok: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
    security: list[dict[str, list[str]]] = READ,
) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": security,
            "parameters": parameters or [],
            "responses": {"200": ok, **_ERRORS},
        }
    }


def _write(
    operation_id: str,
    method: str,
    summary: str,
    ok: dict[str, Any],
    parameters: list[dict[str, Any]],
    body: dict[str, Any] | None,
) -> dict[str, Any]:
    """A board write: a signed-in session and its CSRF token in X-CSRF-Token (GET /api/board/mine)."""
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "security": WRITE,
        "parameters": parameters,
        "responses": {"200": ok, "201": ok, **_ERRORS, **_WRITE_ERRORS},
    }
    if body is not None:
        operation["requestBody"] = {
            "required": method != "cancel",
            "content": {"application/json": {"schema": body}},
        }
    return {"patch" if method == "patch" else "post": operation}


def _id(name: str) -> dict[str, Any]:
    return _param(name, "path", {"type": "integer", "minimum": 1}, f"{name.replace('_', ' ')}", required=True)


def _list(key: str, item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: {"type": "array", "items": _ref(item)}, "count": {"type": "integer"}},
        "required": [key, "count"],
    }


def document() -> dict[str, Any]:
    """The whole description, a deep copy: callers may change theirs (the module's pieces are shared)."""
    return copy.deepcopy(_document())


def _document() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {
                "error": {"type": "string"},
                "message": {"type": "string"},
                "status": {"type": "integer"},
            },
            "required": ["error", "message", "status"],
        },
        "GoodLevel": {
            "type": "object",
            "properties": {
                "good": {"type": "string"},
                "name": {"type": "string"},
                "unit": {"type": "string"},
                "essential": {"type": "boolean"},
                "quantity": {"type": "number"},
                "minimum": _NUMBER_OR_NULL,
                "target": _NUMBER_OR_NULL,
                "level": {"enum": ["critical", "short", "ok"]},
            },
        },
        "Community": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "slug": {"type": "string"},
                "name": {"type": "string", "description": "user text: escape before showing as HTML"},
                "lat": {"type": "number"},
                "lon": {"type": "number"},
                "population": {"type": "integer"},
                "level": {"enum": ["critical", "short", "ok"]},
                "worst_shortage": {"oneOf": [_ref("GoodLevel"), {"type": "null"}]},
            },
        },
        "Device": {
            "type": "object",
            "properties": {
                "slug": {"type": "string"},
                "kind": {"type": "string"},
                "site": {"type": "string"},
                "community": {"type": "string"},
                "state": {"enum": ["unknown", "online", "offline", "stale", "fault", "link down"]},
                "last_seen_at": _TIME,
            },
        },
        "Stock": {
            "type": "object",
            "properties": {
                "community": {"type": "string"},
                "site": {"type": "string"},
                "good": {"type": "string"},
                "quantity": {"type": "number"},
                "unit": {"type": "string"},
                "updated_at": _TIME,
            },
        },
        "Site": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "slug": {"type": "string"},
                "name": {"type": "string"},
                "kind": {"type": "string"},
                "lat": {"type": "number"},
                "lon": {"type": "number"},
                "community": {"type": "string"},
                "community_name": {"type": "string"},
                "community_url": {"type": "string"},
                "devices": {"type": "array", "items": _ref("Device")},
            },
        },
        "Shortage": {
            "type": "object",
            "properties": {
                "community": {"type": "string"},
                "community_name": {"type": "string"},
                "good": {"type": "string"},
                "good_name": {"type": "string"},
                "sector": {"type": "string"},
                "essential": {"type": "boolean"},
                "level": {"enum": ["critical", "short"]},
                "quantity": {"type": "number"},
                "minimum": {"type": "number"},
                "target": {"type": "number"},
                "gap": {"type": "number"},
                "unit": {"type": "string"},
                "lat": {"type": "number"},
                "lon": {"type": "number"},
            },
        },
        "Sector": {
            "type": "object",
            "properties": {
                "sector": {"type": "string"},
                "goals": {"type": "integer"},
                "met": {"type": "integer"},
                "percent": {"type": ["integer", "null"]},
                "deliveries": {"type": "integer"},
                "text": {"type": "string", "examples": ["Food: 86% of this month's goals met"]},
            },
        },
        "Task": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "title": {"type": "string"},
                "status": {"type": "string"},
                "urgency": {"type": "integer"},
                "site": {"type": "string"},
                "community": {"type": "string"},
                "lat": {"type": "number"},
                "lon": {"type": "number"},
                "assigned": {"type": "boolean", "description": "someone of the crew has it (never who)"},
                "created_at": _TIME,
            },
        },
        "FedNode": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "me": {"type": "boolean", "description": "this node"},
                "direct": {"type": "boolean", "description": "a link of this node"},
                "link_up": {"type": ["boolean", "null"], "description": "direct peers only"},
                "down": {
                    "type": "boolean",
                    "description": "its direct link is down, or it was unheard for more than lease_s",
                },
                "down_for_s": _NUMBER_OR_NULL,
                "last_heard_at": _TIME,
                "state": {"type": "string", "examples": ["link up", "link down for 12 min"]},
                "communities": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["name", "me", "direct", "down", "state", "communities"],
        },
        "FedShipment": {
            "type": "object",
            "properties": {
                "ref": {"type": "string", "examples": ["valle/12#3"]},
                "plan": {"type": "string"},
                "good": {"type": "string"},
                "quantity": {"type": "number"},
                "unit": {"type": "string"},
                "from_node": {"type": "string"},
                "to_node": {"type": "string"},
                "from_community": {"type": "string"},
                "to_community": {"type": "string"},
                "km": _NUMBER_OR_NULL,
                "status": {"enum": list(SHIPMENT_STATUSES)},
            },
            "required": ["ref", "good", "quantity", "from_community", "to_community", "status"],
        },
        "FeatureCollection": {
            "type": "object",
            "description": "GeoJSON (RFC 7946), coordinates in [lon, lat] order",
            "properties": {"type": {"const": "FeatureCollection"}, "features": {"type": "array"}},
        },
    }
    geojson = {
        "description": "GeoJSON",
        "content": {"application/geo+json": {"schema": _ref("FeatureCollection")}},
    }
    schemas |= _board_schemas()
    paths: dict[str, Any] = {
        "/api/health": _get(
            "getHealth",
            "Liveness and row counts",
            _json(
                {"type": "object", "properties": {"status": {"const": "ok"}, "counts": {"type": "object"}}}
            ),
        ),
        "/api/communities": _get(
            "listCommunities",
            "Every community with its worst shortage",
            _json(_list("communities", "Community")),
        ),
        "/api/communities/{slug}": _get(
            "getCommunity",
            "One community: stock against need levels, and its devices",
            _json(
                {
                    "allOf": [
                        _ref("Community"),
                        {
                            "type": "object",
                            "properties": {
                                "goods": {"type": "array", "items": _ref("GoodLevel")},
                                "devices": {"type": "array", "items": _ref("Device")},
                            },
                        },
                    ]
                }
            ),
            [_param("slug", "path", _SLUG, "community slug", required=True)],
        ),
        "/api/stock": _get(
            "listStock",
            "Stock per site and good",
            _json(_list("stock", "Stock")),
            [_COMMUNITY_FILTER, _param("good", "query", _SLUG, "only this good (slug)"), *_PAGING],
        ),
        "/api/devices": _get(
            "listDevices",
            "Devices with their state",
            _json(_list("devices", "Device")),
            [
                _COMMUNITY_FILTER,
                _param("kind", "query", {"enum": list(DEVICE_KINDS)}, "device kind"),
                _param("state", "query", {"enum": list(SHOWN_STATES)}, "device state"),
                *_PAGING,
            ],
        ),
        "/api/sites/{site_id}": _get(
            "getSite",
            "One site and its sensors (a map popup)",
            _json(_ref("Site")),
            [_param("site_id", "path", {"type": "integer"}, "site id", required=True)],
        ),
        "/api/shortages": _get(
            "listShortages", "Goods below a community's minimum", _json(_list("shortages", "Shortage"))
        ),
        "/api/shortages.csv": _get(
            "downloadShortagesCsv",
            "The shortages as CSV, UTF-8 with a byte-order mark for spreadsheets (text cells starting with"
            " = + - @ are prefixed with ')",
            {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
            [_param("bom", "query", {"enum": ["0", "1"], "default": "1"}, "0: no byte-order mark")],
        ),
        "/api/shortages.geojson": _get(
            "downloadShortagesGeojson", "The shortages as GeoJSON points", geojson
        ),
        "/api/sectors": _get(
            "listSectors",
            "Collective progress per sector this month",
            _json({"type": "object", "properties": {"sectors": {"type": "array", "items": _ref("Sector")}}}),
        ),
        "/api/tasks": _get(
            "listRepairTasks",
            "Open repair tasks, most urgent first",
            _json(_list("tasks", "Task")),
            [_COMMUNITY_FILTER],
        ),
        "/api/flows.geojson": _get(
            "getFlowsGeojson", "Planned and moving deliveries as GeoJSON lines", geojson
        ),
        "/api/federation": _get(
            "getFederation",
            "On a community node: the federation's nodes and their links, the planning role's holder, and "
            "the shipments between communities that involve this node (who answered is never given); a "
            "404 where the dashboard is not a node",
            _json(
                {
                    "type": "object",
                    "properties": {
                        "node": {"type": "string"},
                        "communities": {"type": "array", "items": {"type": "string"}},
                        "lease_s": {"type": "number"},
                        "holder": {"type": ["string", "null"]},
                        "nodes": {"type": "array", "items": _ref("FedNode")},
                        "shipments": {"type": "array", "items": _ref("FedShipment")},
                        "waiting_for_us": {"type": "integer"},
                    },
                    "required": ["node", "communities", "lease_s", "holder", "nodes", "shipments"],
                }
            ),
            security=SIGNED_IN,
        ),
        "/api/openapi.json": _get("getOpenapiDocument", "This description", _json({"type": "object"})),
        "/api/board": {
            **_get(
                "listBoardTasks",
                "Open tasks of every sector, places counted, never named",
                _json(_list("tasks", "BoardTask")),
                _BOARD_FILTERS,
            ),
            **_write(
                "postBoardTask",
                "post",
                "Post a task (poster's session)",
                _json(_ref("BoardTask")),
                [],
                _ref("TaskDraft"),
            ),
        },
        "/api/board/{task_id}": {
            **_get(
                "getBoardTask",
                "One task with its shifts of the coming five weeks",
                _json(_ref("BoardTask")),
                [_id("task_id")],
            ),
            **_write(
                "changeBoardTask",
                "patch",
                "Change a task (its poster or a coordinator); those signed up are told",
                _json(_ref("BoardTask")),
                [_id("task_id")],
                {"type": "object"},
            ),
        },
        "/api/board/{task_id}/cancel": _write(
            "cancelBoardTask",
            "cancel",
            "Cancel a task; those signed up are told the reason",
            _json({"type": "object"}),
            [_id("task_id")],
            {"type": "object", "properties": {"reason": {"type": "string", "maxLength": 500}}},
        ),
        "/api/board/shifts/{shift_id}/slots/{slot_id}/take": _write(
            "takePlace",
            "post",
            "Take one place in one shift (a member's session)",
            _json(_ref("Signup")),
            [_id("shift_id"), _id("slot_id")],
            None,
        ),
        "/api/board/slots/{slot_id}/take-series": _write(
            "takeSeries",
            "post",
            "Take the same place in every coming occurrence that fits",
            _json({"type": "object"}),
            [_id("slot_id")],
            None,
        ),
        "/api/board/signups/{signup_id}/{action}": _write(
            "answerSignup",
            "post",
            "accept or decline a suggestion (no reason needed), or release a place taken",
            _json(_ref("Signup")),
            [
                _id("signup_id"),
                _param("action", "path", {"enum": ["accept", "decline", "release"]}, "what to do", True),
            ],
            {"type": "object", "properties": {"reason": {"type": "string", "maxLength": 500}}},
        ),
        "/api/goals": {
            **_get(
                "getGoals",
                "This month's progress per sector and each hours or places goal (sums, never people)",
                _json({"type": "object"}),
            ),
            **_write(
                "setGoal",
                "post",
                "Set or change a goal (coordinators)",
                _json({"type": "object"}),
                [],
                {
                    "type": "object",
                    "required": ["sector", "kind", "target"],
                    "properties": {
                        "sector": {
                            "enum": ["food", "education", "health", "maintenance", "governance", "other"]
                        },
                        "kind": {"enum": ["hours", "slots"]},
                        "target": {"type": "number", "exclusiveMinimum": 0},
                        "community": {"type": "string", "description": "a community's slug, or region"},
                        "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                    },
                },
            ),
        },
        "/api/goals/{goal_id}": {
            "delete": {
                "operationId": "removeGoal",
                "summary": "Remove a goal (coordinators)",
                "security": WRITE,
                "parameters": [_id("goal_id")],
                "responses": {"200": _json({"type": "object"}), **_ERRORS, **_WRITE_ERRORS},
            }
        },
        "/api/board/mine": _get(
            "getMyBoard",
            "My suggestions and places, what is open near me for my skills, and the CSRF token for writes",
            _json({"type": "object"}),
            security=SIGNED_IN,
        ),
        **driver.paths(),
        **pages.paths(),
    }
    return {
        "openapi": "3.1.0",
        "servers": [
            {"url": "/", "description": "this dashboard (the document is served by the API it describes)"}
        ],
        "info": {
            "title": "Rhizome dashboard API",
            "version": VERSION,
            "description": (
                "JSON, GeoJSON and GPX for what the dashboard pages show, the task board's writes, a "
                "driver's actions (idempotent by their action id), the map's "
                "site points and the live alert streams. Reads are public when the map is "
                "(RHIZOME_PUBLIC_MAP, the default), otherwise they need a signed-in session; writes need a "
                "session and its CSRF token in X-CSRF-Token (securitySchemes say how to get both). Unknown "
                "query parameters are a 400; names are user text and must be escaped by whoever renders "
                "them. Errors under /api are JSON; the paths outside /api answer theirs as an HTML page."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {"Error": _json(_ref("Error"), "An error with a message"), **pages.RESPONSES},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def _board_schemas() -> dict[str, Any]:
    slot = {
        "type": "object",
        "properties": {
            "skill": {"type": ["string", "null"], "pattern": "^[a-z0-9][a-z0-9-]{0,47}$"},
            "newcomer": {"type": "boolean"},
            "note": {"type": "string", "maxLength": 200},
        },
        "additionalProperties": False,
    }
    return {
        "TaskDraft": {
            "type": "object",
            "required": ["title", "sector", "community", "starts_at", "ends_at", "slots"],
            "properties": {
                "title": {"type": "string", "maxLength": 200},
                "sector": {"enum": ["food", "education", "health", "maintenance", "governance", "other"]},
                "community": {"type": "string"},
                "starts_at": {"type": "string", "format": "date-time"},
                "ends_at": {"type": "string", "format": "date-time"},
                "recurrence": {
                    "type": ["object", "null"],
                    "properties": {
                        "days": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 6}},
                        "start": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                        "end": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                    },
                },
                "slots": {"type": "array", "minItems": 1, "maxItems": 20, "items": slot},
                "hours_per_slot": {"type": ["number", "null"], "minimum": 0.25, "maximum": 24},
                "urgency": {
                    "oneOf": [
                        {"enum": ["low", "normal", "high", "urgent"]},
                        {"type": "integer", "minimum": 0, "maximum": 3},
                    ]
                },
                "place": {"type": "string", "maxLength": 200},
                "description": {"type": "string", "maxLength": 4000},
                "poster_kind": {"enum": ["member", "guild", "assembly", "coordinator"]},
                "poster_name": {"type": "string", "maxLength": 200},
                "lat": {"type": ["number", "null"]},
                "lon": {"type": ["number", "null"]},
                "site": {"type": ["string", "null"]},
            },
            "additionalProperties": False,
        },
        "BoardTask": {
            "type": "object",
            "description": "places counted, never named; shifts[].mine holds only the reader's own signups",
            "properties": {
                "id": {"type": "integer"},
                "title": {"type": "string", "description": "user text: escape before showing as HTML"},
                "sector": {"type": "string"},
                "community": {"type": "string"},
                "when": {"type": "string"},
                "urgency": {"enum": ["low", "normal", "high", "urgent"]},
                "status": {"enum": ["open", "cancelled", "done"]},
                "poster": {"type": "string"},
                "slots": {"type": "array", "items": {"type": "object"}},
                "shifts": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "integer"},
                            "starts_at": {"type": "string", "format": "date-time"},
                            "ends_at": {"type": "string", "format": "date-time"},
                            "filled": {"type": "integer", "description": "places taken"},
                            "asked": {
                                "type": "integer",
                                "description": "places asked of someone, no answer yet",
                            },
                            "places": {"type": "integer"},
                            "free_slot_ids": {"type": "array", "items": {"type": "integer"}},
                            "mine": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
            },
        },
        "Signup": {
            "type": "object",
            "properties": {
                "signup_id": {"type": "integer"},
                "state": {"enum": ["suggested", "taken", "declined", "released", "lapsed", "done"]},
                "shift_id": {"type": "integer"},
                "slot_id": {"type": "integer"},
            },
        },
    }
