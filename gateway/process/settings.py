"""Settings: read once at the entry point (flags over RHIZOME_* variables over defaults), then passed down.

The one shape of a process's surroundings: the `rhizome` root builds it for every command (gateway,
devices, planner, dashboard: gateway/process/context.py), dashboard/web/wsgi.py and the bench scripts
build it the same way, and a supervisor hands it to its children with `to_env`. Nothing below an entry
point reads RHIZOME_* itself; the dashboard's own options (tiles, public map, accounts file, cookies) are
its DashboardConfig, read from the environment at the same entry points (dashboard/web/config.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gateway.contract.target import MqttTarget

DEFAULT_DATA_DIR = Path("var")
MIN_SECRET_KEY_LENGTH = 32
# Words that mark a key copied from an example instead of generated (compared without case or punctuation).
_PLACEHOLDER_WORDS = ("changeme", "secret", "example", "placeholder", "xxx")
_MAKE_A_KEY = 'python -c "import secrets; print(secrets.token_hex(32))"'


def validate_secret_key(key: str | None) -> str | None:
    """The session key, or None when unset; a placeholder or short key raises ValueError.

    Anyone who knows the key can forge a session cookie, so a key copied from the example env file (or any
    guessable one) must stop the dashboard at start rather than sign sessions.
    """
    if key is None or key == "":
        return None
    folded = "".join(ch for ch in key.lower() if ch.isalnum())
    problem = None
    if len(key) < MIN_SECRET_KEY_LENGTH:
        problem = f"is {len(key)} characters long, fewer than {MIN_SECRET_KEY_LENGTH}"
    elif len(set(key)) == 1:
        problem = "is one character repeated"
    elif any(word in folded for word in _PLACEHOLDER_WORDS):
        problem = "looks like a placeholder"
    if problem:
        raise ValueError(f"RHIZOME_SECRET_KEY {problem}: generate one with {_MAKE_A_KEY}")
    return key


@dataclass(frozen=True)
class Settings:
    """Everything a Rhizome process needs to know about its surroundings."""

    mqtt_url: str | None = None  # None: `rhizome demo` starts an embedded broker
    mqtt_protocol: str = "5"
    mqtt_ca_file: str | None = None
    # The broker password kept out of the URL (a flag's value shows in `ps`): the file's first line, or the
    # variable itself; the URL then names only the user, mqtts://gateway.main@broker:8883.
    mqtt_password_file: Path | None = None
    mqtt_password: str | None = field(default=None, repr=False)
    database_url: str | None = None  # None: SQLite in <data_dir>/rhizome.db
    data_dir: Path = DEFAULT_DATA_DIR
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8000
    gateway_group: str = "gateways"  # shared-subscription group name (MQTT v5 only)
    gateway_client_id: str = "rhizome-gateway"
    metrics_host: str = "127.0.0.1"  # where `gateway --metrics-port` listens; 0.0.0.0 (or ::) in a container
    plan_interval_s: float = 60.0
    plan_lead_s: float = 12 * 3600.0  # plan for the stock expected this far ahead (0: the stock as it is)
    region_file: str | None = None
    secret_key: str | None = None
    broker_dir: Path | None = None  # None: <data_dir>/broker; where the broker's password and ACL files go
    broker_pid_file: Path | None = None  # the broker's pid file, SIGHUPed after its account files change
    bridge_username: str | None = None  # `rhizome bridge config`: the regional account, when no --credentials
    bridge_password: str | None = None
    log_level: str = "INFO"
    # A community node of a federation (docs/nodes.md): its name, the federation file every node holds, the
    # communities it serves (comma-separated slugs; default its name), its assembly's rule for plans.
    node_name: str | None = None
    federation_file: Path | None = None
    node_communities: str | None = None
    node_auto_accept_kg: float = 500.0
    node_help_after_min: float = 30.0  # an open repair nobody here took is offered to neighbours (work clock)
    fed_interval_s: float = 30.0  # how often the node reports and the planning role's holder plans

    @property
    def communities(self) -> tuple[str, ...]:
        """The communities this node serves."""
        if self.node_communities:
            return tuple(c.strip() for c in self.node_communities.split(",") if c.strip())
        return (self.node_name,) if self.node_name else ()

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'rhizome.db').resolve()}"

    @property
    def effective_broker_dir(self) -> Path:
        """Where `rhizome devices provision` writes the broker's password and ACL files."""
        return self.broker_dir or self.data_dir / "broker"

    def mqtt(self) -> MqttTarget:
        """The broker target; raises ValueError when no broker URL is configured, or its password is given
        twice or cannot be read."""
        return self._mqtt(read_password=True)

    def _mqtt(self, *, read_password: bool) -> MqttTarget:
        """The target, its password file read only when asked (a command that never connects, such as
        `db upgrade` before `devices provision` wrote the file, must not need it)."""
        if not self.mqtt_url:
            raise ValueError("no MQTT broker configured: set RHIZOME_MQTT_URL or pass --mqtt")
        target = MqttTarget.from_url(self.mqtt_url, self.mqtt_protocol, self.mqtt_ca_file)
        if self.mqtt_password_file is None and self.mqtt_password is None:
            return target
        if self.mqtt_password_file is not None and self.mqtt_password is not None:
            raise ValueError("set RHIZOME_MQTT_PASSWORD or RHIZOME_MQTT_PASSWORD_FILE, not both")
        if target.password is not None:
            raise ValueError("the MQTT URL has a password and RHIZOME_MQTT_PASSWORD(_FILE) another: drop one")
        if target.username is None:
            raise ValueError("an MQTT password needs a user in the URL: mqtts://USER@host:8883")
        password = self.mqtt_password
        if self.mqtt_password_file is not None and read_password:
            password = read_password_file(self.mqtt_password_file)
        return replace(target, password=password)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the non-None overrides applied (flags beat the environment)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def read_password_file(path: Path) -> str:
    """The password on the file's first line (as `devices provision --secrets-dir` writes it)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the MQTT password file {path}: {exc}") from exc
    if not lines or not lines[0]:
        raise ValueError(f"the MQTT password file {path} is empty")
    return lines[0]


_CONVERTERS = {
    "dashboard_port": int,
    "plan_interval_s": float,
    "plan_lead_s": float,
    "data_dir": Path,
    "broker_dir": Path,
    "broker_pid_file": Path,
    "mqtt_password_file": Path,
    "federation_file": Path,
    "node_auto_accept_kg": float,
    "node_help_after_min": float,
    "fed_interval_s": float,
}


def from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from RHIZOME_<FIELD> variables, then apply explicit overrides (from flags)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = environ.get(f"RHIZOME_{f.name.upper()}")
        if raw is None or raw == "":
            continue
        convert = _CONVERTERS.get(f.name, str)
        try:
            values[f.name] = convert(raw)
        except ValueError as exc:
            raise ValueError(f"RHIZOME_{f.name.upper()}={raw!r}: {exc}") from exc
    settings = Settings(**values).with_overrides(**overrides)
    if settings.mqtt_url:
        settings._mqtt(read_password=False)  # fail fast on a malformed URL or a password given twice
    return settings


def to_env(settings: Settings) -> dict[str, str]:
    """The RHIZOME_* variables that reproduce these settings in a child process."""
    env = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if value is not None:
            env[f"RHIZOME_{f.name.upper()}"] = str(value)
    return env
