"""Small helpers shared by the transfer modules: conflict checks, the create-then-read retry, hash leniency."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from airflow_provider_onedrive.errors import OneDriveNotFoundError, OneDriveValidationError
from airflow_provider_onedrive.hashing import QuickXorHash

__all__ = [
    "CONFLICT_BEHAVIOURS",
    "MIB",
    "BackgroundHash",
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


class BackgroundHash:
    """quickXorHash fed in order, computed on a helper thread for big blocks so hashing overlaps network I/O.

    Blocks under 1 MiB are hashed inline (no thread for small files). At most ``depth`` blocks wait in the
    queue, so memory stays bounded. ``length`` counts bytes fed so far; ``b64digest()`` waits for the queue.
    """

    _INLINE = 1024 * 1024

    def __init__(self, depth: int = 2) -> None:
        self._hasher = QuickXorHash()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future[None]] = deque()
        self._depth = depth
        self.length = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.length += len(data)
        if len(data) < self._INLINE and not self._pending:
            self._hasher.update(data)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="onedrive-hash")
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._hasher.update, bytes(data)))

    def b64digest(self) -> str:
        while self._pending:
            self._pending.popleft().result()
        return self._hasher.b64digest()

    def reset(self) -> None:
        """Start over from byte 0 (a download that must restart)."""
        while self._pending:
            self._pending.popleft().result()
        self._hasher = QuickXorHash()
        self.length = 0

    def close(self) -> None:
        """Stop the helper thread (pending blocks are dropped if the transfer failed)."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
