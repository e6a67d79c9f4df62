"""The emulator's HTTP(S) listeners: threaded HTTP/1.1 keep-alive servers that stream bodies in blocks.

Each request is parsed into a :class:`~.wire.Request`, run through the fault rules, handed to the application,
and logged (secret query values redacted). Plain-HTTP listeners send file content with ``sendfile``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import ssl
import struct
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode

from airflow_provider_onedrive.testing.faults import FaultRule, Faults
from airflow_provider_onedrive.testing.wire import (
    Body,
    GraphError,
    IdentityError,
    Request,
    Response,
    http_date,
)

__all__ = ["Listener", "RequestRecord", "redact", "retry_after_header"]

log = logging.getLogger(__name__)

#: Query parameters whose values are credentials and never reach the request log.
SECRET_PARAMS = frozenset({"tempauth", "access_token", "refresh_token", "client_secret", "code", "sig", "token_secret"})


@dataclass
class RequestRecord:
    """One entry of the request log; carries header names and sizes, never secret values.

    An entry is logged before its response is sent (so a client that has its response always finds it in
    the log); ``bytes_out`` counts each block before it is written, and ``duration`` is set when it is done.
    """

    method: str
    path: str
    query: tuple[str, ...]
    status: int
    headers: tuple[str, ...]
    bytes_in: int
    bytes_out: int
    host: str
    kind: str
    fault: str | None
    duration: float


class Application(Protocol):
    """What a listener needs from the emulator."""

    faults: Faults

    def classify(self, path: str) -> str: ...

    def handle(self, request: Request, fault: FaultRule | None) -> Response: ...

    def fault_response(self, request: Request, rule: FaultRule) -> Response: ...

    def record(self, entry: RequestRecord) -> None: ...

    @property
    def extra_latency(self) -> float: ...

    @property
    def max_drain(self) -> int: ...


class _Abort(Exception):
    """Drop the connection now (with a TCP reset)."""


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def redact(path: str, query_items: Iterable[tuple[str, str]]) -> str:
    items = [(k, "REDACTED" if k.lower() in SECRET_PARAMS else v) for k, v in query_items]
    return f"{path}?{urlencode(items, safe='$,/:@')}" if items else path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    timeout = 300
    server: Listener

    def log_message(self, format: str, *args: Any) -> None:
        return

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header from the emulator's clock, the one its timestamps use."""
        clock = getattr(self.server.app, "clock", None)
        return http_date(timestamp if timestamp is not None else clock.now() if clock else time.time())

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        started = time.perf_counter()
        app = self.server.app
        raw_path, _, raw_query = self.path.partition("?")
        query_items = parse_qsl(raw_query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers["content-length"]) if headers.get("content-length", "").isdigit() else None
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        body = Body(self.rfile, length, chunked)
        host = headers.get("host", f"{self.server.host}:{self.server.server_port}")
        request = Request(
            self.command, raw_path, dict(query_items), headers, body, f"{self.server.scheme}://{host}", host
        )
        kind = app.classify(raw_path)
        rules = app.faults.select(self.command, raw_path, kind)
        delay = app.extra_latency + sum(r.seconds for r in rules if r.action == "latency")
        fault = next((r for r in rules if r.action != "latency"), None)
        if delay > 0:
            time.sleep(delay)
        entry = RequestRecord(
            method=self.command,
            path=redact(raw_path, query_items),
            query=tuple(k for k, _ in query_items),
            status=0,
            headers=tuple(sorted(headers)),
            bytes_in=0,
            bytes_out=0,
            host=host,
            kind=kind,
            fault=fault.action if fault is not None else None,
            duration=0.0,
        )
        logged = False
        try:
            if fault is not None and fault.action == "reset" and fault.when == "before":
                raise _Abort
            response = self._respond(request, fault)
            if not body.complete and not body.drain(app.max_drain):
                self.close_connection = True
            if fault is not None and fault.action == "reset":
                raise _Abort
            entry.status, entry.bytes_in = response.status, body.bytes_read
            app.record(entry)
            logged = True
            self._send(request, response, fault, entry)
        except (_Abort, ConnectionError, ssl.SSLError, TimeoutError, OSError):
            self.close_connection = True
            if not logged:
                entry.bytes_in = body.bytes_read
                app.record(entry)
                logged = True
            self.server.abort(self.connection)
        finally:
            if not logged:
                entry.bytes_in = body.bytes_read
                app.record(entry)
            entry.duration = time.perf_counter() - started

    def _respond(self, request: Request, fault: FaultRule | None) -> Response:
        app = self.server.app
        try:
            if fault is not None and fault.action in ("status", "token_expired"):
                return app.fault_response(request, fault)
            return app.handle(request, fault)
        except (GraphError, IdentityError) as error:
            return error.response(request)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            raise
        except Exception:
            log.error("emulator error on %s %s:\n%s", request.method, request.path, traceback.format_exc())
            return GraphError(500, "generalException", "An unexpected error occurred in the emulator.").response(
                request
            )

    def _send(self, request: Request, response: Response, fault: FaultRule | None, entry: RequestRecord) -> None:
        """Write ``response``, counting body bytes in ``entry.bytes_out`` before each write."""
        self.send_response(response.status)
        self.send_header("request-id", request.request_id)
        self.send_header("client-request-id", request.header("client-request-id") or request.request_id)
        for name, value in response.headers.items():
            self.send_header(name, value)
        length = response.length if response.length is not None else len(response.body)
        if response.status not in (204, 304):
            self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if request.method == "HEAD" or response.status in (204, 304):
            return
        limit = fault.after_bytes if fault is not None and fault.action == "truncate" else None
        if limit is None and response.file_slice and not isinstance(self.connection, ssl.SSLSocket):
            path, offset, count = response.file_slice
            entry.bytes_out = count
            with open(path, "rb") as handle:
                self.connection.sendfile(handle, offset, count)
            return
        blocks = response.stream() if response.stream is not None else [response.body]
        for block in blocks:
            if limit is not None and entry.bytes_out + len(block) > limit:
                block = block[: limit - entry.bytes_out]
            if block:
                entry.bytes_out += len(block)
                self.wfile.write(block)
            if limit is not None and entry.bytes_out >= limit:
                # A clean close, not a reset: a reset lets the client's kernel drop bytes it already holds, so
                # where the client sees the stream break would vary from run to run.
                self.close_connection = True
                return


class Listener(socketserver.ThreadingMixIn, HTTPServer):
    """One listening socket (TLS or plain) serving the application in daemon threads."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, app: Application, ssl_context: ssl.SSLContext | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app = app
        self.host = host
        self.ssl_context = ssl_context
        self.scheme = "https" if ssl_context else "http"
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's slow getfqdn()
        self.server_name, self.server_port = self.host, self.server_address[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn = request
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            request.close()
            return
        with self._conn_lock:
            self._connections.add(conn)
        try:
            super().finish_request(conn, client_address)  # instantiates RequestHandlerClass
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            with self._conn_lock:
                self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def abort(self, conn: socket.socket) -> None:
        """Reset ``conn`` (SO_LINGER 0 then close)."""
        with self._conn_lock:
            self._connections.discard(conn)
        _reset(conn)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"graph-emulator-{self.server_port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close the socket and every open connection."""
        self.shutdown()
        self.server_close()
        with self._conn_lock:
            open_connections = list(self._connections)
            self._connections.clear()
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)


def retry_after_header(value: float | int | str | None, as_http_date: bool) -> dict[str, str]:
    """The ``Retry-After`` header for a throttling fault (none when ``value`` is None)."""
    if value is None:
        return {}
    if as_http_date:
        return {"Retry-After": http_date(time.time() + float(value))}
    return {"Retry-After": str(value)}
