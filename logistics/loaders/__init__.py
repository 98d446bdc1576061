"""The planner's only door to the store, one module per planner: rows in as plain input data, plans out as
rows and outbox messages. The only modules of logistics that use the ORM."""

from __future__ import annotations

import json
from typing import Any


def json_payload(body: dict[str, Any]) -> bytes:
    """Compact JSON for an outbox row (NaN refused: a consumer could not parse it)."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
