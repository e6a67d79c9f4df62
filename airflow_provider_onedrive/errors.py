"""The OneDriveError hierarchy, and the one function that turns a Graph response into one.

Every error carries the HTTP status, Graph's error code, the request id and the number of attempts made, so
callers branch on types and status codes, never on message text. Subclasses also inherit the matching
built-in exception (``FileNotFoundError`` for 404, ``FileExistsError`` for a name clash, ``PermissionError``
for 401/403, ``ValueError`` for bad input) so fsspec and plain Python code catch them naturally.
Errors are picklable: they cross process boundaries (Airflow task runners, triggers, worker pools).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "OneDriveAuthError",
    "OneDriveBadRequestError",
    "OneDriveConfigError",
    "OneDriveConflictError",
    "OneDriveError",
    "OneDriveIntegrityError",
    "OneDriveLockedError",
    "OneDriveNotFoundError",
    "OneDrivePermissionError",
    "OneDrivePreconditionError",
    "OneDriveQuotaError",
    "OneDriveRangeError",
    "OneDriveServerError",
    "OneDriveThrottledError",
    "OneDriveTransportError",
    "OneDriveUploadInProgressError",
    "OneDriveValidationError",
    "error_from_response",
    "graph_error_fields",
]


class OneDriveError(Exception):
    """Base class of every error this package raises.

    :param message: what went wrong and, where we know it, what to do about it. Never a secret.
    :param status: the HTTP status of the failed response, if there was one.
    :param code: Graph's (or the identity platform's) error code, e.g. ``itemNotFound`` or ``invalid_client``.
    :param request_id: Graph's ``request-id`` (support asks for it).
    :param attempts: how many attempts were made before giving up.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        attempts: int | None = None,
        inner_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.attempts = attempts
        self.inner_code = inner_code

    def __str__(self) -> str:
        details = []
        if self.status is not None:
            details.append(f"HTTP {self.status}")
        if self.code:
            details.append(self.code if not self.inner_code else f"{self.code}/{self.inner_code}")
        if self.request_id:
            details.append(f"request-id {self.request_id}")
        if self.attempts and self.attempts > 1:
            details.append(f"after {self.attempts} attempts")
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception/OSError pickling replays only args; keep the keyword attributes too.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[OneDriveError], message: str, state: dict[str, Any]) -> OneDriveError:
    err = cls.__new__(cls)
    OneDriveError.__init__(err, message)
    err.__dict__.update(state)
    return err


class OneDriveValidationError(OneDriveError, ValueError):
    """Bad input found before any request was sent (a path Graph would refuse, an impossible option...)."""


class OneDriveConfigError(OneDriveValidationError):
    """A connection or client configuration that cannot work; the message names the field and the fix."""


class OneDriveAuthError(OneDriveError, PermissionError):
    """The identity platform refused to issue a token (AADSTS code kept in ``code``/``message``)."""


class OneDrivePermissionError(OneDriveError, PermissionError):
    """Graph refused the request: 401 (token not accepted) or 403 (no permission on this resource)."""


class OneDriveNotFoundError(OneDriveError, FileNotFoundError):
    """404: the item (or upload session, or drive) does not exist."""


class OneDriveConflictError(OneDriveError, FileExistsError):
    """409: an item with that name already exists (or another conflicting operation is in progress)."""


class OneDriveUploadInProgressError(OneDriveConflictError):
    """409 on createUploadSession: another upload session holds the file (OneDrive for Business and SharePoint
    allow one at a time per file), typically left open by an earlier attempt whose resume state was lost."""


class OneDriveBadRequestError(OneDriveError, ValueError):
    """400: Graph rejected the request as malformed or invalid."""


class OneDrivePreconditionError(OneDriveError):
    """412: the item changed (eTag mismatch); nothing was modified."""


class OneDriveRangeError(OneDriveError):
    """416: the upload fragment overlaps what the server already has, or a range is not satisfiable."""


class OneDriveLockedError(OneDriveError):
    """423: the file is locked (open in an Office app, or checked out in SharePoint)."""


class OneDriveThrottledError(OneDriveError):
    """429/503 throttling that outlasted the retry policy."""


class OneDriveQuotaError(OneDriveError, OSError):
    """507: the drive's storage quota is exhausted."""


class OneDriveServerError(OneDriveError):
    """5xx from Graph that outlasted the retry policy."""


class OneDriveTransportError(OneDriveError, ConnectionError):
    """The connection failed (reset, timeout, TLS) and retries did not help."""


class OneDriveIntegrityError(OneDriveError):
    """Transferred bytes do not match what the server reports (size or quickXorHash differs)."""


_BY_STATUS: dict[int, type[OneDriveError]] = {
    400: OneDriveBadRequestError,
    401: OneDrivePermissionError,
    403: OneDrivePermissionError,
    404: OneDriveNotFoundError,
    409: OneDriveConflictError,
    410: OneDriveNotFoundError,
    412: OneDrivePreconditionError,
    416: OneDriveRangeError,
    423: OneDriveLockedError,
    429: OneDriveThrottledError,
    507: OneDriveQuotaError,
}

_HINTS: dict[int, str] = {
    401: "the access token was not accepted; check the connection's credentials and tenant",
    403: "the application lacks permission on this drive or item; see docs/connection.md for the Graph "
    "permissions each operation needs",
    423: "the file is locked: close it in Office or check it in on SharePoint, then retry",
    429: "Microsoft Graph is throttling this application; lower concurrency or retry later",
    507: "the drive's storage quota is full",
}


def graph_error_fields(body: Any) -> tuple[str | None, str | None, str | None, str | None]:
    """Return ``(code, message, request_id, inner_code)`` from a Graph error body (either spelling of innerError)."""
    if not isinstance(body, dict):
        return None, None, None, None
    error = body.get("error")
    if isinstance(error, str):  # identity platform shape: {"error": "invalid_client", "error_description": ...}
        return error, body.get("error_description"), body.get("correlation_id"), None
    if not isinstance(error, dict):
        return None, None, None, None
    inner = error.get("innerError") or error.get("innererror") or {}
    if not isinstance(inner, dict):
        inner = {}
    inner_code = inner.get("code") if isinstance(inner.get("code"), str) else None
    return error.get("code"), error.get("message"), inner.get("request-id"), inner_code


def error_from_response(response: Any, action: str, *, attempts: int | None = None) -> OneDriveError:
    """Map a failed HTTP response to the matching OneDriveError.

    :param response: a ``requests.Response`` (or anything with ``status_code``, ``headers`` and ``json()``).
    :param action: what we were doing, in words safe to show (e.g. ``"GET drives/abc/root:/reports"``);
        callers never pass a pre-authenticated URL here.
    """
    status = int(response.status_code)
    try:
        body = response.json()
    except Exception:
        body = None
    code, message, request_id, inner_code = graph_error_fields(body)
    headers = getattr(response, "headers", {}) or {}
    request_id = request_id or headers.get("request-id") or headers.get("client-request-id")
    if status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif status >= 500:
        cls = OneDriveServerError
    else:
        cls = OneDriveError
    text = f"{action} failed"
    if message:
        text += f": {message}"
    hint = _HINTS.get(status)
    if hint:
        text += f"; {hint}"
    return cls(text, status=status, code=code, request_id=request_id, attempts=attempts, inner_code=inner_code)
