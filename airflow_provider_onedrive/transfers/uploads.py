"""Uploads: simple PUT for small files, resumable upload sessions for the rest, verified by quickXorHash.

Small files (up to the simple-upload threshold) and empty files go in one ``PUT .../content`` with the conflict
behaviour as a query parameter. Larger ones use an upload session: fragments of a 320 KiB multiple, read from
the local file by offset (memory stays at about one fragment), sent to the uploadUrl WITHOUT the Authorization
header. A 416 or a lost response makes us ask the session for ``nextExpectedRanges`` and send only what is
missing. Sessions of local files are remembered on disk (see :mod:`.state`) so a rerun in another process
continues where the first stopped.

On failure: an upload whose state is kept for resume (``resume=True`` and a transient failure: network,
5xx, throttling, token, interruption) leaves its session alive for the next attempt; every other failure
cancels the session with ``DELETE uploadUrl`` and forgets the state, so nothing is left half-uploaded.

Streams of unknown size are spooled to a temporary file first: Graph needs the total size in every
``Content-Range`` (``bytes a-b/*`` is refused), so the size must be known before the first fragment.

Names: an *upload session* is Graph's (``SessionEndpoint`` talks to its uploadUrl); :class:`UploadSession` is the
push-style upload (``write()``, ``finish()``, ``cancel()``) that streams and fsspec's ``open("wb")`` use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_onedrive import paths
from airflow_provider_onedrive.errors import (
    OneDriveBadRequestError,
    OneDriveConflictError,
    OneDriveError,
    OneDriveIntegrityError,
    OneDriveNotFoundError,
    OneDriveQuotaError,
    OneDriveTransportError,
    OneDriveUploadInProgressError,
    OneDriveValidationError,
)
from airflow_provider_onedrive.hashing import QuickXorHash
from airflow_provider_onedrive.transfers.common import CONFLICT_PARAM, check_conflict, retry_not_found, verify_transfer
from airflow_provider_onedrive.transfers.context import DriveContext
from airflow_provider_onedrive.transfers.models import UploadResult, file_system_info, parse_datetime
from airflow_provider_onedrive.transfers.progress import ProgressCallback, ProgressReporter
from airflow_provider_onedrive.transfers.sessions import HashTracker, SessionEndpoint, SessionGone
from airflow_provider_onedrive.transfers.state import SessionState, SessionStateStore, state_key

if TYPE_CHECKING:
    from airflow_provider_onedrive.transfers.mtimes import DeferredMtimes


__all__ = ["UploadSession", "Uploader"]

log = logging.getLogger("airflow_provider_onedrive.transfers.uploads")

#: Failures after which a resumable upload keeps its session for the next attempt.
_FINAL_ERRORS = (
    OneDriveConflictError,
    OneDriveIntegrityError,
    OneDriveValidationError,
    OneDriveBadRequestError,
    OneDriveQuotaError,
    OneDriveNotFoundError,
)
_MAX_RESTARTS = 2


@dataclass(frozen=True)
class _ResumePoint:
    """The state-store key of a resumable upload and the account it belongs to."""

    key: str
    drive_id: str
    identity: str


@dataclass
class _Upload:
    """One upload: where it goes, how it reads its bytes, and what to report (instead of long signatures)."""

    dest: str
    conflict: str
    size: int
    read_at: Callable[[int, int], bytes]
    reporter: ProgressReporter
    mtime: float | None = None  # the file-system time to set, when preserving it
    source: str | None = None  # the local file, named in results and messages
    source_mtime_ns: int | None = None  # the local file's fingerprint, checked before resuming
    resume: _ResumePoint | None = None  # where the session is remembered, for resumable local files
    started: float = field(default_factory=time.monotonic)

    def data(self) -> bytes:
        return self.read_at(0, self.size) if self.size else b""


def _buffer_reader(data: bytes | memoryview) -> Callable[[int, int], bytes]:
    view = memoryview(data)

    def read_at(offset: int, n: int) -> bytes:
        return bytes(view[offset : offset + n])

    return read_at


class Uploader:
    """Uploads into one drive (:class:`~.context.DriveContext`); resumable sessions remembered in ``state``."""

    def __init__(self, ctx: DriveContext, state: SessionStateStore) -> None:
        self.ctx = ctx
        self.state = state

    # -- entry points ---------------------------------------------------------------------------------
    def upload_file(
        self,
        local_path: str | os.PathLike[str],
        path: str,
        *,
        conflict: str,
        preserve_mtime: bool,
        progress: ProgressCallback | None,
        resume: bool,
        mtimes: DeferredMtimes | None = None,
    ) -> UploadResult:
        """Upload one local file.

        :param mtimes: where a small file's modification time goes to be set later, in a batch (folder
            uploads); None sets it with a PATCH of its own right after the content.
        """
        check_conflict(conflict)
        dest = self._destination(path)
        source = os.path.abspath(os.fspath(local_path))
        with open(source, "rb") as handle:
            stat = os.fstat(handle.fileno())
            size = stat.st_size
            fd = handle.fileno()

            def read_at(offset: int, n: int) -> bytes:
                return os.pread(fd, n, offset)

            upload = _Upload(
                dest,
                conflict,
                size,
                read_at,
                self.ctx.reporter(dest, size, "upload", progress),
                mtime=stat.st_mtime if preserve_mtime else None,
                source=source,
                source_mtime_ns=stat.st_mtime_ns,
            )
            if size <= self.ctx.settings.simple_upload_threshold:
                return self._simple(upload, mtimes)
            if resume:
                upload.resume = self._resume_point(source, dest, stat.st_mtime_ns)
            return self._session_upload(upload)

    def upload_bytes(
        self, data: bytes | bytearray | memoryview, path: str, *, conflict: str, progress: ProgressCallback | None
    ) -> UploadResult:
        if not isinstance(data, bytes | bytearray | memoryview):
            hint = " (encode text first, e.g. text.encode('utf-8'))" if isinstance(data, str) else ""
            raise OneDriveValidationError(f"data must be bytes, got {type(data).__name__}{hint}")
        check_conflict(conflict)
        dest = self._destination(path)
        owned = data if isinstance(data, bytes) else bytes(data)  # a copy: the caller may mutate theirs
        reporter = self.ctx.reporter(dest, len(owned), "upload", progress)
        upload = _Upload(dest, conflict, len(owned), _buffer_reader(owned), reporter)
        if upload.size <= self.ctx.settings.simple_upload_threshold:
            return self._simple(upload)
        return self._session_upload(upload)

    def _resume_point(self, source: str, dest: str, mtime_ns: int) -> _ResumePoint:
        """Where this upload's session is remembered: keyed by the source, the destination, the resolved drive id
        and the account, so two connections that share a state folder never resume each other's sessions."""
        drive_id = self.ctx.drive_id
        identity = self.ctx.graph.identity()
        destination = f"{self.ctx.graph.graph_origin}/{self.ctx.drive_base}/{dest}"
        key = state_key(source, destination, drive_id=drive_id, identity=identity)
        return _ResumePoint(key, drive_id, identity)

    def _destination(self, path: str) -> str:
        dest = paths.normalize(path)
        if not dest:
            raise OneDriveValidationError("cannot upload to the drive root itself: give a file path")
        return dest

    # -- simple upload --------------------------------------------------------------------------------
    def _simple(self, upload: _Upload, mtimes: DeferredMtimes | None = None) -> UploadResult:
        data, dest, conflict, mtime = upload.data(), upload.dest, upload.conflict, upload.mtime
        digest = QuickXorHash(data).b64digest()
        url = paths.item_path(self.ctx.drive_base, dest, "content")

        def put() -> Any:
            return self.ctx.graph.request(
                "PUT",
                url,
                params={CONFLICT_PARAM: conflict},
                data=data,
                headers={"Content-Type": "application/octet-stream"},
                action=f"upload {dest}",
            )

        try:
            response = retry_not_found(put)
        except OneDriveConflictError as exc:
            return self._identical_or_raise(exc, upload, digest, len(data))
        item = response.json()
        status = response.status_code
        if mtime is not None and mtimes is not None and item.get("id"):
            mtimes.add(item["id"], dest, mtime)
        elif mtime is not None:
            # A metadata PATCH (may keep an extra version on Business drives; simple_upload_threshold=0 avoids it).
            item = self.ctx.graph.request(
                "PATCH",
                paths.item_path(self.ctx.drive_base, dest) if not item.get("id") else self._by_id(item["id"]),
                json={"fileSystemInfo": file_system_info(mtime)},
                action=f"set modified time of {dest}",
            ).json()
        upload.reporter.set(len(data))
        return self._result(item, upload, status, digest, len(data))

    def _by_id(self, item_id: str) -> str:
        return self.ctx.by_id(item_id)

    # -- session upload --------------------------------------------------------------------------------
    def create_session(
        self, dest: str, size: int, conflict: str, mtime: float | None
    ) -> tuple[SessionEndpoint, float | None]:
        """POST createUploadSession with explicit conflict behaviour, name, size and (optionally) mtime."""
        name = paths.parent_and_name(dest)[1]
        item: dict[str, Any] = {CONFLICT_PARAM: conflict, "name": name, "fileSize": size}
        if mtime is not None:
            item["fileSystemInfo"] = file_system_info(mtime)
        url = paths.item_path(self.ctx.drive_base, dest, "createUploadSession")

        def create() -> Any:
            return self.ctx.graph.request(
                "POST", url, json={"item": item, "deferCommit": False}, action=f"create upload session for {dest}"
            )

        try:
            body = retry_not_found(create).json()
        except OneDriveConflictError as exc:
            raise self._session_conflict(exc, dest, size, conflict) from None
        upload_url = body.get("uploadUrl")
        if not upload_url:
            raise OneDriveError(f"create upload session for {dest}: the response has no uploadUrl")
        expires = parse_datetime(body.get("expirationDateTime"))
        return SessionEndpoint(self.ctx.graph, upload_url, size), expires.timestamp() if expires else None

    def _session_upload(self, upload: _Upload) -> UploadResult:
        dest, conflict, size, mtime, read_at = upload.dest, upload.conflict, upload.size, upload.mtime, upload.read_at
        reporter, resume, source = upload.reporter, upload.resume, upload.source
        key = resume.key if resume else None
        tracker = HashTracker(read_at)
        if conflict == "fail":
            existing = self._precheck_existing(dest, size, tracker)
            if existing is not None:
                reporter.set(size)
                return self._result(existing, upload, 200, tracker.b64digest(), 0)
        session, offset = self._resume_saved(upload)
        resumed_from = offset or 0
        if session is None:
            session, expires = self.create_session(dest, size, conflict, mtime)
            offset = 0
            if resume is not None and source is not None and upload.source_mtime_ns is not None:
                self.state.save(
                    resume.key,
                    SessionState(
                        upload_url=session.url,
                        size=size,
                        fragment_size=self.ctx.settings.fragment_size,
                        source_path=source,
                        source_mtime_ns=upload.source_mtime_ns,
                        destination=dest,
                        conflict=conflict,
                        created=time.time(),
                        expires=expires,
                        drive_id=resume.drive_id,
                        identity=resume.identity,
                    ),
                )
        else:
            log.info("resuming the upload of %s at byte %d of %d", dest, offset or size, size)
        sent = 0
        restarts = 0
        item: dict[str, Any] | None = None
        status = 0
        try:
            while item is None:
                if offset is None:  # the server has every byte: the item is committed
                    tracker.catch_up(size)
                    item, status = self._committed(dest), 201
                    break
                n = min(self.ctx.settings.fragment_size, size - offset)
                chunk = read_at(offset, n)
                if len(chunk) != n:
                    raise OneDriveIntegrityError(f"{source or dest} shrank while it was being uploaded")
                tracker.feed(offset, chunk)
                try:
                    next_offset, item, status = session.put(offset, chunk)
                except SessionGone:
                    if offset + n == size:  # the final fragment may have committed before its response was lost
                        committed = self._matching_item(dest, size, tracker.b64digest())
                        if committed is not None:
                            item, status = committed, 201
                            break
                    restarts += 1
                    if restarts > _MAX_RESTARTS:
                        raise OneDriveNotFoundError(
                            f"upload of {dest}: the upload session kept expiring; try again"
                        ) from None
                    log.warning("upload session for %s expired; starting a new one", dest)
                    session, _ = self.create_session(dest, size, conflict, mtime)
                    if key is not None:
                        self._update_url(key, session.url)
                    offset = 0
                    continue
                offset = next_offset
                sent += n
                reporter.set(size if offset is None else offset)
        except OneDriveConflictError as exc:
            self._drop(key, session=None)
            return self._identical_or_raise(exc, upload, tracker.b64digest(), sent)
        except BaseException as exc:
            keep = key is not None and not isinstance(exc, _FINAL_ERRORS)
            if keep:
                log.warning("upload of %s interrupted; its session is kept so a rerun resumes it", dest)
            else:
                self._drop(key, session)
            raise
        self._drop(key, session=None)
        reporter.set(size)
        return self._result(item, upload, status, tracker.b64digest(), sent, resumed_from)

    def _resume_saved(self, upload: _Upload) -> tuple[SessionEndpoint | None, int | None]:
        """A live session saved by an earlier attempt, and where to continue it; (None, None) otherwise."""
        resume, size = upload.resume, upload.size
        if resume is None or upload.source_mtime_ns is None:
            return None, None
        key = resume.key
        saved = self.state.load(key)
        if saved is None:
            return None, None
        session = SessionEndpoint(self.ctx.graph, saved.upload_url, size)
        if not saved.owned_by(drive_id=resume.drive_id, identity=resume.identity):
            log.warning(
                "discarding a saved upload session for %s: it belongs to another drive or account",
                saved.destination,
            )
            if not saved.expired():
                session.cancel()
            self.state.forget(key)
            return None, None
        if not saved.matches(size=size, mtime_ns=upload.source_mtime_ns, conflict=upload.conflict) or saved.expired():
            log.info("discarding a saved upload session: the source changed or the session expired")
            if not saved.expired():
                session.cancel()
            self.state.forget(key)
            return None, None
        try:
            offset = session.next_offset()
        except SessionGone:
            log.info("the saved upload session is gone (expired); starting over")
            self.state.forget(key)
            return None, None
        return session, offset

    def _update_url(self, key: str, url: str) -> None:
        saved = self.state.load(key)
        if saved is not None:
            saved.upload_url = url
            saved.created = time.time()
            self.state.save(key, saved)

    def _drop(self, key: str | None, session: SessionEndpoint | None) -> None:
        if session is not None:
            session.cancel()
        if key is not None:
            self.state.forget(key)

    def _session_conflict(
        self, exc: OneDriveConflictError, dest: str, size: int, conflict: str
    ) -> OneDriveConflictError:
        """What a 409 on createUploadSession means: the name is taken (under "fail", by a different file), or,
        when nothing else explains it, another upload session holds the file."""
        if conflict == "fail":
            try:
                self.ctx.item(dest)
            except OneDriveNotFoundError:
                pass
            else:
                return exc  # an existing file: the caller's identical-or-conflict check decides
        return OneDriveUploadInProgressError(
            f"another upload session holds {dest}: OneDrive for Business and SharePoint allow one per file, and an "
            "earlier attempt whose resume state was lost (a retry on another worker, a cleared cache folder) left "
            "one open. Graph offers no way to find or cancel it without its upload URL, so it ends when it expires "
            "(at its expirationDateTime, hours to days later). Retry after that, upload under another name, or "
            "set the connection's upload_state to a store every worker shares (airflow, or a shared "
            "file:///... folder) so a retry resumes the session instead of opening a new one",
            status=exc.status,
            code=exc.code,
            request_id=exc.request_id,
        )

    # -- committed items, identity, verification --------------------------------------------------------
    def _committed(self, dest: str) -> dict[str, Any]:
        return retry_not_found(lambda: self.ctx.item(dest))

    def _matching_item(self, dest: str, size: int, digest: str, *, exists: bool = False) -> dict[str, Any] | None:
        """The destination's driveItem if it holds exactly these bytes (same size and quickXorHash).

        :param exists: the server just said the item exists (409), so a 404 is eventual consistency: retry it.
        """
        try:
            item = retry_not_found(lambda: self.ctx.item(dest)) if exists else self.ctx.item(dest)
        except OneDriveNotFoundError:
            return None
        if "file" not in item or int(item.get("size") or 0) != size:
            return None
        remote = ((item.get("file") or {}).get("hashes") or {}).get("quickXorHash")
        return item if remote == digest else None

    def _precheck_existing(self, dest: str, size: int, tracker: HashTracker) -> dict[str, Any] | None:
        """Under "fail", look before sending gigabytes: identical -> its item; different -> conflict; absent -> None."""
        try:
            item = self.ctx.item(dest)
        except OneDriveNotFoundError:
            return None
        if "file" in item and int(item.get("size") or 0) == size:
            tracker.catch_up(size)
            remote = ((item.get("file") or {}).get("hashes") or {}).get("quickXorHash")
            if remote == tracker.b64digest():
                return item
        raise _conflict(dest)

    def _identical_or_raise(self, exc: OneDriveConflictError, upload: _Upload, digest: str, sent: int) -> UploadResult:
        """A 409 under "fail": success if the existing file has our bytes (e.g. a retried, committed upload)."""
        item = self._matching_item(upload.dest, upload.size, digest, exists=True)
        if item is None:
            raise _conflict(upload.dest, exc) from None
        return self._result(item, upload, 200, digest, sent, identical=True)

    def _result(
        self,
        item: dict[str, Any],
        upload: _Upload,
        status_code: int,
        digest: str,
        sent: int,
        resumed_from: int = 0,
        *,
        identical: bool = False,
    ) -> UploadResult:
        dest, conflict, size = upload.dest, upload.conflict, upload.size
        name = item.get("name") or paths.parent_and_name(dest)[1]
        parent = paths.parent_and_name(dest)[0]
        path = paths.join(parent, name) if parent else name
        self._verify(item, path, size, digest)
        if identical or (conflict == "fail" and sent == 0 and status_code == 200):
            status = "identical"
        elif conflict == "rename" and name != paths.parent_and_name(dest)[1]:
            status = "renamed"
        else:
            status = "created" if status_code == 201 else "replaced"
        elapsed = time.monotonic() - upload.started
        log.info("upload %s: %s, %d bytes (%d sent) in %.2f s", path, status, size, sent, elapsed)
        return UploadResult(
            path=path,
            size=size,
            id=item.get("id", ""),
            hash=digest,
            status=status,
            elapsed=round(elapsed, 6),
            bytes_sent=sent,
            resumed_from=resumed_from,
            source=upload.source,
        )

    def _verify(self, item: dict[str, Any], path: str, size: int, digest: str) -> None:
        settings = self.ctx.settings
        verify_transfer(
            "upload", path, item, size, digest, verify=settings.verify_hashes, lenient=settings.lenient_office_hashes
        )


