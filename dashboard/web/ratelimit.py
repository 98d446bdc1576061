"""Soft login throttling: a growing wait after failed logins, never a lockout of the right password.

Failures are counted in the store (gateway/store/login_failures.py), so every worker sees the same count,
under two keys: the account from one client address, and the account from anywhere. After a few free
failures each key asks for a wait that grows with every further failure: doubling for the account from
that address, linearly and capped low for the account as a whole. The address alone is not a key: behind a
proxy or a shared connection one address is many people. The right password from another address, or for
another account, waits for nothing but the account-wide backoff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from gateway.store import login_failures


@dataclass(frozen=True)
class Backoff:
    """After `free` failures, wait `base_s` x 2^(n - free) (or x (n - free + 1) if not `doubling`), at most
    `max_s`."""

    free: int
    base_s: float
    max_s: float
    doubling: bool = True

    def __post_init__(self) -> None:
        if self.free < 1 or self.base_s <= 0 or self.max_s < self.base_s:
            raise ValueError("backoff: free must be >= 1, base > 0 and max >= base")

    def delay_s(self, failures: int) -> float:
        """The wait after the `failures`-th failure in a row."""
        over = failures - self.free
        if over < 0:
            return 0.0
        grown = self.base_s * (2 ** min(over, 40) if self.doubling else over + 1)
        return min(grown, self.max_s)


@dataclass(frozen=True)
class Throttled:
    """Which key a failure put into backoff, and for how long (for the audit trail)."""

    scope: str
    failures: int
    wait_s: int


class LoginThrottle:
    """The backoff of one dashboard: per (account, address) and, more gently, per account."""

    def __init__(self, pair: Backoff, account: Backoff, forget_s: float) -> None:
        if forget_s <= 0:
            raise ValueError("forget_s must be > 0")
        self.pair, self.account, self.forget = pair, account, timedelta(seconds=forget_s)

    @classmethod
    def from_config(cls, free: int, base_s: float, max_s: float, forget_s: float) -> LoginThrottle:
        """`free` failures per account and address, four times as many per account, whose wait grows by
        `base_s` a failure up to a minute (so someone guessing elsewhere delays the owner by at most that)."""
        account = Backoff(free * 4, base_s, max(base_s, min(max_s, 60.0)), doubling=False)
        return cls(Backoff(free, base_s, max_s), account, forget_s)

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return f"pair:{username}|{address}", f"user:{username}"

    def retry_after(self, session: Session, username: str, address: str, now: datetime) -> int:
        """Seconds until `username` may try again from `address`; 0 when it may now."""
        pair_key, user_key = self._keys(username, address)
        found = login_failures.counts(session, (pair_key, user_key), now - self.forget)
        wait = 0.0
        for key, backoff in ((pair_key, self.pair), (user_key, self.account)):
            if key in found:
                failures, last = found[key]
                wait = max(wait, (last - now).total_seconds() + backoff.delay_s(failures))
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, session: Session, username: str, address: str, now: datetime) -> list[Throttled]:
        """Count a failure under both keys; the keys it just put into backoff (at its start, and each time
        it doubles) so the audit trail shows a throttle without a line per refused try."""
        since = now - self.forget
        login_failures.prune(session, since)
        started = []
        for key, backoff in zip(self._keys(username, address), (self.pair, self.account), strict=True):
            failures = login_failures.add_failure(session, key, now, since)
            over = failures - backoff.free
            if over >= 0 and (over & (over - 1)) == 0:  # 0, 1, 2, 4, 8...
                scope = "account from this address" if key.startswith("pair:") else "account"
                started.append(Throttled(scope, failures, math.ceil(backoff.delay_s(failures))))
        return started

    def succeeded(self, session: Session, username: str, address: str) -> None:
        """The right password: forget the failures from this address (the account-wide count decays)."""
        login_failures.clear(session, self._keys(username, address)[0])
