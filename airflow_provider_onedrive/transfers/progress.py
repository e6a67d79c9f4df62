"""Progress reporting: a callback on every block, and a log line every few seconds or every 10%."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from airflow_provider_onedrive.transfers.models import ProgressEvent

__all__ = ["ProgressCallback", "ProgressReporter", "human_bytes"]

log = logging.getLogger("airflow_provider_onedrive.transfers.progress")

ProgressCallback = Callable[[ProgressEvent], None]


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


class ProgressReporter:
    """Tracks one transfer. Logs when ``interval`` seconds passed or a 10% step was crossed.

    Transfers smaller than ``log_min_bytes`` do not log progress lines (a folder of 10,000 small files would
    flood the task log); the callback still sees every update.
    """

    def __init__(
        self,
        path: str,
        total: int | None,
        direction: str,
        *,
        callback: ProgressCallback | None = None,
        interval: float = 5.0,
        log_min_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.path = path
        self.total = total
        self.direction = direction
        self.callback = callback
        self.interval = interval
        self.done = 0
        self.started = time.monotonic()
        self._logging = total is None or total >= log_min_bytes
        self._last_log = self.started
        self._last_step = 0

    def set(self, done: int) -> None:
        """Report the absolute number of bytes done (may go down when a transfer restarts)."""
        self.done = done
        now = time.monotonic()
        if self.callback is not None:
            self.callback(ProgressEvent(self.path, done, self.total, now - self.started, self.direction))
        if not self._logging:
            return
        step = int(done * 10 // self.total) if self.total else 0
        if step > self._last_step or now - self._last_log >= self.interval:
            self._last_step = max(step, self._last_step)
            self._last_log = now
            self._log(now)

    def advance(self, n: int) -> None:
        self.set(self.done + n)

    def _log(self, now: float) -> None:
        elapsed = now - self.started
        rate = human_bytes(self.done / elapsed) + "/s" if elapsed > 0 else "-"
        if self.total:
            log.info(
                "%s %s: %s of %s (%.0f%%), %s",
                self.direction,
                self.path,
                human_bytes(self.done),
                human_bytes(self.total),
                100.0 * self.done / self.total,
                rate,
            )
        else:
            log.info("%s %s: %s, %s", self.direction, self.path, human_bytes(self.done), rate)
