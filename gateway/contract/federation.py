"""Federation contract v1: the facts community nodes exchange and the frames that carry them (stdlib only).

Each node keeps its own store and publishes *facts*: records with an origin node and a sequence number that
only grows, so a fact is stored idempotently on (origin, seq) wherever it arrives, and a peer's "have" vector
(origin -> highest seq held with no gap below it) says exactly what it still lacks. Nodes talk over MQTT, but
delivery never depends on the broker or a bridge: a link resends until the peer's vector covers what was sent,
and a reconnecting peer is sent everything above its vector. Facts are signed by their origin, so a node
relaying its neighbour's facts cannot alter them or speak in another node's name.

Topics (on the broker of node N, for its link with peer P; only P's account may write `in/P`, only N's
read it):

    rhizome/fed/v1/<N>/in/<P>    frames from P to N
    rhizome/fed/v1/<N>/out/<P>   frames from N to P

`docs/federation.md` describes the protocol in prose.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from gateway.contract.reasons import ProtocolError
from gateway.contract.topics import is_slug

FED_ROOT: Final = "rhizome/fed/v1"
FACT_VERSION: Final = 1
MAX_FRAME_BYTES: Final = 60_000  # under the project broker's 64 KiB max_packet_size, with room for the topic
MAX_FACT_BYTES: Final = 16 * 1024
MAX_SEQ: Final = 2**53 - 1

# What a node tells its peers. Bodies are checked by the node that uses them (gateway/federation/facts.py);
# the contract fixes the envelope, the kinds and their meaning:
#   node       the node's name, place and the communities it serves (re-sent when it changes)
#   stock      the community's stock per item: quantity, minimum, surplus offered, shortfall requested
#   fault      a fault the node's own gateway opened or closed (the region sees it even after a cut)
#   task       a repair task the node cannot staff, opened to neighbours' crews, or its closing (never who)
#   hours      hours the node's members gave away from home this year: sums per receiving community and
#              sector, never who
#   help       a neighbour's crew member offers hours for a `task` (or withdraws the offer); the helper is
#              named only by an opaque ref its own node can resolve, never by name
#   plan       shipments between communities, proposed by the node holding the regional planning role
#   answer     a community's acceptance or refusal of one shipment of a plan, or of one `help` offer
#   delivered  a shipment handed over at its destination (its quantity enters the receiver's ledger)
FACT_KINDS: Final = ("node", "stock", "fault", "task", "hours", "help", "plan", "answer", "delivered")
FRAME_TYPES: Final = ("hello", "facts", "ack", "beat", "bye")


def node_account(node: str) -> str:
    """The account `node` uses on each neighbour's broker (with a dot: never a device's or member's slug)."""
    return f"node.{node}"


def inbound_topic(node: str, peer: str) -> str:
    """Where `peer` writes to `node`, on `node`'s broker."""
    return f"{FED_ROOT}/{node}/in/{peer}"


def outbound_topic(node: str, peer: str) -> str:
    """Where `node` writes to `peer`, on `node`'s broker."""
    return f"{FED_ROOT}/{node}/out/{peer}"


def parse_link_topic(topic: str) -> tuple[str, str, str]:
    """(node, direction, peer) of a federation topic, or ProtocolError('topic_invalid')."""
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:3]) != FED_ROOT or parts[4] not in ("in", "out"):
        raise ProtocolError("topic_invalid", f"expected {FED_ROOT}/<node>/in|out/<peer>")
    if not (is_slug(parts[3]) and is_slug(parts[5])):
        raise ProtocolError("slug_invalid", "node names are slugs")
    return parts[3], parts[4], parts[5]


@dataclass(frozen=True)
class Fact:
    """One signed record. `sig` covers every other field (see `signed_bytes`)."""

    origin: str
    seq: int
    kind: str
    at: datetime
    body: Mapping[str, Any]
    v: int = FACT_VERSION
    sig: str = ""

    def signed_bytes(self) -> bytes:
        """The canonical bytes the origin signs: sorted keys, no spaces, UTF-8."""
        return canonical(
            {"v": self.v, "origin": self.origin, "seq": self.seq, "kind": self.kind, "at": _ts(self.at)}
            | {"body": self.body}
        )

    def to_json(self) -> dict[str, Any]:
        """The fact as it travels in a frame."""
        return {
            "v": self.v,
            "origin": self.origin,
            "seq": self.seq,
            "kind": self.kind,
            "at": _ts(self.at),
            "body": dict(self.body),
            "sig": self.sig,
        }


@dataclass(frozen=True)
class Frame:
    """One message on a link.

    hello   sent on (re)connection: `have` is the sender's vector; the receiver sends the facts above it
    facts   a batch of facts; the receiver stores them and answers with an `ack` carrying its new vector
    ack     the sender's vector after storing; facts it covers are no longer resent on this link
    beat    liveness: `heard` maps node -> seconds since the sender last heard from it (itself: 0)
    bye     the sender is leaving cleanly (also its MQTT will, sent by the broker when it drops)
    """

    type: str
    node: str
    have: Mapping[str, int] = field(default_factory=dict)
    facts: tuple[Fact, ...] = ()
    heard: Mapping[str, float] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The frame as JSON bytes."""
        obj: dict[str, Any] = {"t": self.type, "node": self.node}
        if self.type in ("hello", "ack"):
            obj["have"] = dict(self.have)
        if self.type == "facts":
            obj["facts"] = [fact.to_json() for fact in self.facts]
        if self.type == "beat":
            obj["heard"] = {k: round(v, 1) for k, v in self.heard.items()}
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def canonical(obj: Any) -> bytes:
    """Deterministic JSON: what a signature covers and what two nodes compare."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode()


