"""Plain text people type: what may be in a name, a title or a note, for every entry point (forms, API, CLI,
region files) and every output that would break on the rest (XML, calendar files). Stdlib only."""

from __future__ import annotations

import re
from typing import Final

# C0 controls but tab and line feed, DEL, C1 controls, and Unicode's line and paragraph separators: nothing
# a person types, and each breaks something downstream (PostgreSQL refuses NUL, XML 1.0 forbids most C0
# characters, calendar and CSV readers split lines on the separators, terminals run escape sequences).
CONTROL_RE: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def has_control(value: str) -> bool:
    """Whether `value` holds a character CONTROL_RE forbids."""
    return CONTROL_RE.search(value) is not None


def without_control(value: str, replacement: str = " ") -> str:
    """`value` with each forbidden character replaced (for output of text stored before it was refused)."""
    return CONTROL_RE.sub(replacement, value)
