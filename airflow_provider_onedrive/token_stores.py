"""Where rotated delegated refresh tokens persist between runs (no Airflow imports).

Microsoft replaces the refresh token on every use and the old ones expire, so a connection that only keeps
the first one stops working. A store keeps the newest. Implementations: :class:`MemoryTokenStore` (this
process only), :class:`FileTokenStore` (a 0600 file, locked so concurrent workers on one machine are safe,
optionally AES-GCM encrypted), :class:`NullTokenStore` (persist nothing). Inside Airflow the hook defaults to
an Airflow Variable store (see ``hooks/onedrive.py``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from airflow_provider_onedrive.errors import OneDriveConfigError

if TYPE_CHECKING:
    from airflow_provider_onedrive.config import ConnectionSettings

__all__ = [
    "FileTokenStore",
    "MemoryTokenStore",
    "NullTokenStore",
    "RefreshTokenStore",
    "StoredToken",
    "store_for_settings",
    "token_fingerprint",
]

log = logging.getLogger("airflow_provider_onedrive.token_stores")

_RECORD_PREFIX = "onedrive-rt1|"


@runtime_checkable
class RefreshTokenStore(Protocol):
    """Persists one opaque string (the newest refresh token record). ``load`` returns None when empty.

    A store may also offer ``lock()``, a context manager held while a token is redeemed and replaced, so
    workers sharing the store never redeem the same token twice.
    """

    def load(self) -> str | None: ...

    def save(self, token: str) -> None: ...


def token_fingerprint(token: str | None) -> str:
    """A short hash naming a refresh token (never the token): what a stored token records as its origin."""
    return hashlib.sha256((token or "").encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StoredToken:
    """A refresh token with where it descends from (a fingerprint of the connection's token) and when saved,
    and optionally the access token obtained with it (``access_token``, valid until ``expires_at``, for
    ``identity``), so other workers use that instead of redeeming the refresh token again.

    A stored token is used instead of the connection's only when it descends from that same token: once a
    user pastes a new refresh token into the connection, older stored ones are ignored.
    """

    token: str
    origin: str | None = None
    saved_at: float = field(default_factory=time.time)
    access_token: str | None = None
    expires_at: float = 0.0
    identity: str | None = None

    def encode(self) -> str:
        data: dict[str, object] = {"token": self.token, "origin": self.origin, "saved_at": self.saved_at}
        if self.access_token:
            data.update(access_token=self.access_token, expires_at=self.expires_at, identity=self.identity)
        return _RECORD_PREFIX + json.dumps(data)

    @classmethod
    def decode(cls, value: str | None) -> StoredToken | None:
        """Parse a stored value; a bare token (e.g. seeded by hand) is accepted with unknown origin."""
        if not value:
            return None
        if not value.startswith(_RECORD_PREFIX):
            return cls(value.strip(), origin=None, saved_at=0.0)
        data = json.loads(value[len(_RECORD_PREFIX) :])
        return cls(
            str(data["token"]),
            origin=data.get("origin"),
            saved_at=float(data.get("saved_at") or 0.0),
            access_token=data.get("access_token") or None,
            expires_at=float(data.get("expires_at") or 0.0),
            identity=data.get("identity") or None,
        )

    def access_valid_for(self, now: float | None = None) -> float:
        """Seconds the stored access token stays valid (0 when there is none)."""
        if not self.access_token:
            return 0.0
        return max(0.0, self.expires_at - (time.time() if now is None else now))


class NullTokenStore:
    """Persists nothing (the connection's refresh token is used each run; it must be kept fresh elsewhere)."""

    def load(self) -> str | None:
        return None

    def save(self, token: str) -> None:
        return None


class MemoryTokenStore:
    """Keeps the newest token for the life of this object (tests, notebooks, single-process use)."""

    def __init__(self, token: str | None = None) -> None:
        self._value = token
        self._lock = threading.RLock()

    def load(self) -> str | None:
        return self._value

    def save(self, token: str) -> None:
        self._value = token

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with self._lock:
            yield


class FileTokenStore:
    """A private file (mode 0600, replaced atomically) guarded by an ``fcntl`` lock on ``<path>.lock``.

    :param path: the file; its directory is created (0700) if missing.
    :param key_material: secret bytes of the connection (e.g. client id + client secret). When given, the file
        is AES-GCM encrypted with a key derived from it, so a copied file is useless without the connection.
        A file that no longer decrypts (the connection's secret changed) reads as empty.
    """

    def __init__(self, path: str | os.PathLike[str], *, key_material: bytes | None = None) -> None:
        self.path = os.fspath(path)
        self._key = (
            hashlib.sha256(b"airflow-provider-onedrive/token-store\0" + key_material).digest() if key_material else None
        )
        self._thread_lock = threading.RLock()
        self._held = threading.local()

    def __repr__(self) -> str:
        return f"FileTokenStore({self.path!r}, encrypted={self._key is not None})"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across threads and processes of this machine (re-entrant within a thread)."""
        with self._thread_lock:
            if getattr(self._held, "depth", 0):
                self._held.depth += 1
                try:
                    yield
                finally:
                    self._held.depth -= 1
                return
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._held.depth = 1
                try:
                    yield
                finally:
                    self._held.depth = 0
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def load(self) -> str | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self._warn(f"cannot be read ({type(exc).__name__}: it is truncated, corrupt or not readable)")
            return None
        if not isinstance(data, dict):
            self._warn("does not hold a token record")
            return None
        if "ciphertext" in data:
            token = self._decrypt(data)
            if token is None:
                self._warn("cannot be decrypted with this connection's key (written for other credentials?)")
            return token
        return data.get("token")

    def _warn(self, problem: str) -> None:
        log.warning(
            "refresh-token store %s %s; this connection falls back to the refresh token in its settings, which "
            "may be older and expired. Delete the file, or sign in again (`airflow-onedrive login`) and update "
            "the connection's refresh_token",
            self.path,
            problem,
        )

    def save(self, token: str) -> None:
        with self.lock():
            payload = self._encrypt(self._key, token) if self._key else {"token": token}
            directory = os.path.dirname(self.path) or "."
            fd, tmp = tempfile.mkstemp(prefix=".onedrive-token-", dir=directory)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(payload, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    @staticmethod
    def _encrypt(key: bytes, token: str) -> dict[str, str]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        ciphertext = AESGCM(key).encrypt(nonce, token.encode(), b"onedrive-refresh-token")
        return {"nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(ciphertext).decode()}

    def _decrypt(self, data: dict[str, str]) -> str | None:
        if self._key is None:
            return None
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            plain = AESGCM(self._key).decrypt(
                base64.b64decode(data["nonce"]), base64.b64decode(data["ciphertext"]), b"onedrive-refresh-token"
            )
        except (InvalidTag, KeyError, ValueError):
            return None
        return plain.decode()


def store_for_settings(settings: ConnectionSettings, *, default: str = "memory") -> RefreshTokenStore:
    """The store named by the connection's ``token_store`` extra (``default`` when unset).

    Handles ``memory``, ``none`` and ``file:/path``; ``variable`` needs Airflow and is built by the hook.
    """
    spec = settings.token_store or default
    if spec == "none":
        return NullTokenStore()
    if spec == "memory":
        return MemoryTokenStore()
    if spec.startswith("file:"):
        material = "\0".join(
            s or ""
            for s in (settings.client_id, settings.client_secret, settings.private_key_pem, settings.refresh_token)
        )
        return FileTokenStore(spec[len("file:") :], key_material=material.encode())
    raise OneDriveConfigError(
        f"connection {settings.conn_id!r}: token_store {spec!r} is only available inside Airflow; use "
        "file:/absolute/path, memory or none"
    )
