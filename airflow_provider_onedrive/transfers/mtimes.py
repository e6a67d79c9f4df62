"""Modification times of small uploaded files, set 20 at a time through Graph's JSON batching.

Graph's simple upload (``PUT .../content``) takes no metadata, so keeping a file's local modification time costs
a ``PATCH`` of its ``fileSystemInfo`` after the content: two requests a file. A folder upload instead hands each
small file's time to :class:`DeferredMtimes`, which sends the PATCHes in ``$batch`` requests of
:data:`~airflow_provider_onedrive.batching.MAX_BATCH`: one request a file plus one per 20. A PATCH is sent only
after its file's content is committed, and :meth:`DeferredMtimes.finish` sends the rest and reports what failed.
Where ``$batch`` itself is refused (a proxy or cloud without it), each PATCH is sent on its own.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_onedrive.batching import MAX_BATCH, BatchStep, send_batch
from airflow_provider_onedrive.errors import OneDriveError
from airflow_provider_onedrive.transfers.models import file_system_info

if TYPE_CHECKING:
    from airflow_provider_onedrive.transfers.context import DriveContext

__all__ = ["DeferredMtimes"]

log = logging.getLogger("airflow_provider_onedrive.transfers.mtimes")

#: Statuses of the ``$batch`` request itself that mean the endpoint is not there: fall back to one PATCH each.
_NO_BATCH = (400, 404, 405, 501)


@dataclass(frozen=True)
class _Pending:
    item_id: str
    dest: str
    mtime: float


class DeferredMtimes:
    """Collects ``(item, mtime)`` pairs from upload threads; the thread that fills a batch sends it."""

    def __init__(self, ctx: DriveContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._failed: list[tuple[str, OneDriveError]] = []
        self._one_by_one = False

    def add(self, item_id: str, dest: str, mtime: float) -> None:
        """Set ``dest``'s modification time once enough are waiting (its content is already committed)."""
        with self._lock:
            self._pending.append(_Pending(item_id, dest, mtime))
            group = self._take() if len(self._pending) >= MAX_BATCH else []
        if group:
            self._send(group)

    def finish(self) -> list[tuple[str, OneDriveError]]:
        """Send what is still waiting; ``(remote path, error)`` of every file whose time could not be set."""
        while True:
            with self._lock:
                group = self._take()
            if not group:
                break
            self._send(group)
        with self._lock:
            return list(self._failed)

    def _take(self) -> list[_Pending]:
        """Up to one batch of the waiting PATCHes, removed from the queue (called under the lock)."""
        group, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        return group

    def _send(self, group: list[_Pending]) -> None:
        steps = [
            BatchStep(
                "PATCH",
                self.ctx.by_id(p.item_id),
                f"set modified time of {p.dest}",
                {"fileSystemInfo": file_system_info(p.mtime)},
            )
            for p in group
        ]
        outcomes: list[object]
        if self._one_by_one or len(steps) == 1:
            outcomes = [self._patch(step) for step in steps]
        else:
            try:
                outcomes = list(send_batch(self.ctx.graph, steps))
            except OneDriveError as exc:
                if exc.status not in _NO_BATCH:
                    outcomes = [exc] * len(steps)
                else:
                    log.info("Graph refused $batch (HTTP %s); setting modification times one by one", exc.status)
                    self._one_by_one = True
                    outcomes = [self._patch(step) for step in steps]
        failed = [(p.dest, o) for p, o in zip(group, outcomes, strict=True) if isinstance(o, OneDriveError)]
        with self._lock:
            self._failed.extend(failed)

    def _patch(self, step: BatchStep) -> object:
        try:
            return self.ctx.graph.request("PATCH", step.path, json=step.body, action=step.action).json()
        except OneDriveError as exc:
            return exc
