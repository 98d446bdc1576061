"""One link between two nodes: what each side knows of the other and when to (re)send.

Pure bookkeeping (no MQTT, no store), so the agent's rules can be tested without a broker: a link is up
while frames arrive; facts above the peer's vector are sent, and sent again if no ack covers them in time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

RESEND_S = 5.0  # an unacknowledged batch is sent again after this long
BEAT_S = 5.0  # a beat on every link this often
DOWN_AFTER_BEATS = 3  # a link with nothing heard for this many beats is down


@dataclass
class LinkState:
    """One side's view of a link to `peer`."""

    peer: str
    dials: bool  # this node connects to the peer's broker (else the peer connects to ours)
    beat_s: float = BEAT_S
    resend_s: float = RESEND_S
    connected: bool = False  # our MQTT connection that carries the link is up
    heard_at: float | None = None  # monotonic time of the last frame from the peer
    their_have: dict[str, int] = field(default_factory=dict)  # what the peer said it holds
    known: bool = False  # the peer has told us its vector since the link came up
    inflight_until: float = 0.0  # no new batch before this, unless an ack arrives
    beat_at: float = 0.0  # when our last beat went out
    asked_at: float = 0.0  # when we last said hello (asking for the peer's vector)
    sent_facts: int = 0
    sent_bytes: int = 0
    received_bytes: int = 0

    def up(self, now: float) -> bool:
        """A frame from the peer arrived recently, over a connection that is up."""
        if not self.connected or self.heard_at is None:
            return False
        return now - self.heard_at < self.beat_s * DOWN_AFTER_BEATS

    def heard(self, now: float) -> bool:
        """Note a frame from the peer; True if the link has just come up (the caller then says hello)."""
        was_up = self.up(now)
        self.heard_at = now
        return not was_up and self.connected

    def learn(self, have: Mapping[str, int]) -> None:
        """The peer's vector (hello or ack): elementwise max, as vectors only grow on a live store."""
        for origin, seq in have.items():
            if seq > self.their_have.get(origin, 0):
                self.their_have[origin] = seq
        self.known = True
        self.inflight_until = 0.0

    def reset(self, have: Mapping[str, int]) -> None:
        """A hello replaces the vector: a peer restored from an older backup holds less than it once said."""
        self.their_have = dict(have)
        self.known = True
        self.inflight_until = 0.0

    def lost(self) -> None:
        """The connection dropped: forget the peer's vector until its next hello."""
        self.connected = False
        self.known = False
        self.inflight_until = 0.0

    def lacks(self, mine: Mapping[str, int]) -> bool:
        """Whether we hold facts the peer does not."""
        return any(seq > self.their_have.get(origin, 0) for origin, seq in mine.items())

    def may_send(self, now: float) -> bool:
        """A batch may go out: the link is up, the peer's vector known, no batch waiting for an ack."""
        return self.connected and self.known and now >= self.inflight_until

    def sent(self, now: float, facts: int, size: int) -> None:
        """Note a batch sent; without an ack it goes again after `resend_s`."""
        self.inflight_until = now + self.resend_s
        self.sent_facts += facts
        self.sent_bytes += size

    def ask_due(self, now: float) -> bool:
        """The link is up but the peer's vector is still unknown (a hello or its ack went missing): ask
        again, every `resend_s`, so one lost frame never leaves a link that carries nothing."""
        return self.connected and not self.known and now - self.asked_at >= self.resend_s

    def beat_due(self, now: float) -> bool:
        """Time for a beat on this link."""
        return self.connected and now - self.beat_at >= self.beat_s


def holder(
    order: tuple[str, ...], heard_age: Mapping[str, float], lease_s: float, self_name: str
) -> str | None:
    """Who holds the regional planning role: the first of `order` heard within `lease_s` (this node counts as
    heard now). Every node computes the same answer from the beats it has; in a partition each side picks its
    own holder, which is what keeps a cut-off part planning for itself."""
    for name in order:
        if name == self_name or heard_age.get(name, float("inf")) < lease_s:
            return name
    return None
