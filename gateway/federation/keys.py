"""A node's Ed25519 key: it signs the node's facts so that peers relaying them cannot forge or alter them."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from gateway.contract.federation import Fact

KEY_FILE = "node.key"


class NodeKey:
    """The private key of this node, kept in `<data_dir>/node.key` (0600; 32 raw bytes)."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def generate(cls) -> NodeKey:
        """A fresh key (tests and `rhizome node init`)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> NodeKey:
        """The key at `path`, created owner-only on first use."""
        if path.exists():
            return cls(Ed25519PrivateKey.from_private_bytes(path.read_bytes()))
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
        return cls(key)

    @property
    def public(self) -> str:
        """The public key as base64, as the federation file lists it."""
        raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def sign(self, fact: Fact) -> Fact:
        """`fact` with its signature."""
        return replace(fact, sig=base64.b64encode(self._private.sign(fact.signed_bytes())).decode())


def verify(fact: Fact, public_key: str) -> bool:
    """Whether `fact` was signed by the holder of `public_key` (base64) and not changed since."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        key.verify(base64.b64decode(fact.sig), fact.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True
