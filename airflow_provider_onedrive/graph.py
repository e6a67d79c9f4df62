"""GraphClient: one HTTP session to Microsoft Graph with authentication, retries, pacing and paging.

No Airflow imports. Every request goes through :meth:`GraphClient.request`, which applies the retry policy,
refreshes the token once on a 401, shares throttling pauses with every client of the same drive in the
process, and maps failures to the OneDriveError hierarchy. Pre-authenticated URLs (upload sessions, download
redirects, copy monitors) go through the same path with ``authenticated=False``: no Authorization header, and
their URL never appears in logs or errors (it is a credential).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import parse_url

from airflow_provider_onedrive import __version__
from airflow_provider_onedrive.errors import (
    OneDriveConfigError,
    OneDriveError,
    OneDriveThrottledError,
    OneDriveTransportError,
    OneDriveValidationError,
    error_from_response,
)
from airflow_provider_onedrive.paths import url_origin
from airflow_provider_onedrive.retry import Pacer, RetryPolicy, parse_retry_after

__all__ = [
    "DEFAULT_GRAPH_URL",
    "USER_AGENT",
    "GraphClient",
    "PinnedSession",
    "TokenProvider",
    "check_service_url",
]

log = logging.getLogger(__name__)

DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
#: Microsoft's recommended User-Agent form for ISVs (reduces SharePoint throttling): ISV|Publisher|App/Version.
USER_AGENT = f"ISV|airflow-provider-onedrive|AirflowProviderOneDrive/{__version__}"
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class TokenProvider(Protocol):
    """Anything that serves Graph access tokens; ``force_refresh`` skips any cache."""

    def get_token(self, *, force_refresh: bool = False) -> str: ...


def token_identity(token: str) -> str | None:
    """``tid/oid`` read from a JWT access token's claims (unverified: it only names who the token is for), or
    None for an opaque token. Used to keep resumable upload state apart per account."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        return None
    if not isinstance(claims, dict) or not claims.get("oid"):
        return None
    return f"{claims.get('tid') or ''}/{claims['oid']}"


class _CallableTokenProvider:
    def __init__(self, func: Callable[[], str]) -> None:
        self._func = func

    def get_token(self, *, force_refresh: bool = False) -> str:
        return self._func()


def check_service_url(url: str, *, field: str = "graph_url") -> str:
    """Validate a service base URL: https, or http only to a loopback host. Returns it without a trailing '/'."""
    if not isinstance(url, str) or not url.strip():
        raise OneDriveConfigError(f"{field} must be an absolute http(s) URL such as {DEFAULT_GRAPH_URL}, got {url!r}")
    if "\\" in url or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise OneDriveConfigError(f"{field} {url!r} contains a backslash, a space or a control character")
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise OneDriveConfigError(
            f"{field} {url!r} contains user info ('...@host'); give the service's own URL, with no credentials"
        )
    try:  # the host the HTTP stack (urllib3) will connect to must be the host checked here
        connect_host = (parse_url(url).host or "").strip("[]").lower()
    except ValueError:
        connect_host = ""
    if parts.hostname and connect_host != parts.hostname:
        raise OneDriveConfigError(f"{field} {url!r} is ambiguous: it names more than one host")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise OneDriveConfigError(f"{field} {url!r} is not an absolute http(s) URL (e.g. {DEFAULT_GRAPH_URL})")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        raise OneDriveConfigError(
            f"{field} {url!r} uses plain http to a non-loopback host; use https (plain http is only allowed for "
            "a local emulator on 127.0.0.1/localhost)"
        )
    return url.rstrip("/")


_SHARE_TOKEN = re.compile(r"(^|/)shares/[^/?]+", re.IGNORECASE)


def redact_share_tokens(path: str) -> str:
    """``shares/<redacted>`` for every ``shares/{token}`` in a Graph path: an encoded sharing URL decodes back to
    the link, which may be an anonymous (bearer) link."""
    return _SHARE_TOKEN.sub(lambda m: f"{m.group(1)}shares/<redacted>", path)


