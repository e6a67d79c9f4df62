"""JSON batching: up to 20 Graph requests in one ``POST $batch`` (https://learn.microsoft.com/graph/json-batching).

Graph answers a batch with 200 whatever its requests' statuses, in any order, and throttles each request on its
own; :func:`send_batch` matches answers to requests by id, resends the requests that the retry policy would
retry (429, 503, ... with their ``Retry-After``) in a smaller batch, and maps the others' errors to the usual
:class:`~airflow_provider_onedrive.errors.OneDriveError` subclasses. Only requests that are safe to send twice
belong in a batch: a lost batch response is retried whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_onedrive.errors import OneDriveError, OneDriveValidationError, error_from_response
from airflow_provider_onedrive.retry import parse_retry_after

if TYPE_CHECKING:
    from airflow_provider_onedrive.graph import GraphClient

__all__ = ["MAX_BATCH", "BatchStep", "send_batch"]

log = logging.getLogger("airflow_provider_onedrive.batching")

#: Requests Graph accepts in one batch.
MAX_BATCH = 20


@dataclass(frozen=True)
class BatchStep:
    """One request of a batch: method, Graph-relative path (``drives/x/items/y``), optional JSON body, and the
    words that name it in errors."""

    method: str
    path: str
    action: str
    body: dict[str, Any] | None = None


@dataclass
class _Answer:
    """One response of a batch, shaped like a ``requests.Response`` for :func:`error_from_response`."""

    status_code: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return self.body

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


def send_batch(graph: GraphClient, steps: Sequence[BatchStep]) -> list[dict[str, Any] | OneDriveError]:
    """Send ``steps`` (at most :data:`MAX_BATCH`) as one batch; per step, its response body or its error.

    Raises only when the batch request itself fails (for example a proxy or cloud without ``$batch``).
    """
    if not 1 <= len(steps) <= MAX_BATCH:
        raise OneDriveValidationError(f"a batch holds 1 to {MAX_BATCH} requests, got {len(steps)}")
    results: dict[int, dict[str, Any] | OneDriveError] = {}
    pending = list(range(len(steps)))
    started = time.monotonic()
    attempt = 0
    while pending:
        attempt += 1
        payload = {"requests": [_request(str(i), steps[i]) for i in pending]}
        response = graph.request("POST", "$batch", json=payload, action=f"batch of {len(pending)} requests")
        try:
            answers = {str(a.get("id")): a for a in response.json().get("responses") or [] if isinstance(a, dict)}
        except (ValueError, AttributeError):
            raise OneDriveError("POST $batch returned a body that is not a batch response") from None
        waits: list[float] = []
        again: list[int] = []
        for i in pending:
            raw = answers.get(str(i))
            answer = _Answer(int(raw.get("status") or 0), raw.get("body"), raw.get("headers") or {}) if raw else None
            if answer is not None and 200 <= answer.status_code < 400:
                results[i] = answer.body if isinstance(answer.body, dict) else {}
                continue
            status = answer.status_code if answer is not None else None
            retry_after = parse_retry_after(answer.header("Retry-After")) if answer is not None else None
            wait = graph.retry.decide(
                attempt=attempt, status=status, retry_after=retry_after, elapsed=time.monotonic() - started
            )
            if wait is not None:
                waits.append(wait)
                again.append(i)
            elif answer is None:
                results[i] = OneDriveError(f"{steps[i].action} failed: the batch response did not answer it")
            else:
                results[i] = error_from_response(answer, steps[i].action, attempts=attempt)
        pending = again
        if pending:
            log.warning(
                "batch: %d of its requests were throttled or failed for now; retrying them in %.2f s",
                len(pending),
                max(waits),
            )
            graph.pause(max(waits))
    return [results[i] for i in range(len(steps))]


def _request(request_id: str, step: BatchStep) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": request_id, "method": step.method, "url": "/" + step.path.lstrip("/")}
    if step.body is not None:
        entry["headers"] = {"Content-Type": "application/json"}
        entry["body"] = step.body
    return entry
