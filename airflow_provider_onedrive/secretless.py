"""Secretless credentials: the federated token file of workload identity federation and MSAL's managed-identity
client (no Airflow imports). :mod:`~airflow_provider_onedrive.auth` builds token providers from them."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_onedrive.errors import OneDriveAuthError

if TYPE_CHECKING:
    from airflow_provider_onedrive.config import ConnectionSettings

__all__ = ["FederatedTokenFile", "managed_identity_client", "managed_identity_endpoint", "managed_identity_name"]


class FederatedTokenFile:
    """The client assertion of workload identity federation: a projected service-account token read from a file.

    The kubelet replaces the file before the token expires (by default hourly), so the file is read again whenever
    its modification time, size or inode changes, and whenever the token read last is within a minute of its own
    ``exp``: a rotated token is used at the next token request, and an assertion is never reused past its expiry.
    MSAL calls this object each time it sends a token request.
    """

    #: An assertion this close to its ``exp`` is read again (and sent only if the file has nothing newer).
    EXPIRY_MARGIN = 60.0

    def __init__(self, path: str, conn_id: str) -> None:
        self.path = path
        self.conn_id = conn_id
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._assertion: str | None = None
        self._expires_at: float | None = None

    def __call__(self) -> str:
        return self.read()

    def read(self) -> str:
        """The current assertion (from the file, or the copy read last while the file is unchanged and unexpired)."""
        with self._lock:
            try:
                info = os.stat(self.path)
                stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
                fresh = self._expires_at is None or time.time() < self._expires_at - self.EXPIRY_MARGIN
                if self._assertion is not None and stamp == self._stamp and fresh:
                    return self._assertion
                with open(self.path, encoding="utf-8") as handle:
                    assertion = handle.read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
                raise OneDriveAuthError(
                    f"connection {self.conn_id!r}: cannot read the federated token file {self.path!r} ({reason}); "
                    "check that the service account token is projected into this pod and readable by the Airflow "
                    "user"
                ) from None
            if not assertion:
                raise OneDriveAuthError(
                    f"connection {self.conn_id!r}: the federated token file {self.path!r} is empty; check the "
                    "projected service account token volume"
                )
            self._assertion, self._stamp, self._expires_at = assertion, stamp, _jwt_expiry(assertion)
            return assertion

    @property
    def current(self) -> str | None:
        """The assertion read last (to scrub it from messages), without reading the file."""
        return self._assertion


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (unverified), or None when the token is not a JWT with one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(claims["exp"]) if isinstance(claims, dict) and "exp" in claims else None
    except (ValueError, TypeError, KeyError):
        return None


def _managed_identity(settings: ConnectionSettings) -> Any:
    """MSAL's description of the connection's managed identity: system-assigned, or user-assigned by one id."""
    import msal

    if settings.managed_identity_id_type is None:
        return msal.SystemAssignedManagedIdentity()
    return msal.UserAssignedManagedIdentity(**{settings.managed_identity_id_type: settings.managed_identity_id})


def managed_identity_client(settings: ConnectionSettings, http_client: Any) -> Any:
    """MSAL's managed-identity client (no network I/O until a token is asked for). MSAL picks the endpoint from the
    environment: IDENTITY_ENDPOINT + IDENTITY_HEADER (App Service, Functions), else the Instance Metadata Service
    (VMs, VM scale sets, AKS nodes)."""
    import msal

    client = msal.ManagedIdentityClient(_managed_identity(settings), http_client=http_client)
    client.onedrive_http_client = http_client  # reused when the client is rebuilt to drop its token cache
    return client


def managed_identity_endpoint() -> str:
    """Where MSAL will ask for a managed-identity token, as it decides from the environment (for messages)."""
    if os.environ.get("IDENTITY_ENDPOINT") and os.environ.get("IDENTITY_HEADER"):
        return f"the managed identity endpoint {os.environ['IDENTITY_ENDPOINT']} (IDENTITY_ENDPOINT)"
    host = os.environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://169.254.169.254").rstrip("/")
    return (
        f"the Instance Metadata Service at {host} (is this an Azure VM, VM scale set, AKS node or App Service with "
        "a managed identity assigned?)"
    )


def managed_identity_name(settings: ConnectionSettings) -> str:
    if settings.managed_identity_id_type is None:
        return "system-assigned"
    return f"user-assigned, {settings.managed_identity_id_type} {settings.managed_identity_id}"
