"""Where and how to reach the MQTT broker, parsed from a URL (stdlib only, so devices can use it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class MqttTarget:
    """Where and how to reach the broker: mqtt://user:pass@host:port, or mqtts:// for TLS."""

    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)  # kept out of repr(): log lines, test failures
    tls: bool
    protocol: str  # "5" or "3.1.1"
    ca_file: str | None = None

    @classmethod
    def from_url(cls, url: str, protocol: str = "5", ca_file: str | None = None) -> MqttTarget:
        """Parse `mqtt://user:pass@host:port` (mqtts:// for TLS); raise ValueError on anything else."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"MQTT URL {url!r} has no host")
        if protocol not in ("5", "3.1.1"):
            raise ValueError(f"MQTT protocol must be '5' or '3.1.1', got {protocol!r}")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            protocol=protocol,
            ca_file=ca_file,
        )
