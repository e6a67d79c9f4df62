"""UploadSession: a push-style upload (``write()`` in order, ``finish()``, ``cancel()``) for streams and fsspec."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from typing import IO, Any

from airflow_provider_onedrive.errors import (
    OneDriveConflictError,
    OneDriveNotFoundError,
    OneDriveTransportError,
    OneDriveValidationError,
)
from airflow_provider_onedrive.transfers.common import check_conflict
from airflow_provider_onedrive.transfers.models import UploadResult
from airflow_provider_onedrive.transfers.progress import ProgressCallback
from airflow_provider_onedrive.transfers.uploads import Uploader, _HashTracker, _Session, _SessionGone

__all__ = ["UploadSession"]


class UploadSession:
    """A push-style upload: ``write()`` bytes in order, then ``finish()``; ``cancel()`` to abandon.

    The fsspec layer's ``open("wb")`` uses it. With a known ``size``, fragments stream out as soon as a full
    fragment is buffered (memory: one fragment). With ``size=None`` the bytes are spooled to a temporary file
    (in memory up to the simple-upload threshold) and sent on ``finish()``, because Graph needs the total size in
    every fragment's ``Content-Range``. Usable as a context manager (an exception cancels).
    """

    def __init__(
        self,
        uploader: Uploader,
        path: str,
        *,
        size: int | None,
        conflict: str = "fail",
        progress: ProgressCallback | None = None,
    ) -> None:
        check_conflict(conflict)
        self._uploader = uploader
        self._ctx = uploader.ctx
        self.path = uploader._destination(path)
        self.size = size
        self.conflict = conflict
        self._progress = progress
        self._started = time.monotonic()
        self._buffer = bytearray()
        self._offset = 0  # bytes the server has acknowledged
        self._written = 0
        self._tracker = _HashTracker()
        self._session: _Session | None = None
        self._spool: IO[bytes] | None = None
        self._done = False
        self._status = 201
        self._reporter = self._ctx.reporter(self.path, size, "upload", progress)
        if size is None:
            self._spool = tempfile.SpooledTemporaryFile(max_size=self._ctx.settings.simple_upload_threshold)  # noqa: SIM115
        elif size < 0:
            raise OneDriveValidationError(f"size must be >= 0, got {size}")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; returns its length."""
        if self._done:
            raise OneDriveValidationError(f"upload of {self.path} is already finished or cancelled")
        n = len(data)
        self._written += n
        if self._spool is not None:
            self._spool.write(data)
            return n
        assert self.size is not None
        if self._written > self.size:
            self.cancel()
            raise OneDriveValidationError(f"upload of {self.path}: more than the declared {self.size} bytes written")
        self._buffer += data
        if self.size > self._ctx.settings.simple_upload_threshold:
            fragment = self._ctx.settings.fragment_size
            # The final fragment waits for finish(), so a commit always happens there.
            while len(self._buffer) >= fragment and self._offset + fragment < self.size:
                self._send(bytes(self._buffer[:fragment]))
                del self._buffer[:fragment]
        return n

    def _send(self, chunk: bytes) -> dict[str, Any] | None:
        """Send ``chunk`` at the current offset until the server has all of it; the committed item at the end."""
        assert self.size is not None
        if self._session is None:
            self._session, _ = self._uploader.create_session(self.path, self.size, self.conflict, None)
        self._tracker.feed(self._offset, chunk)
        start = self._offset
        view = memoryview(chunk)
        while True:
            try:
                nxt, item, status = self._session.put(self._offset, view[self._offset - start :])
            except _SessionGone:
                if start + len(chunk) == self.size:
                    item = self._uploader._matching_item(self.path, self.size, self._tracker.b64digest())
                    if item is not None:
                        self._offset, self._status = self.size, 201
                        return item
                raise OneDriveNotFoundError(
                    f"upload of {self.path}: the upload session expired and a stream cannot be replayed; "
                    "upload it again"
                ) from None
            if item is not None:
                self._offset, self._status = self.size, status
                return item
            if nxt is None:  # everything received
                self._offset, self._status = self.size, 201
                return self._uploader._committed(self.path)
            if not start <= nxt <= start + len(chunk):
                raise OneDriveTransportError(
                    f"upload of {self.path}: the server expects byte {nxt}, outside the fragment in hand "
                    f"({start}-{start + len(chunk) - 1}); a stream cannot be rewound"
                )
            self._offset = nxt
            self._reporter.set(nxt)
            if nxt == start + len(chunk):
                return None

    def finish(self) -> UploadResult:
        """Send what is buffered, commit, verify; returns the :class:`UploadResult`."""
        if self._done:
            raise OneDriveValidationError(f"upload of {self.path} is already finished or cancelled")
        try:
            result = self._finish()
        except BaseException:
            self.cancel()
            raise
        self._done = True
        return result

    def _finish(self) -> UploadResult:
        if self._spool is not None:
            return self._finish_spooled()
        assert self.size is not None
        if self._written != self.size:
            raise OneDriveValidationError(
                f"upload of {self.path}: {self._written} bytes written but size={self.size} was declared"
            )
        uploader = self._uploader
        if self.size <= self._ctx.settings.simple_upload_threshold:
            return uploader._simple(bytes(self._buffer), self.path, self.conflict, None, self._reporter, None)
        try:
            item = self._send(bytes(self._buffer))
        except OneDriveConflictError as exc:
            self._session = None  # a commit-time conflict ends the session on the server
            return uploader._identical_or_raise(
                exc, self.path, self.size, self._tracker.b64digest(), self._started, self._written, None
            )
        self._buffer.clear()
        if item is None:
            item = uploader._committed(self.path)
            self._status = 201
        self._session = None
        self._reporter.set(self.size)
        return uploader._result(
            item,
            self.path,
            self.conflict,
            self._status,
            self.size,
            self._tracker.b64digest(),
            self._started,
            self._written,
            0,
            None,
        )

    def _finish_spooled(self) -> UploadResult:
        spool = self._spool
        assert spool is not None
        size = spool.tell()
        spool.flush()
        spool.seek(0)
        try:
            if size <= self._ctx.settings.simple_upload_threshold:
                data = spool.read()
                return self._uploader._simple(data, self.path, self.conflict, None, self._reporter, None)
            fd = spool.fileno()  # rolls the spool over to a real file when it is still in memory
            self._reporter.total = size

            def read_at(offset: int, n: int) -> bytes:
                return os.pread(fd, n, offset)

            return self._uploader._session_upload(
                read_at, size, self.path, self.conflict, None, self._reporter, None, None
            )
        finally:
            spool.close()
            self._spool = None

    def cancel(self) -> None:
        """Abandon the upload: DELETE the session if one was started; nothing is committed."""
        if self._done:
            return
        self._done = True
        if self._session is not None:
            self._session.cancel()
            self._session = None
        if self._spool is not None:
            with contextlib.suppress(OSError):
                self._spool.close()
            self._spool = None
        self._buffer.clear()

    def __enter__(self) -> UploadSession:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.cancel()
        elif not self._done:
            self.finish()
