"""HTTP plumbing shared by the emulator's endpoints: requests, responses, Graph and identity error bodies."""

from __future__ import annotations

import datetime
import email.utils
import functools
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BLOCK_SIZE",
    "Body",
    "GraphError",
    "IdentityError",
    "Request",
    "Response",
    "http_date",
    "iso_time",
    "json_response",
    "parse_time",
]

#: Size of the blocks request and response bodies are streamed in.
BLOCK_SIZE = 1024 * 1024


def iso_time(epoch: float) -> str:
    """ISO 8601 UTC with a ``Z`` suffix and whole seconds, as Graph writes timestamps."""
    return _iso_second(int(epoch))


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return datetime.datetime.fromtimestamp(second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> float:
    """Parse an ISO 8601 timestamp (``Z`` or offset, fractional seconds allowed) into epoch seconds."""
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def http_date(epoch: float) -> str:
    """An RFC 7231 HTTP-date."""
    return email.utils.formatdate(epoch, usegmt=True)


class Body:
    """A request body read from the connection in blocks, with ``Content-Length`` or chunked framing."""

    def __init__(self, rfile: io.BufferedIOBase, length: int | None, chunked: bool) -> None:
        self._rfile = rfile
        self.length = length
        self.chunked = chunked
        self._remaining = length or 0
        self._chunk_left = 0
        self._done = not chunked and not length
        self.bytes_read = 0

    @property
    def complete(self) -> bool:
        """True once the whole body has been consumed."""
        return self._done

    def blocks(self, block_size: int = BLOCK_SIZE) -> Iterator[bytes]:
        """Yield the body in blocks of at most ``block_size`` bytes; raises ``ConnectionError`` if cut short."""
        while not self._done:
            data = self._read_some(block_size)
            if data:
                self.bytes_read += len(data)
                yield data

    def read(self, limit: int = 16 * 1024 * 1024) -> bytes:
        """The whole body (for small JSON and form bodies); raises ``ValueError`` above ``limit`` bytes."""
        parts = []
        total = 0
        for block in self.blocks():
            total += len(block)
            if total > limit:
                raise ValueError("request body too large")
            parts.append(block)
        return b"".join(parts)

    def drain(self, limit: int) -> bool:
        """Discard the rest of the body if it is at most ``limit`` bytes; False when it was left unread."""
        if not self.chunked and self._remaining > limit:
            return False
        for _ in self.blocks():
            pass
        return True

    def _read_some(self, block_size: int) -> bytes:
        if not self.chunked:
            data = self._rfile.read(min(block_size, self._remaining))
            if not data:
                raise ConnectionError("request body cut short")
            self._remaining -= len(data)
            self._done = self._remaining == 0
            return data
        if self._chunk_left == 0:
            size_line = self._rfile.readline(1024)
            if not size_line:
                raise ConnectionError("chunked request body cut short")
            self._chunk_left = int(size_line.split(b";")[0].strip() or b"0", 16)
            if self._chunk_left == 0:
                while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                self._done = True
                return b""
        data = self._rfile.read(min(block_size, self._chunk_left))
        if not data:
            raise ConnectionError("chunked request body cut short")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(16)
        return data


@dataclass
class Request:
    """One parsed HTTP request as the endpoints see it."""

    method: str
    path: str  # percent-encoded, without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Body
    origin: str  # scheme://host:port of the listener as the client addressed it
    host: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> dict[str, Any]:
        """The body parsed as a JSON object (empty body -> empty dict)."""
        raw = self.body.read()
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc
        if not isinstance(value, dict):
            raise GraphError(400, "BadRequest", "The request payload must be a JSON object.")
        return value


@dataclass
class Response:
    """A response: status, headers, and either ``body`` bytes or a block ``stream`` of ``length`` bytes."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: Callable[[], Iterator[bytes]] | None = None
    length: int | None = None
    file_slice: tuple[str, int, int] | None = None  # (path, offset, count) for sendfile on plain sockets


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    all_headers = {"Content-Type": "application/json; odata.metadata=minimal; charset=utf-8"}
    all_headers.update(headers or {})
    return Response(status, all_headers, body)


class GraphError(Exception):
    """A Graph error: rendered as ``{"error": {"code", "message", "innerError": {...}}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        inner_code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code
        self.headers = headers or {}

    def response(self, request: Request) -> Response:
        inner: dict[str, Any] = {
            "date": iso_time(time.time()),
            "request-id": request.request_id,
            "client-request-id": request.header("client-request-id") or request.request_id,
        }
        if self.inner_code:
            inner["code"] = self.inner_code
        payload = {"error": {"code": self.code, "message": self.message, "innerError": inner}}
        return json_response(self.status, payload, self.headers)


class IdentityError(Exception):
    """An identity-platform error in Entra ID's format (``error``, ``error_description`` with AADSTS code...)."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(f"{error}: AADSTS{aadsts}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def response(self, request: Request) -> Response:
        now = time.time()
        stamp = datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        correlation = request.header("client-request-id") or str(uuid.uuid4())
        description = (
            f"AADSTS{self.aadsts}: {self.description} Trace ID: {request.request_id} "
            f"Correlation ID: {correlation} Timestamp: {stamp}"
        )
        payload = {
            "error": self.error,
            "error_description": description,
            "error_codes": [self.aadsts],
            "timestamp": stamp,
            "trace_id": request.request_id,
            "correlation_id": correlation,
            "error_uri": f"{request.origin}/error?code={self.aadsts}",
        }
        return json_response(self.status, payload)