class _RedactPreauthenticated(logging.Filter):
    """urllib3 logs every request's path and query at DEBUG, without the host. Pre-authenticated URLs (upload
    sessions, downloads, copy monitors) carry their credential in the query or the path (OneDrive personal's
    upload URLs are ``/up/{secret}``), so every query becomes ``?<redacted>`` and every path outside a Graph API
    base (``/v1.0/...``) or an identity endpoint (``.../oauth2/...``) becomes ``/<redacted>``. Nothing is handed
    to Airflow's secrets masker per URL: these lines never carry the credential in the first place."""

    def __init__(self) -> None:
        super().__init__()
        self.api_bases: set[str] = {"/v1.0/", "/beta/"}

    def redact(self, target: str) -> str:
        path, sep, _ = target.partition("?")
        if not (any(path.startswith(base) for base in self.api_bases) or "/oauth2/" in path):
            path = "/<redacted>"
        return redact_share_tokens(path) + ("?<redacted>" if sep else "")

    def redact_arg(self, value: object) -> object:
        if not isinstance(value, str):
            return value
        if value.startswith("/"):
            return self.redact(value)
        if "://" in value:
            parts = urlsplit(value)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            return f"{parts.scheme}://{parts.hostname}{self.redact(target)}"
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        # e.g. '%s://%s:%s "%s %s %s" %s %s' (scheme, host, port, method, path and query, version, status, length)
        if isinstance(record.args, tuple):
            record.args = tuple(self.redact_arg(a) for a in record.args)
        return True


_URL_REDACTION = _RedactPreauthenticated()


def _redact_urllib3_debug_lines(graph_url: str | None = None) -> None:
    """Install the redaction on urllib3's request logger (once per process); ``graph_url``'s path is a Graph
    API base whose request paths stay readable."""
    if graph_url:
        base = urlsplit(graph_url).path.rstrip("/") + "/"
        if base != "/":
            _URL_REDACTION.api_bases.add(base)
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager"):
        urllib3_log = logging.getLogger(name)
        if _URL_REDACTION not in urllib3_log.filters:
            urllib3_log.addFilter(_URL_REDACTION)


class PinnedSession(requests.Session):
    """A requests.Session whose ``verify`` and ``proxies`` always win.

    requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override ``Session.verify`` when a call passes no
    ``verify``; MSAL makes such calls, so the CA bundle a connection configures would be ignored.
    """

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("verify") is None:
            kwargs["verify"] = self.verify
        if kwargs.get("proxies") is None and self.proxies:
            kwargs["proxies"] = self.proxies
        return super().request(method, url, *args, **kwargs)


def make_session(
    *, verify: bool | str = True, proxies: Mapping[str, str] | None = None, pool_maxsize: int = 16
) -> PinnedSession:
    """A session with a connection pool sized for concurrent transfers and no urllib3-level retries."""
    _redact_urllib3_debug_lines()
    session = PinnedSession()
    session.verify = verify
    if proxies:
        session.proxies.update(proxies)
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


