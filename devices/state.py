"""Persisted device counters: `session` (one per process start) and `seq` (never reused), in a JSON file.

The gateway drops a reading whose (device, seq) it already stored, and ignores a birth whose session is older
than the one it knows, so both numbers must keep growing across restarts, crashes and lost state files:

* `seq` is reserved in blocks: the file records the first number not yet handed out *or reserved*, so a crash
  can skip at most `block` numbers (a gap) but never repeat one, and the file is written once per block.
* a missing or unreadable file starts both counters from the clock (seq: Unix milliseconds, session: Unix
  seconds), which is above anything an earlier incarnation of the device can have used.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

from gateway.contract.payloads import MAX_SEQ

log = logging.getLogger(__name__)
FORMAT: Final = "rhizome-device-state/1"
DEFAULT_BLOCK: Final = 100


class DeviceState:
    """The session number of this run and the next seq to hand out, persisted atomically."""

    def __init__(self, path: Path, device: str, *, block: int = DEFAULT_BLOCK, durable: bool = True) -> None:
        """Load the file (or start from the clock) and persist the incremented session at once."""
        if block < 1:
            raise ValueError(f"seq block must be at least 1, got {block}")
        self.path = Path(path)
        self.device = device
        self.block = block
        self.durable = durable
        self._lock = threading.Lock()
        previous = self._read()
        now = time.time()
        self.session: int = int(previous["session"]) + 1 if previous else int(now)
        self._next: int = int(previous["next_seq"]) if previous else max(1, int(now * 1000))
        self._reserved = self._next + block  # reserve the first block now: no write at the first take()
        self._save(self._reserved)

    @property
    def next_seq(self) -> int:
        """The seq the next call to take() returns."""
        return self._next

    def take(self) -> int:
        """Hand out the next seq, reserving (and persisting) a new block when the current one is used up."""
        with self._lock:
            if self._next >= self._reserved:
                self._reserved = self._next + self.block
                self._save(self._reserved)
            seq = self._next
            if seq > MAX_SEQ:
                raise ValueError(f"seq of {self.device} exhausted the protocol range")
            self._next += 1
            return seq

    def issued(self, seq: int) -> bool:
        """True when `seq` came from take(), so publishing it cannot collide with a later reservation."""
        return 0 <= seq < self._next

    def close(self) -> None:
        """Persist the exact next seq on a clean stop, so a clean restart leaves no gap."""
        with self._lock:
            self._reserved = self._next
            self._save(self._next)

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error(
                "device state %s unreadable (%s): restarting seq and session from the clock", self.path, exc
            )
            return None
        valid = (
            isinstance(data, dict)
            and data.get("format") == FORMAT
            and all(type(data.get(key)) is int and data[key] >= 0 for key in ("session", "next_seq"))
        )
        if not valid:
            log.error("device state %s malformed: restarting seq and session from the clock", self.path)
            return None
        return dict(data)

    def _save(self, next_seq: int) -> None:
        """Write a temp file and os.replace it: after a power cut the old or the new file, never half."""
        body = {"format": FORMAT, "device": self.device, "session": self.session, "next_seq": next_seq}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(body, fh)
                if self.durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