def _conflict(dest: str, cause: OneDriveConflictError | None = None) -> OneDriveConflictError:
    return OneDriveConflictError(
        f"{dest} already exists with different content; pass conflict='replace' to overwrite it or "
        "conflict='rename' to keep both",
        status=409,
        code=cause.code if cause else "nameAlreadyExists",
        request_id=cause.request_id if cause else None,
    )


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
        self._tracker = HashTracker()
        self._session: SessionEndpoint | None = None
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
            except SessionGone:
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
        upload = self._upload(self.size, _buffer_reader(bytes(self._buffer)))
        if self.size <= self._ctx.settings.simple_upload_threshold:
            return uploader._simple(upload)
        try:
            item = self._send(bytes(self._buffer))
        except OneDriveConflictError as exc:
            self._session = None  # a commit-time conflict ends the session on the server
            return uploader._identical_or_raise(exc, upload, self._tracker.b64digest(), self._written)
        self._buffer.clear()
        if item is None:
            item = uploader._committed(self.path)
            self._status = 201
        self._session = None
        self._reporter.set(self.size)
        return uploader._result(item, upload, self._status, self._tracker.b64digest(), self._written)

    def _upload(self, size: int, read_at: Callable[[int, int], bytes]) -> _Upload:
        return _Upload(self.path, self.conflict, size, read_at, self._reporter, started=self._started)

    def _finish_spooled(self) -> UploadResult:
        spool = self._spool
        assert spool is not None
        size = spool.tell()
        spool.flush()
        spool.seek(0)
        try:
            if size <= self._ctx.settings.simple_upload_threshold:
                return self._uploader._simple(self._upload(size, _buffer_reader(spool.read())))
            fd = spool.fileno()  # rolls the spool over to a real file when it is still in memory
            self._reporter.total = size

            def read_at(offset: int, n: int) -> bytes:
                return os.pread(fd, n, offset)

            return self._uploader._session_upload(self._upload(size, read_at))
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
