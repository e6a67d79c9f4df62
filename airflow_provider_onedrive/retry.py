"""The retry policy every request goes through, and the pacer that makes throttling pause a whole process.

Policy (see the transfer policy in the docs): 429/503 honour ``Retry-After`` (seconds, fractional, or an
HTTP-date) plus a little jitter; 5xx, 408, 429/503 without ``Retry-After`` and connection errors back off
exponentially with full jitter, capped; attempts and total time are bounded. 400, 403, 404, 409, 412 and 507
are never retried. 423 (locked) gets a few slower retries. A 401 is handled by the client (one token refresh).
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Pacer", "RetryPolicy", "parse_retry_after"]

#: Statuses retried with backoff (429/503 also honour Retry-After).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 509})
#: 423 Locked: the file is open in Office or checked out; worth a few slower tries.
LOCKED_STATUS = 423


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value: integer or fractional seconds, or an HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0
    return seconds


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried, how long to wait between attempts, and when to give up.

    :param max_attempts: attempts in all, the first included.
    :param backoff_base: first backoff ceiling in seconds; doubles each attempt (full jitter below it).
    :param backoff_max: cap of one backoff wait.
    :param max_total: give up when the next wait would pass this many seconds since the first attempt.
    :param max_retry_after: longest ``Retry-After`` honoured; a longer one fails at once (the caller can retry later).
    :param locked_attempts: attempts for 423 Locked responses.
    """

    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    max_total: float = 600.0
    max_retry_after: float = 300.0
    locked_attempts: int = 4
    locked_backoff: float = 5.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def is_retryable_status(self, status: int) -> bool:
        return status in RETRYABLE_STATUSES or status == LOCKED_STATUS

    def attempts_for(self, status: int | None) -> int:
        """Maximum attempts for a failure with this status (None: a connection error)."""
        return self.locked_attempts if status == LOCKED_STATUS else self.max_attempts

    def jitter(self, ceiling: float) -> float:
        """Full jitter: a uniform wait in [0, ceiling]. Overridable for tests."""
        return self.rng.uniform(0, ceiling)

    def backoff(self, attempt: int, status: int | None = None) -> float:
        """Wait before retry number ``attempt`` (1 = the first retry) when the server gave no Retry-After."""
        base = self.locked_backoff if status == LOCKED_STATUS else self.backoff_base
        ceiling = min(self.backoff_max, base * (2 ** (attempt - 1)))
        return self.jitter(ceiling)

    def delay(self, attempt: int, status: int | None, retry_after: float | None) -> float:
        """Wait before retry number ``attempt``: Retry-After plus up to 10% jitter when given, else backoff."""
        if retry_after is not None:
            return retry_after + self.rng.uniform(0, min(1.0, 0.1 * retry_after + 0.05))
        return self.backoff(attempt, status)

    def decide(self, *, attempt: int, status: int | None, retry_after: float | None, elapsed: float) -> float | None:
        """The one retry decision (sync client, async poller, broken download streams): seconds to wait before
        the next attempt, or None to give up.

        :param attempt: attempts made so far (1 after the first failure).
        :param status: the HTTP status, or None for a connection error or a broken stream.
        :param retry_after: the server's ``Retry-After`` in seconds, if it sent one.
        :param elapsed: seconds since the first attempt.
        """
        if status is not None and not self.is_retryable_status(status):
            return None
        if attempt >= self.attempts_for(status):
            return None
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        if elapsed + (retry_after or 0.0) > self.max_total:
            return None
        return self.delay(attempt, status, retry_after)


class Pacer:
    """A process-wide gate: after a throttling response every request of the same drive waits it out.

    ``pause(seconds)`` moves the gate forward (never back); ``wait()`` sleeps until it opens.
    """

    _registry: dict[str, Pacer] = {}
    _registry_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_at = 0.0

    @classmethod
    def for_key(cls, key: str) -> Pacer:
        """The one pacer shared by every client in this process that talks to ``key`` (e.g. host + drive)."""
        with cls._registry_lock:
            pacer = cls._registry.get(key)
            if pacer is None:
                pacer = cls._registry[key] = cls()
            return pacer

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._open_at = max(self._open_at, time.monotonic() + seconds)

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._open_at - time.monotonic())

    def wait(self, sleep: Callable[[float], object] = time.sleep) -> float:
        """Sleep until the gate is open; returns how long it slept."""
        slept = 0.0
        while (left := self.remaining()) > 0:
            sleep(left)
            slept += left
        return slept
