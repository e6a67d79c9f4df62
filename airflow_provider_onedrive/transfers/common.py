"""Small helpers shared by the transfer modules: conflict checks, the create-then-read retry, and the one
integrity check of uploads and downloads."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow_provider_onedrive.errors import OneDriveIntegrityError, OneDriveNotFoundError, OneDriveValidationError

__all__ = [
    "CONFLICT_BEHAVIOURS",
    "CONFLICT_PARAM",
    "MIB",
    "StallStreak",
    "check_conflict",
    "check_seconds",
    "check_workers",
    "retry_not_found",
    "rewritable_by_sharepoint",
    "verify_transfer",
]

log = logging.getLogger("airflow_provider_onedrive.transfers")

KIB = 1024
MIB = 1024 * KIB
CONFLICT_BEHAVIOURS = ("fail", "replace", "rename")
#: How Graph takes the conflict behaviour: a query parameter (simple upload, copy) or a body field (sessions).
CONFLICT_PARAM = "@microsoft.graph.conflictBehavior"
#: Types SharePoint may rewrite after upload (metadata promotion), so size and hash can legitimately differ.
_REWRITTEN_SUFFIXES: tuple[str, ...] = (
    *(".docx", ".docm", ".xlsx", ".xlsm", ".pptx", ".pptm", ".doc", ".xls", ".ppt", ".pdf"),
    *(".htm", ".html", ".aspx", ".one", ".vsdx"),
)

T = TypeVar("T")


def check_conflict(conflict: Any) -> str:
    """Validate a conflict behaviour (``fail`` never overwrites, ``replace``, ``rename``)."""
    if conflict not in CONFLICT_BEHAVIOURS:
        raise OneDriveValidationError(f"conflict must be one of {', '.join(CONFLICT_BEHAVIOURS)}, got {conflict!r}")
    return str(conflict)


def check_workers(max_workers: Any, *, optional: bool = True) -> int | None:
    """Validate a concurrency: a positive integer (None = the client's default when ``optional``)."""
    if max_workers is None and optional:
        return None
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise OneDriveValidationError(f"max_workers must be a positive integer, got {max_workers!r}")
    return max_workers


def check_seconds(value: Any, what: str) -> float:
    """Validate a duration in seconds: a positive number (not text, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or value != value:
        raise OneDriveValidationError(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


class StallStreak:
    """Breaks of one stream in a row without progress, and since when: what the retry policy decides on."""

    def __init__(self) -> None:
        self.stalls = 0
        self.since = time.monotonic()
        self._at = -1

    def broke(self, position: int) -> None:
        """The stream broke at byte ``position``; progress since the previous break starts a new streak."""
        if position != self._at:
            self.stalls, self.since = 0, time.monotonic()
        self._at = position
        self.stalls += 1


def verify_transfer(
    direction: str, path: str, item: Mapping[str, Any], size: int, digest: str, *, verify: bool, lenient: bool
) -> None:
    """The integrity check of every transfer: our byte count and quickXorHash against the driveItem's.

    :param direction: ``"upload"`` (the committed item against what was sent) or ``"download"``.
    :param verify: False skips the check (the client's ``verify_hashes``).
    :param lenient: accept a mismatch for files SharePoint rewrites (Office, PDF, HTML), with a warning.
    """
    if not verify:
        return
    remote_size = item.get("size")
    remote_hash = ((item.get("file") or {}).get("hashes") or {}).get("quickXorHash")
    size_ok = remote_size is None or int(remote_size) == size
    hash_ok = remote_hash is None or remote_hash == digest
    if size_ok and hash_ok:
        if remote_hash is None:
            log.debug("%s %s: the server reported no quickXorHash; size checked only", direction, path)
        return
    ours = "sent" if direction == "upload" else "received"
    what = f"the server has {remote_size} bytes / quickXorHash {remote_hash}, we {ours} {size} bytes / {digest}"
    if lenient and rewritable_by_sharepoint(path):
        log.warning("%s %s: %s (SharePoint rewrites Office/PDF/HTML files; accepted)", direction, path, what)
        return
    raise OneDriveIntegrityError(f"{direction} {path}: the bytes differ from the server's file: {what}")


def rewritable_by_sharepoint(name: str) -> bool:
    """True for Office, PDF and HTML files, whose bytes SharePoint may rewrite after upload."""
    return name.lower().endswith(_REWRITTEN_SUFFIXES)


def retry_not_found(call: Callable[[], T], *, attempts: int = 5, delay: float = 0.1) -> T:
    """Run ``call``, retrying a 404 a few times with a short backoff.

    Only for reads of something this process has just created (a folder, then a file inside it): Graph is
    eventually consistent and may answer 404 for a moment. Everywhere else a 404 is final.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except OneDriveNotFoundError:
            if attempt == attempts:
                raise
            log.debug("404 right after a create; retrying in %.1f s (eventual consistency)", delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover
