"""The triggers' asynchronous side of Graph: pooled httpx clients, per-connection sessions, shared answers and
the poller, on the triggerer's event loop (no blocking call on it).

One triggerer runs thousands of triggers on one event loop. Blocking parts (reading the connection, MSAL token
acquisition, loading a CA bundle, resolving a SharePoint site) run in worker threads, once per connection and
event loop, shared by every trigger watching through that connection. Triggers of one connection also share a
few HTTP clients (a handful of pooled connections instead of one per trigger) and their listings: triggers
watching the same folder at the same time send one request, not one each. That keeps Graph's throttling budget
and the triggerer's heap (whose full garbage collections stall its loop) small. Retries follow the same
:meth:`~airflow_provider_onedrive.retry.RetryPolicy.decide` as the sync client.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_onedrive.errors import (
    OneDriveError,
    OneDriveServerError,
    OneDriveThrottledError,
    OneDriveTransportError,
    error_from_response,
)
from airflow_provider_onedrive.matching import FileCriteria, compact_item
from airflow_provider_onedrive.paths import item_path, parent_and_name, url_origin
from airflow_provider_onedrive.retry import RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    import httpx

__all__ = ["MAX_SHARED_AGE", "MAX_START_JITTER", "Poller", "TriggerSession", "get_response", "sessions"]

log = logging.getLogger("airflow_provider_onedrive.triggers.async_graph")

#: Only the fields matching needs, so listing pages stay small.
_SELECT = "id,name,size,eTag,lastModifiedDateTime,file,folder,root"
#: How long a connection's shared state (settings, drive, TLS context) is reused before it is read again.
_SESSION_TTL = 600.0
#: Graph requests in flight at once per connection id and triggerer, however many triggers poll.
_MAX_IN_FLIGHT = 100
#: HTTP clients per connection and event loop; each request goes to the least busy one. Several small pools,
#: not one big one: httpcore's pool bookkeeping grows with queued requests times connections.
_CLIENTS = 8
#: Pooled connections per client, so all clients together carry ``_MAX_IN_FLIGHT`` requests.
_CONNECTIONS_PER_CLIENT = -(-_MAX_IN_FLIGHT // _CLIENTS)
#: The oldest listing a trigger accepts from another trigger's poll: half its poke interval, at most this.
MAX_SHARED_AGE = 30.0
#: Most driveItems kept for sharing per connection and loop (oldest answers are dropped first), so watching
#: huge folders does not hold their listings in the triggerer's memory.
_MAX_SHARED_ITEMS = 20_000
#: Longest random delay before a trigger's first poll.
MAX_START_JITTER = 2.0
#: Modules httpx imports lazily on its first async request (an import on the loop thread would stall it).
_WARM_IMPORTS = ("sniffio", "anyio", "anyio._backends._asyncio", "anyio.streams.tls", "anyio.to_thread")
#: How long an access token is reused before asking the token provider again (a 401 refreshes it sooner).
_TOKEN_TTL = 120.0
#: One retry policy (immutable) for every poll.
_RETRY = RetryPolicy()


@dataclass
class _Client:
    """One pooled HTTP client of a session, and how many requests it is carrying."""

    http: httpx.AsyncClient
    busy: int = 0


@dataclass
class TriggerSession:
    """What every trigger of one connection shares on one event loop."""

    conn_id: str
    graph_url: str
    drive_base: str
    provider: Any
    verify: Any
    proxies: dict[str, str]
    timeout: tuple[float, float]
    user_agent: str
    created: float = field(default_factory=time.monotonic)
    _token: str | None = None
    _token_at: float = 0.0
    _token_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    requests_in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(_MAX_IN_FLIGHT))
    _users: int = 0
    _clients: list[_Client] = field(default_factory=list)
    _pending: dict[Any, asyncio.Task[Any]] = field(default_factory=dict)
    _recent: _RecentAnswers = field(default_factory=lambda: _RecentAnswers())

    @property
    def expired(self) -> bool:
        return time.monotonic() - self.created > _SESSION_TTL

    async def token(self) -> str:
        """A Graph access token; MSAL runs in a thread, and concurrent callers share one acquisition."""
        async with self._token_lock:
            token = self._token
            if token is None or time.monotonic() - self._token_at > _TOKEN_TTL:
                token = await self._acquire(force_refresh=False)
            return token

    async def refresh(self, rejected: str) -> None:
        """Graph refused ``rejected`` (401): get a fresh token, once for all triggers that saw it refused."""
        async with self._token_lock:
            if self._token == rejected:
                await self._acquire(force_refresh=True)

    async def _acquire(self, *, force_refresh: bool) -> str:
        token = await asyncio.to_thread(self.provider.get_token, force_refresh=force_refresh)
        self._token, self._token_at = token, time.monotonic()
        return token

    @contextlib.asynccontextmanager
    async def attached(self) -> AsyncIterator[None]:
        """A trigger using the session's HTTP clients; the last one to leave closes them."""
        self._users += 1
        try:
            yield
        finally:
            self._users -= 1
            await self._close_when_idle()

    async def _close_when_idle(self) -> None:
        """No trigger attached and no shared request running: close the pooled connections."""
        if self._users or self._pending:
            return
        clients, self._clients = self._clients, []
        self._recent.clear()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.http.aclose()

    async def get(self, url: str, params: dict[str, str] | None, token: str) -> httpx.Response:
        """One GET through the least busy client, within the connection's in-flight limit."""
        async with self.requests_in_flight:
            client = min(self._clients, key=lambda c: c.busy, default=None)
            if client is None or (client.busy and len(self._clients) < _CLIENTS):
                client = _Client(self._new_http_client())
                self._clients.append(client)
            client.busy += 1
            try:
                return await client.http.get(url, params=params, headers={"Authorization": f"Bearer {token}"})
            finally:
                client.busy -= 1

    async def shared(self, key: Any, max_age: float, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """``fetch()``'s result, shared: joins the same request in flight, or reuses one that started at most
        ``max_age`` seconds ago. Errors are not kept; every waiter sees the error of the request it joined."""
        now = time.monotonic()
        recent = self._recent.get(key, now - max_age)
        if recent is not _MISS:
            return recent
        task = self._pending.get(key)
        if task is None:
            task = self._pending[key] = asyncio.get_running_loop().create_task(self._fetch_and_keep(key, fetch))
            task.add_done_callback(_consume_exception)
        return await asyncio.shield(task)  # a cancelled trigger does not cancel the request others wait for

    async def _fetch_and_keep(self, key: Any, fetch: Callable[[], Awaitable[Any]]) -> Any:
        started = time.monotonic()
        try:
            result = await fetch()
        finally:
            del self._pending[key]
            await self._close_when_idle()  # every trigger waiting for this was cancelled meanwhile
        if self._users:
            self._recent.put(key, started, result)
        return result

    def _new_http_client(self) -> httpx.AsyncClient:
        """A small pool; the TLS context is the session's, so no per-client CA loading."""
        import httpx

        limits = httpx.Limits(
            max_connections=_CONNECTIONS_PER_CLIENT, max_keepalive_connections=_CONNECTIONS_PER_CLIENT
        )
        mounts = {
            f"{scheme}://": httpx.AsyncHTTPTransport(proxy=url, verify=self.verify, limits=limits)
            for scheme, url in self.proxies.items()
        }
        return httpx.AsyncClient(
            verify=self.verify,
            mounts=mounts or None,
            limits=limits,
            timeout=httpx.Timeout(self.timeout[1], connect=self.timeout[0]),
            headers={"User-Agent": self.user_agent},
            follow_redirects=False,
        )


_MISS = object()


class _RecentAnswers:
    """Graph answers by request, oldest first, at most ``MAX_SHARED_AGE`` old and ``_MAX_SHARED_ITEMS`` items."""

    def __init__(self) -> None:
        self._answers: dict[Any, tuple[float, Any, int]] = {}
        self.items = 0

    def get(self, key: Any, not_before: float) -> Any:
        """The answer to ``key`` (None for a 404) if its request started at ``not_before`` or later, else _MISS."""
        answer = self._answers.get(key)
        return answer[1] if answer is not None and answer[0] >= not_before else _MISS

    def put(self, key: Any, started: float, result: Any) -> None:
        self._drop(key)
        size = 1 + len(result.get("value") or ()) if isinstance(result, dict) else 1
        self._answers[key] = (started, result, size)
        self.items += size
        stale_before = started - MAX_SHARED_AGE
        while self._answers:
            oldest, (at, _, _) = next(iter(self._answers.items()))
            if at >= stale_before and self.items <= _MAX_SHARED_ITEMS:
                break
            self._drop(oldest)

    def _drop(self, key: Any) -> None:
        answer = self._answers.pop(key, None)
        if answer is not None:
            self.items -= answer[2]

    def clear(self) -> None:
        self._answers.clear()
        self.items = 0


def _consume_exception(task: asyncio.Task[Any]) -> None:
    """Waiters may all be gone (cancelled triggers); the error then needs no "never retrieved" warning."""
    if not task.cancelled():
        task.exception()


_freeze_lock = threading.Lock()
_freeze_checked = False


def _freeze_heap_once() -> None:
    """``[onedrive] triggerer_gc_freeze``: once per process, move every object alive now (Airflow's
    import-time heap, about 200,000 objects in a triggerer) out of the collector's reach. A full collection
    traverses every tracked object with the event loop stopped; without that heap it takes a fraction of the
    time. Off by default: objects alive now are never freed afterwards."""
    global _freeze_checked
    with _freeze_lock:
        if _freeze_checked:
            return
        _freeze_checked = True
        from airflow_provider_onedrive.compat import conf

        if not conf.getboolean("onedrive", "triggerer_gc_freeze", fallback=False):
            return
        gc.freeze()
    log.info("[onedrive] triggerer_gc_freeze: %d objects frozen out of garbage collection", gc.get_freeze_count())


class _QueryRedactingFilter(logging.Filter):
    """httpx logs every request's URL at INFO; Graph's delta and skip tokens ride in the query string, so its
    lines keep only the scheme, host and path (the triggerer's log is no place for a feed position)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_has_query(arg) for arg in record.args):
            record.args = tuple(_without_query(arg) if _has_query(arg) else arg for arg in record.args)
        return True


def _has_query(value: Any) -> bool:
    text = str(value) if type(value).__name__ == "URL" or isinstance(value, str) else ""
    return text.startswith(("http://", "https://")) and "?" in text


def _without_query(value: Any) -> str:
    return str(value).split("?", 1)[0] + "?<query redacted>"


def _redact_httpx_urls() -> None:
    """Install the filter on httpx's logger once per process."""
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _QueryRedactingFilter) for f in httpx_log.filters):
        httpx_log.addFilter(_QueryRedactingFilter())


