"""The OpenAPI description of the driver's action endpoint (dashboard.api.driver), kept apart so the main
document stays readable: one write, idempotent by the action id the phone makes."""

from __future__ import annotations

from typing import Any

from dashboard.api.openapi_security import WRITE
from gateway.store.deliveries import MAX_REASON
from gateway.store.models.vocab import DRIVER_ACTION_KINDS, ROUTE_STATUSES

_UUID = {
    "type": "string",
    "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
}
_ABOUT = {
    "id": {**_UUID, "description": "the action id, lowercase"},
    "replayed": {"type": "boolean", "description": "true: this id was seen before; this is its first answer"},
    "route_status": {"enum": [*ROUTE_STATUSES, None], "description": "the route's status after it"},
}
_ERROR = {
    "description": "Refused, with the store's message (a recorded refusal is replayed with its status)",
    "content": {
        "application/json": {
            "schema": {
                "allOf": [{"$ref": "#/components/schemas/Error"}, {"type": "object", "properties": _ABOUT}]
            }
        }
    },
}


def paths() -> dict[str, Any]:
    """POST /api/routes/{route_id}/actions."""
    return {
        "/api/routes/{route_id}/actions": {
            "post": {
                "operationId": "recordDriverAction",
                "summary": "Record a driver's action (picked up, delivered, failed, accept, decline), once",
                "description": (
                    "What the route page's offline queue sends. The client makes a UUID when the driver "
                    "presses the button and sends it with the action; the server applies each id at most "
                    "once and answers a repeat with the first answer (replayed true), applied or refused, so "
                    "sending again after a lost answer is safe. The same id with different content is a 409 "
                    "once it was applied (a new try after a refusal). picked_up needs quantity (what was "
                    "loaded: an empty value is never the plan), failed a reason; decline needs none."
                ),
                "security": WRITE,
                "parameters": [
                    {
                        "name": "route_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                        "description": "route id",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["id", "kind"],
                                "additionalProperties": False,
                                "properties": {
                                    "id": _UUID,
                                    "kind": {"enum": list(DRIVER_ACTION_KINDS)},
                                    "stop": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "description": "the stop (picked_up, delivered, failed)",
                                    },
                                    "quantity": {
                                        "type": "number",
                                        "exclusiveMinimum": 0,
                                        "description": "what was loaded (picked_up; required there)",
                                    },
                                    "reason": {"type": "string", "maxLength": MAX_REASON},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "Applied (or the replayed answer of an applied id)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"message": {"type": "string"}, **_ABOUT},
                                    "required": ["message", "id", "replayed"],
                                }
                            }
                        },
                    },
                    **{code: _ERROR for code in ("400", "404", "409")},
                    **{code: {"$ref": "#/components/responses/Error"} for code in ("401", "403", "503")},
                },
            }
        }
    }
