"""Rhizome's one small error tree (stdlib only, so devices and the pure planners can raise it too).

Domain code raises these and never speaks HTTP: the dashboard's web layer alone maps them to status codes
(`InvalidInput` 400, `NotFound` 404, `Conflict` 409, `Unavailable` 503). `InvalidInput` is also a
`ValueError`, and `NotFound` a `LookupError`, so callers that caught the builtins keep working.
"""

from __future__ import annotations


class RhizomeError(Exception):
    """Base of every error Rhizome raises on purpose."""


class InvalidInput(RhizomeError, ValueError):
    """Input that breaks a rule (a form, an API call, a file, a message); the text says which rule."""


class NotFound(RhizomeError, LookupError):
    """The thing asked for does not exist, or is not the caller's to see."""


class Conflict(RhizomeError):
    """A valid request the current state refuses, e.g. a lifecycle transition not allowed from here."""


class Unavailable(RhizomeError):
    """A service Rhizome needs (broker, database, solver binary) cannot be reached or refused us."""
