"""Small helpers shared by the transfer modules: conflict checks, the create-then-read retry, hash leniency."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from airflow_provider_onedrive.errors import OneDriveNotFoundError, OneDriveValidationError

__all__ = [
    "CONFLICT_BEHAVIOURS",
    "MIB",
    "check_conflict",
    "retry_not_found",
    "rewritable_by_sharepoint",
]

log = logging.getLogger("airflow_provider_onedrive.transfers")

KIB = 1024
MIB = 1024 * KIB
CONFLICT_BEHAVIOURS = ("fail", "replace", "rename")
#: Types SharePoint may rewrite after upload (metadata promotion), so size and hash can legitimately differ.
_REWRITTEN_SUFFIXES: tuple[str, ...] = (
    *(".docx", ".docm", ".xlsx", ".xlsm", ".pptx", ".pptm", ".doc", ".xls", ".ppt", ".pdf"),
    *(".htm", ".html", ".aspx", ".one", ".vsdx"),
)

T = TypeVar("T")


def check_conflict(conflict: str) -> str:
    if conflict not in CONFLICT_BEHAVIOURS:
        raise OneDriveValidationError(f"conflict={conflict!r} is not one of {', '.join(CONFLICT_BEHAVIOURS)}")
    return conflict


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
