"""Encryption at rest and the blind index.

Personal data (names, phone numbers, message bodies, written reports, leave
reasons, warnings, shared points) is stored as AES-256-GCM ciphertext from
the `cryptography` package, in the envelope

    c1:<key id>:<base64(nonce 12 bytes || ciphertext || tag)>

The key id (8 hex digits of the key's SHA-256) names the key that wrote the
value, so several keys can be live during a rotation: values are written with
the first (newest) key and read with whichever key wrote them. Each column
has its own associated data ("supervisee.name", ...), so a ciphertext copied
into another column does not decrypt.

People are looked up by phone through a blind index: HMAC-SHA256 of the E.164
number under a separate index key, hex. Equal numbers give equal indexes; the
index says nothing about the number without the key.

The keys come from the settings (never from the database) and travel with the
engine: `attach(engine, keyring)`; the column types find them on the dialect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Text, TypeDecorator

PREFIX = "c1"
INDEX_LEN = 64  # hex characters of a blind index


class KeyringError(ValueError):
    """A key is missing or malformed; the message says which and how to fix it."""


class DecryptError(ValueError):
    """A stored value could not be decrypted (no key with its id, or it was altered)."""


def new_key() -> str:
    """A fresh random 256-bit key, base64url-encoded (for CHECKIN_DATA_KEYS or CHECKIN_INDEX_KEY)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def _decode_key(value: str, what: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(value.strip().encode("ascii") + b"=" * (-len(value.strip()) % 4))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise KeyringError(f"{what}: not a 256-bit key in base64url (make one with `checkin keys generate`)")
    return raw


def key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:8]


@dataclass
class Keyring:
    """The data keys (newest first) and the blind-index key."""

    data_keys: list[bytes]
    index_key: bytes
    _aead: dict[str, AESGCM] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.data_keys:
            raise KeyringError("no data key")
        self._aead = {key_id(k): AESGCM(k) for k in self.data_keys}
        self.primary = key_id(self.data_keys[0])
        self._prefix = f"{PREFIX}:{self.primary}:"

    @classmethod
    def parse(cls, data_keys: str, index_key: str) -> Keyring:
        """From the settings' text: data keys comma-separated, newest first; one index key."""
        keys = [k for k in (p.strip() for p in (data_keys or "").split(",")) if k]
        if not keys:
            raise KeyringError("CHECKIN_DATA_KEYS is empty")
        raw = [_decode_key(k, f"CHECKIN_DATA_KEYS item {i + 1}") for i, k in enumerate(keys)]
        return cls(raw, _decode_key(index_key or "", "CHECKIN_INDEX_KEY"))

    @classmethod
    def generate(cls) -> Keyring:
        """Fresh random keys (tests, benchmarks, the demo's throw-away database)."""
        return cls([os.urandom(32)], os.urandom(32))

    def encrypt(self, purpose: str, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead[self.primary].encrypt(nonce, plaintext.encode("utf-8"), purpose.encode("ascii"))
        return self._prefix + binascii.b2a_base64(nonce + sealed, newline=False).decode("ascii")

    def decrypt(self, purpose: str, token: str) -> str:
        parts = token.split(":", 2)
        if len(parts) != 3 or parts[0] != PREFIX or not parts[2]:
            raise DecryptError(f"{purpose}: the stored value is not encrypted")
        aead = self._aead.get(parts[1])
        if aead is None:
            raise DecryptError(f"{purpose}: written with key {parts[1]}, which is not in CHECKIN_DATA_KEYS")
        try:
            raw = binascii.a2b_base64(parts[2], strict_mode=True)
            return aead.decrypt(raw[:12], raw[12:], purpose.encode("ascii")).decode("utf-8")
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptError(f"{purpose}: the stored value was altered or belongs elsewhere") from None

    def is_current(self, token: str | None) -> bool:
        """True when `token` was written with the newest key (or is NULL)."""
        return token is None or token.startswith(f"{PREFIX}:{self.primary}:")

    def blind(self, value: str | None) -> str | None:
        """The blind index of `value` (an E.164 number): keyed HMAC-SHA256, hex."""
        if value is None:
            return None
        return hmac.new(self.index_key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def attach(engine, keyring: Keyring | None):
    """Give `engine` its keys; returns the engine."""
    engine.dialect.checkin_keyring = keyring
    return engine


def keyring_for(bind) -> Keyring:
    """The keyring of an engine, connection, session or dialect."""
    if hasattr(bind, "get_bind"):
        bind = bind.get_bind()
    dialect = getattr(bind, "dialect", bind)
    keyring = getattr(dialect, "checkin_keyring", None)
    if keyring is None:
        raise KeyringError("no encryption keys: set CHECKIN_DATA_KEYS and CHECKIN_INDEX_KEY "
                        "(or a key file, see `checkin keys generate`)")
    return keyring


class Encrypted(TypeDecorator):
    """A text column stored encrypted; `purpose` (table.column) is the associated data."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return keyring_for(dialect).encrypt(self.purpose, self.to_text(value))

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return self.from_text(keyring_for(dialect).decrypt(self.purpose, value))

    def to_text(self, value) -> str:
        return str(value)

    def from_text(self, value: str):
        return value


class EncryptedFloat(Encrypted):
    """A number (a latitude, a longitude) stored encrypted."""

    cache_ok = True

    def to_text(self, value) -> str:
        return repr(float(value))

    def from_text(self, value: str):
        return float(value)