class GraphClient:
    """A Microsoft Graph v1.0 client: base URL, session, token provider, retry policy and pacer.

    :param token_provider: object with ``get_token(force_refresh=False)``, or a plain callable returning a token.
    :param graph_url: Graph base URL ending in ``/v1.0`` (national clouds, or a local emulator).
    :param verify: TLS verification: True, or a CA bundle path.
    :param proxies: requests-style proxies mapping.
    :param timeout: ``(connect, read)`` seconds applied to every request.
    :param retry: the retry policy; one per client, shared by every request it makes.
    :param pool_maxsize: connections kept per host (size it to the transfer concurrency).
    :param pacer_key: requests sharing a key share throttling pauses (default: the Graph host).
    """

    def __init__(
        self,
        token_provider: TokenProvider | Callable[[], str],
        *,
        graph_url: str = DEFAULT_GRAPH_URL,
        verify: bool | str = True,
        proxies: Mapping[str, str] | None = None,
        timeout: tuple[float, float] = (10.0, 120.0),
        retry: RetryPolicy | None = None,
        pool_maxsize: int = 16,
        pacer_key: str | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not hasattr(token_provider, "get_token"):
            if not callable(token_provider):
                raise OneDriveConfigError("token_provider must have get_token() or be a callable returning a token")
            token_provider = _CallableTokenProvider(token_provider)
        self.token_provider: TokenProvider = token_provider
        self.graph_url = check_service_url(graph_url)
        _redact_urllib3_debug_lines(self.graph_url)
        self.graph_origin = url_origin(self.graph_url)
        self.verify = verify
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.session = session or make_session(verify=verify, proxies=proxies, pool_maxsize=pool_maxsize)
        self.pacer = Pacer.for_key(pacer_key or self.graph_origin)
        self._sleep = sleep
        self._refresh_lock = threading.Lock()

    def identity(self) -> str:
        """Who this client acts as (``tenant/object id``): from the token provider when it knows
        (:class:`~airflow_provider_onedrive.auth.MsalTokenProvider` does), else from the access token's claims."""
        known = getattr(self.token_provider, "identity", None)
        if callable(known):
            value = known()
            if value:
                return str(value)
        token = self.token_provider.get_token()
        return token_identity(token) or "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]

    # -- URLs -------------------------------------------------------------------------------------------
    def url(self, path_or_url: str) -> str:
        """Absolute URL for a path relative to the Graph base, or an absolute Graph URL (checked)."""
        if "://" in path_or_url:
            self._check_graph_url(path_or_url)
            return path_or_url
        return urljoin(self.graph_url + "/", path_or_url.lstrip("/"))

    def is_graph_url(self, url: str) -> bool:
        return url_origin(url) == self.graph_origin

    def _check_graph_url(self, url: str) -> None:
        if not self.is_graph_url(url):
            host = urlsplit(url).netloc or "?"
            raise OneDriveValidationError(
                f"refusing to send the Graph access token to {host}: only {self.graph_origin} is trusted "
                "(pass authenticated=False for pre-authenticated URLs)"
            )

    def describe(self, url: str, method: str) -> str:
        """Words for logs and errors: method and Graph-relative path, never a query string or foreign URL."""
        if self.is_graph_url(url):
            path = urlsplit(url).path
            base = urlsplit(self.graph_url).path
            relative = path[len(base) :].lstrip("/") if path.startswith(base) else path
            return f"{method} {redact_share_tokens(relative)}"
        return f"{method} pre-authenticated URL on {urlsplit(url).hostname}"

    # -- requests -------------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | bytearray | memoryview | str | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        authenticated: bool = True,
        allow_redirects: bool = False,
        ok_statuses: tuple[int, ...] = (),
        action: str | None = None,
        retry: bool = True,
    ) -> requests.Response:
        """Send one Graph request with retries; return the response or raise a OneDriveError.

        A status below 400, or one listed in ``ok_statuses``, is returned to the caller; anything else is
        retried per the policy or raised. ``data`` must be bytes-like (so a retry can resend it).

        :param authenticated: False for pre-authenticated URLs (no Authorization header; any https host).
        :param action: words describing the request for logs and errors (defaults to method + Graph path).
        """
        method = method.upper()
        if authenticated:
            url = self.url(path_or_url)
        else:
            if "://" not in path_or_url:
                raise OneDriveValidationError("a pre-authenticated request needs an absolute URL")
            url = path_or_url
        label = action or self.describe(url, method)
        started = time.monotonic()
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            self.pacer.wait(self._sleep)
            send_headers = {"client-request-id": str(uuid.uuid4())}
            if headers:
                send_headers.update(headers)
            token = None
            if authenticated:
                token = self.token_provider.get_token()
                send_headers["Authorization"] = f"Bearer {token}"
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    headers=send_headers,
                    stream=stream,
                    timeout=self.timeout,
                    allow_redirects=allow_redirects,
                    verify=self.verify,
                )
            except _TRANSPORT_ERRORS as exc:
                reason = f"{type(exc).__name__}"
                wait = self._decide(retry, attempt, None, None, started)
                if wait is None:
                    raise OneDriveTransportError(
                        f"{label} failed: connection error ({reason}); check network access to "
                        f"{urlsplit(url).hostname}",
                        attempts=attempt,
                    ) from None
                self._backoff(label, attempt, None, None, reason, wait)
                continue
            status = response.status_code
            if status < 400 or status in ok_statuses:
                return response
            if status == 401 and authenticated and not refreshed:
                response.close()
                refreshed = True
                self._refresh_token(token)
                log.info("%s: token not accepted (401); retrying once with a fresh token", label)
                attempt -= 1  # the refresh retry does not consume the retry budget
                continue
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            wait = self._decide(retry, attempt, status, retry_after, started)
            if wait is not None:
                response.close()
                self._backoff(label, attempt, status, retry_after, _status_reason(response), wait)
                continue
            error = error_from_response(response, label, attempts=attempt)
            response.close()
            if isinstance(error, OneDriveThrottledError) or status == 503:
                error.message += "; Graph kept throttling beyond the retry policy"
            raise error

    def _decide(
        self, enabled: bool, attempt: int, status: int | None, retry_after: float | None, started: float
    ) -> float | None:
        if not enabled:
            return None
        return self.retry.decide(
            attempt=attempt, status=status, retry_after=retry_after, elapsed=time.monotonic() - started
        )

    def pause(self, seconds: float) -> None:
        """Sleep between attempts through the client's (injectable) sleep."""
        self._sleep(seconds)

    def _backoff(
        self, label: str, attempt: int, status: int | None, retry_after: float | None, reason: str, wait: float
    ) -> None:
        source = "Retry-After" if retry_after is not None else "backoff"
        log.warning(
            "%s: %s; retrying in %.2f s (%s), attempt %d of %d",
            label,
            reason,
            wait,
            source,
            attempt + 1,
            self.retry.attempts_for(status),
        )
        if status in (429, 503) and retry_after is not None:
            self.pacer.pause(wait)  # everyone talking to this drive waits, not just this thread
            self.pacer.wait(self._sleep)
        else:
            self._sleep(wait)

    def _refresh_token(self, rejected: str | None) -> None:
        """Force one token refresh; threads that hit the same 401 together cause one refresh, not many."""
        with self._refresh_lock:
            current = self.token_provider.get_token()
            if current == rejected:
                self.token_provider.get_token(force_refresh=True)

    # -- JSON and paging -------------------------------------------------------------------------------
    def get_json(self, path_or_url: str, *, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET a Graph resource and return its parsed JSON body."""
        response = self.request("GET", path_or_url, params=params)
        try:
            return response.json()
        except ValueError as exc:
            raise OneDriveError(f"{self.describe(response.url, 'GET')} returned a non-JSON body") from exc

    def iter_pages(self, path_or_url: str, *, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Yield each page of a collection, following ``@odata.nextLink`` verbatim (same host only)."""
        page = self.get_json(path_or_url, params=params)
        while True:
            yield page
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return
            if not self.is_graph_url(next_link):
                raise OneDriveError(
                    f"refusing to follow @odata.nextLink to {urlsplit(next_link).netloc}: it is not the "
                    f"configured Graph host {self.graph_origin}, and the access token would leak"
                )
            page = self.get_json(next_link)

    def iter_values(self, path_or_url: str, *, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Yield every item of a paged collection, lazily (one page in memory at a time)."""
        for page in self.iter_pages(path_or_url, params=params):
            yield from page.get("value", [])

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _status_reason(response: requests.Response) -> str:
    code = None
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
    except ValueError:
        pass
    return f"HTTP {response.status_code}" + (f" {code}" if code else "")
