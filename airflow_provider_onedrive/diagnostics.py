"""Connection checks with messages a person can act on (used by Test Connection and the CLI; no Airflow)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_provider_onedrive.config import ConnectionSettings
from airflow_provider_onedrive.drives import DriveLocator
from airflow_provider_onedrive.errors import (
    OneDriveAuthError,
    OneDriveConfigError,
    OneDriveError,
    OneDriveNotFoundError,
    OneDrivePermissionError,
    OneDriveTransportError,
)
from airflow_provider_onedrive.retry import RetryPolicy

__all__ = ["check_connection", "describe_drive", "format_size"]

#: A quick check: two attempts at most, never waiting long for throttling.
QUICK_RETRY = RetryPolicy(max_attempts=2, backoff_base=0.2, backoff_max=1.0, max_total=8.0, max_retry_after=2.0)


def format_size(size: float | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def describe_drive(drive: dict[str, Any]) -> str:
    """``drive 'Documents' (business) of Adele Vance, 1.2 MB used of 1.0 TB`` from a Graph drive resource."""
    owner = drive.get("owner") or {}
    who = next((v.get("displayName") for v in owner.values() if isinstance(v, dict) and v.get("displayName")), None)
    quota = drive.get("quota") or {}
    text = f"drive {drive.get('name')!r} ({drive.get('driveType', 'unknown type')})"
    if who:
        text += f" of {who}"
    if quota:
        text += f", {format_size(quota.get('used'))} used of {format_size(quota.get('total'))}"
    return text


def _locator_text(settings: ConnectionSettings) -> str:
    if settings.drive_type == "me":
        return "the signed-in user's drive (drive_type me)"
    extra = f", library {settings.library!r}" if settings.library else ""
    return f"drive_type {settings.drive_type} {settings.drive_value!r}{extra}"


def check_connection(settings: ConnectionSettings, provider: Any, make_graph: Callable[..., Any]) -> tuple[bool, str]:
    """Get a token, resolve the drive and read it; return ``(ok, message)`` without raising.

    :param make_graph: ``make_graph(settings, provider, retry=...)`` -> GraphClient.
    """
    stage = "signing in"
    try:
        provider.get_token()
        stage = "reading the drive"
        graph = make_graph(settings, provider, retry=QUICK_RETRY)
        try:
            who = ""
            if settings.is_delegated:
                me = graph.get_json("me", params={"$select": "displayName,userPrincipalName"})
                who = f" as {me.get('userPrincipalName') or me.get('displayName')}"
            base = DriveLocator.from_settings(settings).resolve(graph)
            drive = graph.get_json(base, params={"$select": "id,name,driveType,owner,quota,webUrl"})
        finally:
            graph.close()
    except OneDriveConfigError as exc:
        return False, str(exc)
    except OneDriveAuthError as exc:
        return False, f"Sign-in failed: {exc}"
    except OneDriveTransportError as exc:
        return False, f"Cannot reach Microsoft ({stage}): {exc}"
    except OneDrivePermissionError as exc:
        if exc.status == 401:
            return False, (
                f"Signed in, but Graph refused the token (401): {exc}. Check that tenant_id, cloud/graph_url and "
                "scopes belong together"
            )
        return False, (
            f"Signed in, but the application may not access {_locator_text(settings)} (403): {exc}. Grant "
            "Files.ReadWrite.All or Sites.ReadWrite.All (or Sites.Selected plus a grant on this site) with admin "
            "consent; see docs/connection.md"
        )
    except OneDriveNotFoundError as exc:
        return False, f"Signed in, but {_locator_text(settings)} was not found: {exc}. Check the drive extras"
    except OneDriveError as exc:
        return False, f"Failed while {stage}: {exc}"
    mode = "delegated sign-in" if settings.is_delegated else f"app-only ({settings.auth_type})"
    return True, f"Connected{who} with {mode}: {describe_drive(drive)}"