def parse_frame(payload: bytes) -> tuple[Frame, list[tuple[dict[str, Any], ProtocolError]]]:
    """Decode a frame; facts that break the envelope are returned apart, with their error, for dead letters.

    A frame that is itself unreadable raises ProtocolError. One bad fact never costs the others in its batch.
    """
    if len(payload) > MAX_FRAME_BYTES + 4096:
        raise ProtocolError("payload_too_large", f"{len(payload)} bytes, limit {MAX_FRAME_BYTES}")
    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise ProtocolError("not_utf8", str(exc)) from exc
    except ValueError as exc:
        raise ProtocolError("not_json", str(exc)) from exc
    if not isinstance(obj, dict):
        raise ProtocolError("not_object", "a frame is a JSON object")
    kind = obj.get("t")
    if kind not in FRAME_TYPES:
        raise ProtocolError("field_type", f"t must be one of {FRAME_TYPES}")
    node = obj.get("node")
    if not is_slug(node):
        raise ProtocolError("slug_invalid", "node must be a slug")
    have = _vector(obj.get("have", {})) if kind in ("hello", "ack") else {}
    heard = _heard(obj.get("heard", {})) if kind == "beat" else {}
    good: list[Fact] = []
    bad: list[tuple[dict[str, Any], ProtocolError]] = []
    if kind == "facts":
        raw = obj.get("facts")
        if not isinstance(raw, list):
            raise ProtocolError("field_type", "facts must be a list")
        for item in raw:
            try:
                good.append(parse_fact(item))
            except ProtocolError as exc:
                bad.append((item if isinstance(item, dict) else {"fact": item}, exc))
    return Frame(str(kind), str(node), have, tuple(good), heard), bad


def parse_fact(obj: object) -> Fact:
    """Check a fact's envelope (not its signature, not its body's meaning)."""
    if not isinstance(obj, dict):
        raise ProtocolError("not_object", "a fact is a JSON object")
    unknown = set(obj) - {"v", "origin", "seq", "kind", "at", "body", "sig"}
    if unknown:
        raise ProtocolError("field_unknown", f"unknown fields {sorted(unknown)}")
    version = obj.get("v")
    if version != FACT_VERSION:
        raise ProtocolError("version_unsupported", f"version {version!r}; this node reads {FACT_VERSION}")
    origin, seq, kind = obj.get("origin"), obj.get("seq"), obj.get("kind")
    if not is_slug(origin):
        raise ProtocolError("slug_invalid", "origin must be a node name (a slug)")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
        raise ProtocolError("field_type", "seq must be an integer from 1")
    if kind not in FACT_KINDS:
        raise ProtocolError("field_type", f"kind {kind!r} not one of {FACT_KINDS}")
    body, sig = obj.get("body"), obj.get("sig")
    if not isinstance(body, dict):
        raise ProtocolError("field_type", "body must be an object")
    if not isinstance(sig, str) or not sig:
        raise ProtocolError("field_missing", "sig is required")
    try:
        base64.b64decode(sig, validate=True)
    except ValueError as exc:
        raise ProtocolError("field_type", "sig must be base64") from exc
    at = _parse_ts(obj.get("at"))
    fact = Fact(str(origin), seq, str(kind), at, body, FACT_VERSION, sig)
    if len(canonical(fact.to_json())) > MAX_FACT_BYTES:
        raise ProtocolError("payload_too_large", f"a fact is at most {MAX_FACT_BYTES} bytes")
    return fact


def _vector(raw: object) -> dict[str, int]:
    if not isinstance(raw, dict) or not all(is_slug(k) for k in raw):
        raise ProtocolError("field_type", "have maps node names to sequence numbers")
    out: dict[str, int] = {}
    for key, value in raw.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SEQ:
            raise ProtocolError("field_type", f"have[{key}] must be an integer from 0")
        out[key] = value
    return out


def _heard(raw: object) -> dict[str, float]:
    if not isinstance(raw, dict) or not all(is_slug(k) for k in raw):
        raise ProtocolError("field_type", "heard maps node names to seconds")
    out: dict[str, float] = {}
    for key, value in raw.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            raise ProtocolError("field_type", f"heard[{key}] must be seconds, 0 or more")
        out[key] = float(value)
    return out


def _ts(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_ts(text: object) -> datetime:
    if not isinstance(text, str):
        raise ProtocolError("ts_invalid", "at must be an ISO 8601 string")
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ProtocolError("ts_invalid", f"at {text!r} is not ISO 8601") from exc
    if at.tzinfo is None:
        raise ProtocolError("ts_invalid", "at needs a UTC offset")
    return at.astimezone(UTC)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")
