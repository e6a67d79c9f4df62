"""GraphClient's retry policy, 401 refresh, shared pacer, paging and error mapping (requests-mock)."""

from __future__ import annotations

import email.utils
import pickle
import time
import uuid

import pytest
import requests

from airflow_provider_onedrive import errors
from airflow_provider_onedrive.graph import GraphClient
from airflow_provider_onedrive.retry import Pacer, RetryPolicy, parse_retry_after

GRAPH = "https://graph.microsoft.com/v1.0"


class CountingTokens:
    def __init__(self):
        self.calls = 0
        self.forced = 0

    def get_token(self, *, force_refresh=False):
        self.calls += 1
        if force_refresh:
            self.forced += 1
        return f"token-{self.forced}"


class RecordingSleep:
    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(min(seconds, 0.01)) if seconds < 0.2 else None


def client(tokens=None, sleep=None, **kwargs) -> GraphClient:
    retry = kwargs.pop("retry", RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05))
    return GraphClient(
        tokens or CountingTokens(), retry=retry, sleep=sleep or RecordingSleep(), pacer_key=str(uuid.uuid4()), **kwargs
    )


def graph_error(status: int, code: str, headers=None):
    return {
        "status_code": status,
        "json": {"error": {"code": code, "message": f"{code} happened", "innerError": {"request-id": "rid-1"}}},
        "headers": headers or {},
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), ("0.25", 0.25), (" 3 ", 3.0), ("-4", 0.0), (None, None), ("", None), ("soon", None)],
)
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    now = time.time()
    future = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= parse_retry_after(future, now=now) <= 31
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0


