"""OneDriveFileTrigger: the deferred half of OneDriveFileSensor, run by the triggerer.

Nothing here may block the triggerer's event loop: Graph is polled through :mod:`.async_graph` (httpx, shared
pooled clients and listings per connection, blocking set-up in worker threads), and waits are ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_onedrive.compat import BaseTrigger, TriggerEvent
from airflow_provider_onedrive.errors import OneDriveError
from airflow_provider_onedrive.matching import FileCriteria
from airflow_provider_onedrive.triggers.async_graph import (
    MAX_SHARED_AGE,
    MAX_START_JITTER,
    Poller,
    TriggerSession,
    sessions,
)

__all__ = ["OneDriveFileTrigger"]


class OneDriveFileTrigger(BaseTrigger):
    """Poll a drive until files match, then fire ``{"status": "success", "matches": [...]}``.

    Errors fire ``{"status": "error", "message": ...}`` (never a secret). Parameters are those of
    :class:`~airflow_provider_onedrive.sensors.onedrive.OneDriveFileSensor`, already rendered.

    :param poke_interval: seconds between polls.
    """

    def __init__(
        self,
        *,
        path: str,
        onedrive_conn_id: str = "onedrive_default",
        min_size: int | None = None,
        modified_after: str | None = None,
        stable_for: float = 0.0,
        case_sensitive: bool = False,
        poke_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.path = path
        self.onedrive_conn_id = onedrive_conn_id
        self.min_size = min_size
        self.modified_after = modified_after
        self.stable_for = stable_for
        self.case_sensitive = case_sensitive
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "path": self.path,
                "onedrive_conn_id": self.onedrive_conn_id,
                "min_size": self.min_size,
                "modified_after": self.modified_after,
                "stable_for": self.stable_for,
                "case_sensitive": self.case_sensitive,
                "poke_interval": self.poke_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            criteria = FileCriteria(self.path, self.min_size, self.modified_after, self.stable_for, self.case_sensitive)
            session = await sessions.get(self.onedrive_conn_id)
            matches = await self._wait(session, criteria)
        except OneDriveError as exc:
            yield TriggerEvent({"status": "error", "message": str(exc)})
            return
        except Exception as exc:  # anything unexpected ends the wait with a message, not a silent hang
            self.log.exception("OneDriveFileTrigger for %s failed", self.path)
            yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
            return
        yield TriggerEvent({"status": "success", "matches": matches})

    async def _wait(self, session: TriggerSession, criteria: FileCriteria) -> list[dict[str, Any]]:
        # Spread the first polls: a triggerer (re)starting many triggers at once must not stampede Graph,
        # nor run every trigger's first request in one turn of the event loop.
        async with session.attached():
            await asyncio.sleep(random.uniform(0, min(self.poke_interval, MAX_START_JITTER)))
            poller = Poller(session, criteria, max_age=min(self.poke_interval / 2, MAX_SHARED_AGE))
            while True:
                records = await poller.candidates()
                matches = criteria.select(records, time.time())
                if matches:
                    self.log.info("Found %d matching file(s) for %s", len(matches), self.path)
                    return matches
                await asyncio.sleep(self.poke_interval)
