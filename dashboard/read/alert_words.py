"""Every alert kind on a member's topic as one sentence: the crew page shows words, never a payload.

The payloads (docs/mqtt.md#member-alerts) come from the gateway (faults cleared), the planner (tasks
assigned), the board and the node's help offers; a kind not known here still reads as text, its fields
listed, so a new kind is never shown as raw JSON."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dashboard.read import wording

MAX_TEXT = 500
_SKIP = ("v", "ts", "at", "type", "event", "link", "lat", "lon")


def kind_of(body: Mapping[str, Any]) -> str:
    """The alert's kind: `event` (planner, help offers) or `type` (gateway, board)."""
    return str(body.get("event") or body.get("type") or "alert")


def _place(body: Mapping[str, Any]) -> str:
    return str(body.get("site_name") or body.get("place") or body.get("site") or "the site")


def _when(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    try:
        return f"{datetime.fromisoformat(raw.replace('Z', '+00:00')):%a %d %b %H:%M} UTC"
    except ValueError:
        return None


def _urgency(body: Mapping[str, Any]) -> str:
    value = body.get("urgency")
    return wording.urgency_word(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def _task_assigned(body: Mapping[str, Any]) -> str:
    urgency = _urgency(body)
    text = f"New task for you: {body.get('title', 'a repair')}" + (f" ({urgency})" if urgency else "")
    if body.get("site_name"):
        text += f" at {body['site_name']}"
    when = _when(body.get("starts_at"))
    text += f", from {when}." if when else "."
    if body.get("escalated"):
        text += " Nobody closer could take it."
    return text


def _fault_cleared(body: Mapping[str, Any]) -> str:
    kind = str(body.get("kind") or "fault").replace("_", " ")
    place = _place(body)
    return f"Fault cleared at {place}: the readings are normal again ({kind}), so the repair task is closed."


def _fault(body: Mapping[str, Any]) -> str:
    wrong = wording.what_is_wrong(str(body.get("kind") or "")) or "a fault"
    urgency = _urgency(body)
    return f"Fault at {_place(body)}: {wrong}" + (f" ({urgency})" if urgency else "")


def _task_escalated(body: Mapping[str, Any]) -> str:
    urgency = _urgency(body)
    title = body.get("title", "a repair")
    return f"Help wanted: {title}" + (f" ({urgency})" if urgency else "") + "; nobody nearby could take it."


def _help(body: Mapping[str, Any]) -> str:
    title, event = body.get("title", "a neighbour's task"), kind_of(body)
    reason = f": {body['reason']}" if body.get("reason") else "."
    if event == "help_accepted":
        hours = body.get("hours")
        amount = f" of {hours:g} h" if isinstance(hours, int | float) else ""
        return f"Your offer{amount} for “{title}” is accepted. Thank you!"
    if event == "help_withdrawn":
        return f"Your offer for “{title}” is withdrawn{reason}"
    return f"Your offer for “{title}” was not taken{reason}"


SENTENCES = {
    "task_assigned": _task_assigned,
    "task_escalated": _task_escalated,
    "fault": _fault,
    "fault_cleared": _fault_cleared,
    "help_accepted": _help,
    "help_refused": _help,
    "help_withdrawn": _help,
}


def _listed(body: Mapping[str, Any]) -> str:
    fields = [
        f"{key.replace('_', ' ')}: {value}"
        for key, value in body.items()
        if key not in _SKIP and isinstance(value, str | int | float) and not isinstance(value, bool)
    ]
    label = kind_of(body).replace("_", " ").capitalize()
    return f"{label}: {'; '.join(fields)}." if fields else f"{label}."


def sentence(body: Mapping[str, Any]) -> str:
    """The alert as a sentence: its own `text`/`message` when it has one, else built from its kind."""
    for key in ("text", "message"):
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])[:MAX_TEXT]
    made = SENTENCES.get(kind_of(body))
    if made is not None:
        return made(body)[:MAX_TEXT]
    for key in ("title", "summary"):
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])[:MAX_TEXT]
    return _listed(body)[:MAX_TEXT]
