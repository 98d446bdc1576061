"""Dashboard accounts: username, password hash, role and the member a crew or driver account acts as.

Kept apart from the store on purpose: the store has no users table yet. `AccountStore` is the one interface
the rest of the dashboard uses; `FileAccountStore` keeps accounts in a JSON file (mode 0600) until a table
exists, at which point a table-backed store with the same three methods replaces it and nothing else changes.
Passwords are hashed with werkzeug.security (scrypt); plain passwords are never stored or logged.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from werkzeug.security import check_password_hash, generate_password_hash

ROLES = ("viewer", "crew", "driver", "coordinator")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,47}$")
MIN_PASSWORD_LENGTH = 10
# werkzeug's scrypt (N=2**15, r=8, p=1: ~0.1 s and 32 MiB a guess). Only the test suite lowers it
# (`use_password_method`), where a login per test at 0.1 s was a minute of CPU.
PASSWORD_METHOD = "scrypt:32768:8:1"
# Checked against when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("rhizome-no-such-account", method=PASSWORD_METHOD)


def use_password_method(method: str) -> None:
    """Hash new passwords (and the unknown-name check) with werkzeug `method`: the tests' cheap scrypt."""
    global PASSWORD_METHOD, _DUMMY_HASH
    PASSWORD_METHOD = method
    _DUMMY_HASH = generate_password_hash("rhizome-no-such-account", method=method)


@dataclass(frozen=True)
class Account:
    """One login; `member_id` links crew and driver accounts to their Member row."""

    username: str
    password_hash: str
    role: str
    member_id: int | None = None

    def __post_init__(self) -> None:
        if not USERNAME_RE.match(self.username):
            raise ValueError(
                f"username {self.username!r}: 2-48 of a-z 0-9 . _ - starting with a letter or digit"
            )
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r}: must be one of {', '.join(ROLES)}")
        if self.role in ("crew", "driver") and self.member_id is None:
            raise ValueError(f"a {self.role} account needs the member it acts as")


class AccountStore(Protocol):
    """Where accounts live (a JSON file now, a store table later)."""

    def get(self, username: str) -> Account | None: ...

    def put(self, account: Account) -> None: ...

    def __iter__(self) -> Iterator[Account]: ...


def make_account(username: str, password: str, role: str, member_id: int | None = None) -> Account:
    """A new account with `password` hashed; refuses passwords shorter than MIN_PASSWORD_LENGTH."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    return Account(username, generate_password_hash(password, method=PASSWORD_METHOD), role, member_id)


def authenticate(store: AccountStore, username: str, password: str) -> Account | None:
    """The account if `password` is right, else None (in about the same time either way)."""
    account = store.get(username)
    if account is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return account if check_password_hash(account.password_hash, password) else None


class MemoryAccountStore:
    """Accounts in memory, for tests and one-off demos."""

    def __init__(self, accounts: list[Account] | None = None) -> None:
        self._accounts = {a.username: a for a in accounts or []}

    def get(self, username: str) -> Account | None:
        return self._accounts.get(username)

    def put(self, account: Account) -> None:
        self._accounts[account.username] = account

    def __iter__(self) -> Iterator[Account]:
        return iter(sorted(self._accounts.values(), key=lambda a: a.username))


class FileAccountStore:
    """Accounts in a JSON file, re-read when it changes; writes are atomic and private (0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._cache: tuple[float, dict[str, Account]] | None = None

    def _load(self) -> dict[str, Account]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return {}
        if self._cache is None or self._cache[0] != mtime:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            accounts = {a["username"]: Account(**a) for a in raw.get("accounts", [])}
            self._cache = (mtime, accounts)
        return self._cache[1]

    def get(self, username: str) -> Account | None:
        with self._lock:
            return self._load().get(username)

    def put(self, account: Account) -> None:
        with self._lock:
            accounts = dict(self._load())
            accounts[account.username] = account
            self.path.parent.mkdir(parents=True, exist_ok=True)
            body = {"accounts": [asdict(a) for a in sorted(accounts.values(), key=lambda a: a.username)]}
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".accounts-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(body, handle, indent=1)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
            self._cache = None

    def __iter__(self) -> Iterator[Account]:
        with self._lock:
            return iter(sorted(self._load().values(), key=lambda a: a.username))
