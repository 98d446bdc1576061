"""Plain words for the crew page: what is wrong at a site, what to bring, how urgent it is.

The store speaks in rule names, skill slugs and urgency scores; a person in the field needs a sentence,
a kit list and "urgent / soon / when you can" (the score stays in a tooltip for whoever wants it)."""

from __future__ import annotations

import re

# gateway/ingest/faults/rules.toml's rules, in a sentence; a rule not listed here reads as its name.
WHAT_IS_WRONG = {
    "pump_failure": "The pump runs but no water flows.",
    "motor_overcurrent": "The pump motor draws too much current.",
    "cold_chain_breach": "The cold room is above 8 °C: food or medicine may spoil.",
    "cold_room_warming": "The cold room is warming fast.",
    "sensor_stuck": "A sensor keeps sending the same value.",
    "device_fault_code": "The device reports a fault code.",
    "pump_silent": "The pump controller has stopped reporting.",
    "cold_room_silent": "The cold room sensor has stopped reporting.",
}
# What a person with each skill brings to the job; an unknown skill reads as "<skill> tools".
KIT = {
    "pump-mechanic": "pump tools, seals and a spare impeller",
    "refrigeration": "refrigeration gauges and refrigerant",
    "electronics": "a multimeter and a spare sensor",
    "electrician": "electrician's tools, fuses and a multimeter",
}
# Urgency is severity's base (critical 100, high 60, medium 30, low 10; gateway/ingest/rules.py) plus up to
# ~40 for the people the site serves.
URGENT_FROM, SOON_FROM = 100, 60
_DISTANCE = re.compile(r"\s*\d+(?:\.\d+)? km away(?: \(~(\d+) min\))?")


def what_is_wrong(kind: str | None) -> str | None:
    """The fault in a sentence, or None when the task has no fault (opened by hand)."""
    if not kind:
        return None
    return WHAT_IS_WRONG.get(kind) or kind.replace("_", " ").capitalize() + "."


def skill_words(skill: str) -> str:
    """A skill slug as words: "pump-mechanic" -> "pump mechanic"."""
    return skill.replace("-", " ").replace("_", " ")


def skill_list(skills: tuple[str, ...] | list[str]) -> str:
    """Skills as words, comma-separated."""
    return ", ".join(skill_words(s) for s in skills)


def what_to_bring(skills: tuple[str, ...]) -> str:
    """The kit the task's skills call for, or a note that no special kit is needed."""
    if not skills:
        return "basic tools; no special skill needed"
    return "; ".join(KIT.get(s, f"{skill_words(s)} tools") for s in skills)


def urgency_word(urgency: int) -> str:
    """urgent / soon / when you can."""
    if urgency >= URGENT_FROM:
        return "urgent"
    return "soon" if urgency >= SOON_FROM else "when you can"


def urgency_scale(urgency: int) -> str:
    """The score behind the word, for a tooltip."""
    return (
        f"urgency score {urgency} ({URGENT_FROM} and more: urgent; {SOON_FROM} to {URGENT_FROM - 1}: soon;"
        f" below {SOON_FROM}: when you can)"
    )


def without_distance(explanation: str | None) -> str | None:
    """The planner's explanation without its own "N km away (~M min)": the card already says the distance
    and direction once; the travel time stays as "~M min to get there"."""
    if explanation is None:
        return None
    return _DISTANCE.sub(lambda m: f" ~{m.group(1)} min to get there" if m.group(1) else "", explanation)
