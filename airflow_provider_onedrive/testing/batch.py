"""Graph's JSON batching: ``POST /v1.0/$batch`` with up to 20 requests, answered one by one in one response.

Follows https://learn.microsoft.com/graph/json-batching:

- The body is ``{"requests": [...]}``; each request has a string ``id`` (unique in the batch, compared without
  case), a ``method`` and a ``url`` relative to the version (``/me/drive/...``; an absolute URL is refused), and
  optionally ``headers`` and ``body``. A ``body`` needs a ``Content-Type`` header; a JSON body is an object, any
  other a base64 string.
- More than 20 requests, a missing ``id``/``method``/``url`` or a repeated ``id`` fail the whole batch with 400.
- The batch is authorised once: its ``Authorization`` header applies to every request.
- The answer is 200 whatever the requests' statuses; each response carries its request's ``id``, ``status``,
  ``headers`` and ``body``, and the responses "might appear in a different order" (the emulator answers last to
  first, so a client that matches responses to requests by position fails here as it would on Graph).
- A request whose ``dependsOn`` request failed gets 424 Failed Dependency.
- Each request is throttled and faulted on its own (a fault rule matching a ``PATCH`` matches it batched or not):
  a throttled request answers 429 with ``Retry-After`` inside a 200 batch.
"""

from __future__ import annotations

import base64
import io
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from airflow_provider_onedrive.testing.wire import Body, GraphError, Request, Response, json_response

if TYPE_CHECKING:
    from airflow_provider_onedrive.testing.parts import EmulatorParts

__all__ = ["MAX_BATCH", "Batches", "is_batch_path"]

#: Requests Graph takes in one batch.
MAX_BATCH = 20
_BATCH_PATHS = ("/v1.0/$batch", "/v1.0/%24batch")


def is_batch_path(path: str) -> bool:
    return path in _BATCH_PATHS


class Batches:
    """Answers ``$batch`` by running each request through the emulator's Graph endpoints."""

    def __init__(self, emulator: EmulatorParts) -> None:
        self.emu = emulator

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            raise GraphError(405, "BadRequest", "Specified HTTP method is not allowed for the request target.")
        requests = _parse(request.json())
        statuses: dict[str, int] = {}
        responses = []
        for entry in requests:
            key = entry["id"].casefold()
            failed = [d for d in entry.get("dependsOn") or [] if statuses.get(str(d).casefold(), 424) >= 400]
            if failed:
                answer = GraphError(424, "FailedDependency", "A request this request depends on failed.").response(
                    request
                )
            else:
                answer = self._one(request, entry)
            statuses[key] = answer.status
            responses.append(_render(entry["id"], answer))
        return json_response(200, {"responses": responses[::-1]})

    def _one(self, batch: Request, entry: dict[str, Any]) -> Response:
        try:
            sub = _sub_request(batch, entry)
        except GraphError as error:
            return error.response(batch)
        faults = self.emu.faults.select(sub.method, sub.path, "graph")
        fault = next((r for r in faults if r.action in ("status", "token_expired")), None)
        if fault is not None:
            return self.emu.fault_response(sub, fault)
        try:
            return self.emu.graph.handle(sub)
        except GraphError as error:
            return error.response(sub)


def _parse(payload: dict[str, Any]) -> list[dict[str, Any]]:
    requests = payload.get("requests")
    if not isinstance(requests, list) or not requests:
        raise GraphError(400, "BadRequest", "Invalid batch payload format: 'requests' must be a non-empty array.")
    if len(requests) > MAX_BATCH:
        raise GraphError(400, "BadRequest", f"Number of batch request steps exceeds the maximum of {MAX_BATCH}.")
    seen: set[str] = set()
    for entry in requests:
        if not isinstance(entry, dict):
            raise GraphError(400, "BadRequest", "Invalid batch payload format: each request must be an object.")
        for name in ("id", "method", "url"):
            if not isinstance(entry.get(name), str) or not entry[name]:
                raise GraphError(400, "BadRequest", f"Invalid batch payload format: a request has no '{name}'.")
        key = entry["id"].casefold()
        if key in seen:
            raise GraphError(400, "BadRequest", f"Batch request ids must be unique; '{entry['id']}' is repeated.")
        seen.add(key)
    return requests


def _sub_request(batch: Request, entry: dict[str, Any]) -> Request:
    url = entry["url"]
    if "://" in url:
        raise GraphError(400, "BadRequest", "Batch request URLs must be relative to the version, e.g. /me/drive.")
    path, _, query = url.partition("?")
    path = "/v1.0/" + path.lstrip("/")
    if is_batch_path(path):
        raise GraphError(400, "BadRequest", "A batch cannot contain another batch.")
    headers = {str(k).lower(): str(v) for k, v in (entry.get("headers") or {}).items()}
    raw = b""
    if "body" in entry:
        content_type = headers.get("content-type")
        if not content_type:
            raise GraphError(400, "BadRequest", "A batch request with a body needs a Content-Type header.")
        body = entry["body"]
        if "json" in content_type:
            raw = json.dumps(body).encode("utf-8")
        elif isinstance(body, str):
            raw = base64.b64decode(body)
        else:
            raise GraphError(400, "BadRequest", "A body that is not JSON must be base64 encoded.")
    authorization = batch.header("authorization")
    if authorization:
        headers["authorization"] = authorization
    stream = Body(io.BytesIO(raw), len(raw), False)
    return Request(
        entry["method"].upper(),
        path,
        dict(parse_qsl(query, keep_blank_values=True)),
        headers,
        stream,
        batch.origin,
        batch.host,
    )


def _render(request_id: str, response: Response) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": request_id, "status": response.status}
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    if headers:
        entry["headers"] = headers
    data = response.body if response.stream is None else b"".join(response.stream())
    if data:
        if "json" in headers.get("Content-Type", ""):
            entry["body"] = json.loads(data)
        else:
            entry["body"] = base64.b64encode(data).decode("ascii")
    return entry