def test_backoff_bounds_and_full_jitter():
    policy = RetryPolicy(backoff_base=0.5, backoff_max=8.0)
    for attempt in range(1, 12):
        ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
        waits = [policy.backoff(attempt) for _ in range(50)]
        assert all(0 <= w <= ceiling for w in waits)

    class Ceiling(RetryPolicy):
        def jitter(self, ceiling: float) -> float:
            return ceiling

    exact = Ceiling(backoff_base=0.5, backoff_max=8.0)
    assert [exact.backoff(a) for a in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert exact.backoff(1, status=423) == 5.0  # locked files back off more slowly (still capped)
    for _ in range(50):
        assert 10.0 <= policy.delay(1, 429, 10.0) <= 11.0


@pytest.mark.parametrize(
    ("status", "code", "cls", "builtin"),
    [
        (400, "invalidRequest", errors.OneDriveBadRequestError, ValueError),
        (403, "accessDenied", errors.OneDrivePermissionError, PermissionError),
        (404, "itemNotFound", errors.OneDriveNotFoundError, FileNotFoundError),
        (409, "nameAlreadyExists", errors.OneDriveConflictError, FileExistsError),
        (412, "resourceModified", errors.OneDrivePreconditionError, errors.OneDriveError),
        (507, "quotaLimitReached", errors.OneDriveQuotaError, OSError),
    ],
)
def test_never_retried_statuses(requests_mock, status, code, cls, builtin):
    route = requests_mock.get(f"{GRAPH}/me/drive", **graph_error(status, code))
    with pytest.raises(cls) as info:
        client().get_json("me/drive")
    assert route.call_count == 1
    err = info.value
    assert isinstance(err, builtin)
    assert (err.status, err.code, err.request_id) == (status, code, "rid-1")
    assert "request-id rid-1" in str(err)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is cls and (copy.status, copy.code, copy.request_id, str(copy)) == (
        status,
        code,
        "rid-1",
        str(err),
    )


def test_server_errors_retried_then_raised_with_attempts(requests_mock):
    route = requests_mock.get(f"{GRAPH}/me/drive", **graph_error(500, "generalException"))
    sleep = RecordingSleep()
    with pytest.raises(errors.OneDriveServerError) as info:
        client(sleep=sleep).get_json("me/drive")
    assert route.call_count == 4
    assert info.value.attempts == 4 and "after 4 attempts" in str(info.value)
    assert len(sleep.waits) == 3 and all(0 <= w <= 0.05 for w in sleep.waits)


def test_transient_failure_then_success(requests_mock):
    requests_mock.get(
        f"{GRAPH}/me/drive",
        [
            graph_error(503, "serviceNotAvailable"),
            {"exc": requests.ConnectionError("reset")},
            graph_error(504, "gatewayTimeout"),
            {"json": {"id": "d"}},
        ],
    )
    assert client().get_json("me/drive") == {"id": "d"}


def test_connection_errors_exhausted(requests_mock):
    requests_mock.get(f"{GRAPH}/me/drive", exc=requests.ConnectTimeout("slow"))
    with pytest.raises(errors.OneDriveTransportError) as info:
        client().get_json("me/drive")
    assert info.value.attempts == 4 and isinstance(info.value, ConnectionError)


@pytest.mark.parametrize("retry_after", ["0.3", "1"])
def test_retry_after_honoured_and_shared_by_pacer(requests_mock, retry_after):
    requests_mock.get(
        f"{GRAPH}/me/drive",
        [graph_error(429, "TooManyRequests", {"Retry-After": retry_after}), {"json": {"id": "d"}}],
    )
    key = str(uuid.uuid4())
    first = GraphClient(CountingTokens(), pacer_key=key, retry=RetryPolicy(max_attempts=3), sleep=time.sleep)
    other = GraphClient(CountingTokens(), pacer_key=key)
    assert first.pacer is other.pacer is Pacer.for_key(key)
    started = time.monotonic()
    assert first.get_json("me/drive") == {"id": "d"}
    assert time.monotonic() - started >= float(retry_after)


def test_retry_after_as_http_date(requests_mock):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    requests_mock.get(
        f"{GRAPH}/me/drive", [graph_error(503, "serviceNotAvailable", {"Retry-After": when}), {"json": {"id": "d"}}]
    )
    started = time.monotonic()
    graph = GraphClient(CountingTokens(), pacer_key=str(uuid.uuid4()), sleep=time.sleep)
    assert graph.get_json("me/drive") == {"id": "d"}
    assert time.monotonic() - started >= 0.9  # HTTP-date has 1 s resolution


def test_retry_after_beyond_limit_fails_fast(requests_mock):
    route = requests_mock.get(f"{GRAPH}/me/drive", **graph_error(429, "TooManyRequests", {"Retry-After": "3600"}))
    with pytest.raises(errors.OneDriveThrottledError, match="throttling"):
        client().get_json("me/drive")
    assert route.call_count == 1


def test_429_without_retry_after_backs_off(requests_mock):
    requests_mock.get(f"{GRAPH}/me/drive", [graph_error(429, "activityLimitReached"), {"json": {"ok": 1}}])
    sleep = RecordingSleep()
    assert client(sleep=sleep).get_json("me/drive") == {"ok": 1}
    assert len(sleep.waits) == 1 and sleep.waits[0] <= 0.01


def test_401_triggers_exactly_one_refresh(requests_mock):
    tokens = CountingTokens()
    requests_mock.get(f"{GRAPH}/me/drive", [graph_error(401, "InvalidAuthenticationToken"), {"json": {"id": "d"}}])
    assert client(tokens).get_json("me/drive") == {"id": "d"}
    assert tokens.forced == 1
    sent = [r.headers["Authorization"] for r in requests_mock.request_history]
    assert sent == ["Bearer token-0", "Bearer token-1"]

    route = requests_mock.get(f"{GRAPH}/me/drive", **graph_error(401, "InvalidAuthenticationToken"))
    tokens = CountingTokens()
    with pytest.raises(errors.OneDrivePermissionError) as info:
        client(tokens).get_json("me/drive")
    assert tokens.forced == 1 and route.call_count == 2 and info.value.status == 401


def test_paging_follows_next_links(requests_mock):
    requests_mock.get(
        f"{GRAPH}/me/drive/root/children",
        json={"value": [{"n": 1}, {"n": 2}], "@odata.nextLink": f"{GRAPH}/me/drive/root/children?$skiptoken=a"},
    )
    requests_mock.get(
        f"{GRAPH}/me/drive/root/children?$skiptoken=a",
        complete_qs=True,
        json={"value": [{"n": 3}], "@odata.nextLink": f"{GRAPH}/me/drive/root/children?$skiptoken=b"},
    )
    requests_mock.get(f"{GRAPH}/me/drive/root/children?$skiptoken=b", complete_qs=True, json={"value": [{"n": 4}]})
    assert [i["n"] for i in client().iter_values("me/drive/root/children")] == [1, 2, 3, 4]
    assert all(r.headers["Authorization"] for r in requests_mock.request_history)


def test_foreign_next_link_refused(requests_mock):
    requests_mock.get(
        f"{GRAPH}/me/drive/root/children",
        json={"value": [{"n": 1}], "@odata.nextLink": "https://evil.example.com/steal?x=1"},
    )
    items = client().iter_values("me/drive/root/children")
    assert next(items) == {"n": 1}
    with pytest.raises(errors.OneDriveError, match=r"refusing to follow @odata\.nextLink to evil\.example\.com"):
        next(items)
    assert {r.hostname for r in requests_mock.request_history} == {"graph.microsoft.com"}


def test_token_never_sent_to_foreign_host():
    with pytest.raises(errors.OneDriveValidationError, match="refusing to send the Graph access token"):
        client().request("GET", "https://evil.example.com/x")


def test_error_mapping_identity_shape_and_locked():
    class Response:
        status_code = 423
        headers = {"request-id": "hdr-id"}

        def json(self):
            return {"error": {"code": "resourceLocked", "message": "locked", "innererror": {"code": "lockMismatch"}}}

    err = errors.error_from_response(Response(), "PUT drives/x/root:/a.xlsx:/content", attempts=4)
    assert isinstance(err, errors.OneDriveLockedError)
    assert (err.code, err.inner_code, err.request_id, err.attempts) == ("resourceLocked", "lockMismatch", "hdr-id", 4)
    assert "close it in Office" in str(err)
    code, message, request_id, inner = errors.graph_error_fields(
        {"error": "invalid_client", "error_description": "AADSTS7000215: bad", "correlation_id": "c"}
    )
    assert (code, message, request_id, inner) == ("invalid_client", "AADSTS7000215: bad", "c", None)


def test_one_retry_decision_for_statuses_connection_errors_and_budgets():
    from airflow_provider_onedrive.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=3, backoff_base=1.0, max_total=10.0, max_retry_after=5.0, locked_attempts=2)
    policy = RetryPolicy(**{**policy.__dict__, "rng": type(policy.rng)(7)})
    decide = policy.decide
    assert decide(attempt=1, status=404, retry_after=None, elapsed=0) is None  # never retried
    assert decide(attempt=1, status=409, retry_after=None, elapsed=0) is None
    assert 0 <= decide(attempt=1, status=None, retry_after=None, elapsed=0) <= 1.0  # connection error: backoff
    assert 0 <= decide(attempt=2, status=500, retry_after=None, elapsed=0) <= 2.0
    assert decide(attempt=3, status=500, retry_after=None, elapsed=0) is None  # attempts used up
    assert 2.0 <= decide(attempt=1, status=429, retry_after=2.0, elapsed=0) <= 2.3  # Retry-After + jitter
    assert decide(attempt=1, status=429, retry_after=6.0, elapsed=0) is None  # longer than max_retry_after
    assert decide(attempt=1, status=503, retry_after=3.0, elapsed=8.0) is None  # would pass max_total
    assert decide(attempt=1, status=423, retry_after=None, elapsed=0) is not None
    assert decide(attempt=2, status=423, retry_after=None, elapsed=0) is None  # locked: its own budget