def _build_session(conn_id: str) -> TriggerSession:
    """Blocking set-up (connection, token provider, drive lookup, TLS context): run in a thread."""
    import importlib
    import ssl

    import httpx

    for module in _WARM_IMPORTS:  # httpx loads its async backend on first use; do it here, not on the loop
        importlib.import_module(module)
    _redact_httpx_urls()
    _freeze_heap_once()

    from airflow_provider_onedrive.graph import USER_AGENT
    from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

    hook = OneDriveHook(onedrive_conn_id=conn_id)
    settings = hook.get_settings()
    provider = hook.get_token_provider()
    drive_base = hook.get_drive_base()
    verify = ssl.create_default_context(cafile=settings.ca_bundle) if settings.ca_bundle else httpx.create_ssl_context()
    return TriggerSession(
        conn_id=conn_id,
        graph_url=settings.graph_url,
        drive_base=drive_base,
        provider=provider,
        verify=verify,
        proxies=settings.proxies_dict,
        timeout=settings.timeout,
        user_agent=USER_AGENT,
    )


class _SessionCache:
    """One set-up per connection and event loop, however many triggers start at once."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task[TriggerSession]]] = (
            weakref.WeakKeyDictionary()
        )

    async def get(self, conn_id: str) -> TriggerSession:
        loop = asyncio.get_running_loop()
        tasks = self._by_loop.setdefault(loop, {})
        task = tasks.get(conn_id)
        if task is not None and task.done() and (task.exception() is not None or task.result().expired):
            task = None
        if task is None:
            task = tasks[conn_id] = loop.create_task(asyncio.to_thread(_build_session, conn_id))
        try:
            return await asyncio.shield(task)
        except BaseException:
            if tasks.get(conn_id) is task and task.done():
                del tasks[conn_id]  # a failed set-up is retried by the next trigger, not cached
            raise


sessions = _SessionCache()


class Poller:
    """Lists what the criteria could match, following nextLink, with Retry-After-aware retries."""

    def __init__(self, session: TriggerSession, criteria: FileCriteria, *, max_age: float) -> None:
        self.session = session
        self.criteria = criteria
        self.max_age = max_age
        self.retry = _RETRY
        self.origin = url_origin(session.graph_url)

    def url(self, relative: str) -> str:
        return f"{self.session.graph_url}/{relative}"

    async def candidates(self) -> list[dict[str, Any]]:
        glob = self.criteria.glob
        base = self.session.drive_base
        if not glob.is_glob:
            item = await self.get_json(self.url(item_path(base, glob.base)), {"$select": _SELECT})
            return [] if item is None else [compact_item(item, parent=parent_and_name(glob.base)[0])]
        max_depth = glob.max_depth  # the same folders the sensor's poke lists
        records: list[dict[str, Any]] = []
        folders = [(glob.base, 1)]
        while folders:
            folder, depth = folders.pop()
            url: str | None = self.url(item_path(base, folder, "children"))
            params: dict[str, str] | None = {"$top": "1000", "$select": _SELECT}
            while url:
                page = await self.get_json(url, params)
                if page is None:
                    break  # the folder is not there (yet): nothing to match
                for raw in page.get("value", []):
                    record = compact_item(raw, parent=folder)
                    records.append(record)
                    if record["is_folder"] and glob.recursive and (max_depth is None or depth < max_depth):
                        folders.append((record["path"], depth + 1))
                url, params = page.get("@odata.nextLink"), None
                if url and url_origin(url) != self.origin:
                    raise OneDriveError(
                        f"refusing to follow @odata.nextLink to {urlsplit(url).netloc}: not the configured Graph "
                        "host, and the access token would leak"
                    )
        return records

    async def get_json(self, url: str, params: dict[str, str] | None) -> dict[str, Any] | None:
        """GET a Graph resource: its JSON, or None on 404; shared with triggers asking for the same at once."""
        key = (url, tuple(sorted(params.items())) if params else ())
        fetch = lambda: self._get_json(url, params)  # noqa: E731
        result: dict[str, Any] | None = await self.session.shared(key, self.max_age, fetch)
        return result

    async def _get_json(self, url: str, params: dict[str, str] | None) -> dict[str, Any] | None:
        """GET a Graph resource: its JSON, or None on 404. Retries per the policy; raises OneDriveError."""
        response = await get_response(self.session, url, params, accept=frozenset({200, 404}), retry=self.retry)
        if response.status_code == 404:
            return None
        result: dict[str, Any] = response.json()
        return result


async def get_response(
    session: TriggerSession,
    url: str,
    params: dict[str, str] | None,
    *,
    accept: frozenset[int] = frozenset({200}),
    retry: RetryPolicy = _RETRY,
) -> httpx.Response:
    """GET ``url`` until Graph answers with a status in ``accept``: 401 refreshes the token once, throttling and
    server errors wait as :meth:`RetryPolicy.decide` says (Retry-After first); anything else raises the
    OneDriveError :func:`error_from_response` maps it to. Only the URL's path is ever put in a message."""
    import httpx

    action = f"GET {urlsplit(url).path}"
    attempt = 0
    refreshed = False
    started = time.monotonic()
    while True:
        attempt += 1
        token = await session.token()
        try:
            response = await session.get(url, params, token)
        except httpx.TransportError as exc:
            wait = retry.decide(attempt=attempt, status=None, retry_after=None, elapsed=time.monotonic() - started)
            if wait is None:
                raise OneDriveTransportError(
                    f"{action} failed: connection error ({type(exc).__name__})", attempts=attempt
                ) from None
            await asyncio.sleep(wait)
            continue
        status = response.status_code
        if status in accept:
            return response
        if status == 401 and not refreshed:
            refreshed = True
            await session.refresh(token)
            attempt -= 1  # the refresh retry does not consume the retry budget
            continue
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        wait = retry.decide(attempt=attempt, status=status, retry_after=retry_after, elapsed=time.monotonic() - started)
        if wait is not None:
            await asyncio.sleep(wait)
            continue
        error = error_from_response(response, action, attempts=attempt)
        if isinstance(error, OneDriveThrottledError | OneDriveServerError):
            error.message += "; Graph kept failing beyond the retry policy"
        raise error
