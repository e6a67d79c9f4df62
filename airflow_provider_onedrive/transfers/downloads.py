"""Downloads: the pre-authenticated URL fetched without Authorization, streamed, resumed, verified, atomic.

A file is streamed in 1 MiB blocks to a hidden temporary file beside the destination
(``.<name>.<random>.partial``), hashed on the way; then fsync, size and quickXorHash checks, and ``os.replace``
into place. A failure leaves the destination untouched and removes the temporary file. A stream cut short is
continued with ``Range: bytes=N-`` (only a 206 whose Content-Range starts at N is accepted; a 200 restarts
from zero); a 401/403/404/410 from the download host means the URL expired: a fresh one is fetched, and if the
item's eTag changed meanwhile, the download starts over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO, Any

import requests
import urllib3

from airflow_provider_onedrive import paths
from airflow_provider_onedrive.errors import (
    OneDriveConflictError,
    OneDriveError,
    OneDriveIntegrityError,
    OneDriveTransportError,
    OneDriveValidationError,
)
from airflow_provider_onedrive.hashing import QuickXorHash
from airflow_provider_onedrive.transfers.common import MIB, StallStreak, verify_transfer
from airflow_provider_onedrive.transfers.context import DriveContext, check_streams
from airflow_provider_onedrive.transfers.models import DownloadResult, RemoteItem, parse_datetime
from airflow_provider_onedrive.transfers.progress import ProgressCallback, ProgressReporter
from airflow_provider_onedrive.transfers.ranged import FallBackToOneStream, HeadStream, RangedFetch
from airflow_provider_onedrive.transfers.space import reserve_space

__all__ = ["Downloader"]

log = logging.getLogger("airflow_provider_onedrive.transfers.downloads")

BLOCK_SIZE = MIB
_URL_FIELD = "@microsoft.graph.downloadUrl"
_EXPIRED = (401, 403, 404, 410)
_STREAM_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    OneDriveTransportError,
)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
#: Download URLs are short-lived; refresh cached ones for ranged reads after this many seconds.
_URL_MAX_AGE = 600.0
_URL_CACHE_SIZE = 1024
_MAX_REFRESHES = 4
#: Downloads from this size up reserve their disk space first (see :mod:`.space`).
_RESERVE_MIN = MIB


class _Restart(Exception):
    """The download must start again from byte 0 (200 instead of 206, or the file changed)."""


class _Widen(Exception):
    """One stream is too slow for this large file: fetch the rest over several. Its bytes so far are kept, and its
    response (still open, its connection warmed up) goes on to feed the first of the ranges."""

    def __init__(self, download: _Download, head: HeadStream) -> None:
        super().__init__("one stream is slow")
        self.download = download
        self.head = head


#: How long a large download's first stream is watched before it is split (or not): seconds, and a fraction of
#: ``multi_stream_chunk``, whichever comes first.
_PROBE_SECONDS = 0.1
_PROBE_CHUNK_FRACTION = 2


class _Probe:
    """Decides once, early in a large download, whether its one stream is fast enough to keep alone."""

    def __init__(self, min_rate: int, probe_bytes: int) -> None:
        self.min_rate = min_rate
        self.probe_bytes = probe_bytes
        self.decided = False
        self.rate = 0.0
        self._first: tuple[float, int] | None = None

    def too_slow(self, length: int) -> bool:
        """Called after each block (``length`` bytes so far); True once, when the stream should be split."""
        if self.decided:
            return False
        now = time.monotonic()
        if self._first is None:  # timed from the first block, so the request's latency is not counted
            self._first = (now, length)
            return False
        elapsed, got = now - self._first[0], length - self._first[1]
        if got < self.probe_bytes and elapsed < _PROBE_SECONDS:
            return False
        self.decided = True
        self.rate = got / elapsed if elapsed > 0 else float("inf")
        return self.rate < self.min_rate


class _Sink:
    """Where downloaded bytes go; ``reset()`` rewinds for a restart (impossible for non-seekable streams)."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self.fileobj = fileobj
        try:
            self.start: int | None = fileobj.tell() if fileobj.seekable() else None
        except (OSError, AttributeError):
            self.start = None

    def write(self, block: bytes) -> None:
        self.fileobj.write(block)

    def reset(self) -> None:
        if self.start is None:
            raise OneDriveTransportError("the download must restart, but the target stream cannot be rewound")
        self.fileobj.seek(self.start)
        self.fileobj.truncate(self.start)


@dataclass
class _Download:
    """One download: the remote file (its driveItem, refreshed when its URL expires), where the bytes go, and
    how it reports (instead of long signatures)."""

    remote: str
    item: dict[str, Any]
    sink: _Sink
    reporter: ProgressReporter
    url: str
    local_path: str | None = None
    hasher: QuickXorHash = field(default_factory=QuickXorHash)
    started: float = field(default_factory=time.monotonic)
    probe: _Probe | None = None

    def restart(self) -> None:
        """Back to byte 0 (the server ignored a Range, or the file changed)."""
        self.sink.reset()
        self.hasher.reset()
        self.reporter.set(0)


class Downloader:
    """Downloads from one drive (:class:`~.context.DriveContext`)."""

    def __init__(self, ctx: DriveContext) -> None:
        self.ctx = ctx
        self._urls: dict[str, tuple[str, float]] = {}

    # -- URLs -----------------------------------------------------------------------------------------
    def download_url(self, item: dict[str, Any], *, fresh: bool = False) -> str:
        """A pre-authenticated URL for the item's bytes (cached briefly; ``fresh`` forces a new one)."""
        item_id = item["id"]
        cached = self._urls.get(item_id)
        if cached and not fresh and time.monotonic() - cached[1] < _URL_MAX_AGE:
            return cached[0]
        url = None if fresh else item.get(_URL_FIELD)
        if not url:
            response = self.ctx.graph.request(
                "GET",
                self.ctx.by_id(item_id, "content"),
                allow_redirects=False,
                stream=True,
                action=f"GET content of {item.get('name', item_id)}",
            )
            response.close()
            url = response.headers.get("Location")
            if response.status_code not in (301, 302, 303, 307, 308) or not url:
                raise OneDriveError(
                    f"GET content of {item.get('name', item_id)}: expected a redirect to the download URL, "
                    f"got HTTP {response.status_code}",
                    status=response.status_code,
                )
        if len(self._urls) >= _URL_CACHE_SIZE:
            self._urls.clear()
        self._urls[item_id] = (url, time.monotonic())
        return url

    def _refresh(self, item: dict[str, Any]) -> dict[str, Any]:
        """Fresh metadata (and URL) for an item whose download URL stopped working."""
        return self.ctx.graph.get_json(self.ctx.by_id(item["id"]))

    # -- whole files ----------------------------------------------------------------------------------
    def download_file(
        self,
        path: str,
        local_path: str | os.PathLike[str],
        *,
        overwrite: bool,
        progress: ProgressCallback | None,
        item: dict[str, Any] | None = None,
        streams: int | None = None,
    ) -> DownloadResult:
        remote = _file_path(path, self.ctx.drive_base)
        settings = self.ctx.settings
        streams = check_streams(streams) if streams is not None else settings.download_streams
        target = os.path.abspath(os.fspath(local_path))
        if os.path.isdir(target):
            raise OneDriveValidationError(f"{target} is a directory; give the local file path to write")
        if not overwrite and os.path.exists(target):
            raise OneDriveConflictError(f"{target} already exists locally; pass overwrite=True to replace it")
        item = item if item is not None else self.ctx.item(remote)
        directory, name = os.path.split(target)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{_temp_stem(name)}.", suffix=".partial", dir=directory)
        size = int(item.get("size") or 0)
        try:
            reserved = size >= _RESERVE_MIN and reserve_space(fd, size, directory)
            with os.fdopen(fd, "wb") as handle:
                split = streams > 1 and size >= settings.multi_stream_cutoff and "file" in item
                if split and not settings.multi_stream_min_rate:
                    result = self._ranged(remote, item, handle, size, streams, progress, target)
                elif split:
                    result = self._probed(remote, item, handle, size, streams, progress, target)
                else:
                    result = self._stream(remote, item, _Sink(handle), progress, target)
                if reserved and result.size != size:  # the bytes that came differ from the listed size
                    handle.truncate(result.size)
                handle.flush()
                if settings.fsync_downloads:
                    os.fsync(handle.fileno())
            modified = parse_datetime((item.get("fileSystemInfo") or {}).get("lastModifiedDateTime"))
            if modified is not None:
                os.utime(tmp, (time.time(), modified.timestamp()))
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return result

    def _probed(
        self,
        remote: str,
        item: dict[str, Any],
        handle: IO[bytes],
        size: int,
        streams: int,
        progress: ProgressCallback | None,
        local_path: str,
    ) -> DownloadResult:
        """One stream, split into ``streams`` ranged ones if it proves slower than ``multi_stream_min_rate``."""
        settings = self.ctx.settings
        probe = _Probe(settings.multi_stream_min_rate, settings.multi_stream_chunk // _PROBE_CHUNK_FRACTION)
        try:
            return self._stream(remote, item, _Sink(handle), progress, local_path, probe=probe)
        except _Widen as widen:
            handle.flush()
            log.info(
                "download %s: one stream gives %.1f MiB/s; fetching the rest over %d streams",
                remote,
                probe.rate / MIB,
                streams,
            )
            try:
                return self._ranged(
                    remote,
                    widen.download.item,
                    handle,
                    size,
                    streams,
                    progress,
                    local_path,
                    prefix=widen.download.hasher,
                    head=widen.head,
                )
            finally:
                widen.head.close()  # its range closes it when done; this covers a range that never ran

    def _ranged(
        self,
        remote: str,
        item: dict[str, Any],
        handle: IO[bytes],
        size: int,
        streams: int,
        progress: ProgressCallback | None,
        local_path: str,
        prefix: QuickXorHash | None = None,
        head: HeadStream | None = None,
    ) -> DownloadResult:
        """``streams`` ranged streams into the preallocated file; one stream from byte 0 if that cannot work.

        :param prefix: the hash of the bytes one stream already wrote from byte 0 (the ranges take the rest).
        :param head: that stream's open response, which goes on to feed the first range.
        """
        started = time.monotonic()
        settings = self.ctx.settings
        reporter = self.ctx.reporter(remote, size, "download", progress)

        def refresh_url() -> str:
            fresh = self._refresh(item)
            if fresh.get("eTag") != item.get("eTag"):
                raise FallBackToOneStream("the file changed during the download")
            return self.download_url(fresh, fresh=True)

        fd = handle.fileno()
        os.ftruncate(fd, size)
        fetch = RangedFetch(
            self.ctx.graph,
            remote,
            fd,
            size,
            url=self.download_url(item),
            refresh_url=refresh_url,
            streams=streams,
            chunk=settings.multi_stream_chunk,
            reporter=reporter,
            expired=_EXPIRED,
            stream_errors=_STREAM_ERRORS,
            retry_wait=self._stall_wait,
            block_size=BLOCK_SIZE,
            prefix=prefix,
            head=head,
        )
        try:
            hasher = fetch.run()
        except FallBackToOneStream as why:
            log.info("download %s: %s; fetching it again with one stream", remote, why)
            os.ftruncate(fd, 0)
            handle.seek(0)
            return self._stream(remote, self.ctx.item(remote), _Sink(handle), progress, local_path)
        digest = hasher.b64digest()
        self._verify(remote, item, hasher.length, digest, size)
        elapsed = time.monotonic() - started
        log.info("download %s: %d bytes in %.2f s over %d streams", remote, size, elapsed, streams)
        return DownloadResult(
            path=remote,
            local_path=local_path,
            size=size,
            id=item.get("id", ""),
            hash=digest,
            elapsed=round(elapsed, 6),
            resumed=fetch.resumed,
        )

    def download_to(self, path: str, fileobj: IO[bytes], *, progress: ProgressCallback | None = None) -> DownloadResult:
        remote = _file_path(path, self.ctx.drive_base)
        return self._stream(remote, self.ctx.item(remote), _Sink(fileobj), progress, None)

    def _stream(
        self,
        remote: str,
        item: dict[str, Any],
        sink: _Sink,
        progress: ProgressCallback | None,
        local_path: str | None,
        *,
        probe: _Probe | None = None,
    ) -> DownloadResult:
        if "file" not in item:
            raise OneDriveValidationError(f"{remote or '/'} is a folder, not a file; use download_folder")
        started = time.monotonic()
        reporter = self.ctx.reporter(remote, int(item.get("size") or 0) or None, "download", progress)
        # Hashed inline (about 0.1 ms per 1 MiB block): a helper thread hashing while this one reads made the
        # reads wait for the GIL between TLS records (1 GiB: median 2.78 s with a thread, 1.44 s inline).
        download = _Download(
            remote, item, sink, reporter, self.download_url(item), local_path, started=started, probe=probe
        )
        return self._stream_hashed(download)

    def _stream_hashed(self, download: _Download) -> DownloadResult:
        remote, hasher = download.remote, download.hasher
        done = 0
        total: int | None = None
        resumed = refreshes = 0
        streak = StallStreak()
        while True:
            try:
                total = self._fetch(download, done)
                if total is not None and hasher.length < total:
                    raise OneDriveTransportError(f"download {remote}: the stream ended early")
                break
            except _Restart:
                download.restart()
                total = None
            except _ExpiredUrl:
                refreshes += 1
                if refreshes > _MAX_REFRESHES:
                    raise OneDriveTransportError(f"download {remote}: the download URL kept expiring") from None
                fresh = self._refresh(download.item)
                if fresh.get("eTag") != download.item.get("eTag") and hasher.length:
                    log.warning("download %s: the file changed during the download; starting over", remote)
                    download.restart()
                    total = None
                download.item = fresh
                download.url = self.download_url(fresh, fresh=True)
            except _STREAM_ERRORS as exc:
                streak.broke(hasher.length)
                wait = self._stall_wait(streak.stalls, streak.since)
                if wait is None:
                    raise OneDriveTransportError(
                        f"download {remote}: the connection kept failing ({type(exc).__name__}) at byte "
                        f"{hasher.length}",
                        attempts=streak.stalls,
                    ) from None
                log.warning(
                    "download %s: stream broke at byte %d (%s); resuming", remote, hasher.length, type(exc).__name__
                )
                resumed += 1
                self.ctx.graph.pause(wait)
            done = hasher.length
        size = hasher.length
        digest = hasher.b64digest()
        item = download.item
        self._verify(remote, item, size, digest, total)
        download.reporter.set(size)
        elapsed = time.monotonic() - download.started
        log.info("download %s: %d bytes in %.2f s%s", remote, size, elapsed, f", resumed {resumed}x" if resumed else "")
        return DownloadResult(
            path=remote,
            local_path=download.local_path,
            size=size,
            id=item.get("id", ""),
            hash=digest,
            elapsed=round(elapsed, 6),
            resumed=resumed,
        )

    def _fetch(self, download: _Download, offset: int) -> int | None:
        """One GET from ``offset`` to the end into the sink; returns the total size the server announced."""
        remote, sink, hasher, reporter = download.remote, download.sink, download.hasher, download.reporter
        headers = {"Range": f"bytes={offset}-"} if offset else None
        response = self.ctx.graph.request(
            "GET",
            download.url,
            headers=headers,
            stream=True,
            authenticated=False,
            ok_statuses=(*_EXPIRED, 416),
            action=f"download {remote}",
        )
        handed_on = False
        try:
            status = response.status_code
            if status in _EXPIRED:
                raise _ExpiredUrl
            if status == 416:
                raise _Restart
            total = None
            if offset:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if status != 206 or not match or int(match.group(1)) != offset:
                    log.info("download %s: the server did not resume at byte %d; restarting", remote, offset)
                    raise _Restart
                total = int(match.group(3)) if match.group(3) != "*" else None
            elif response.headers.get("Content-Length", "").isdigit():
                total = int(response.headers["Content-Length"])
            # Whole blocks straight from urllib3 (as iter_content does): no per-record copies. A break loses at
            # most the block being read; the resume starts after the last block written.
            probe = download.probe
            blocks = response.raw.stream(BLOCK_SIZE, decode_content=False)
            for block in blocks:
                sink.write(block)
                hasher.update(block)
                reporter.set(hasher.length)
                if probe is not None and probe.too_slow(hasher.length) and hasher.length < (total or 0):
                    handed_on = True
                    raise _Widen(download, HeadStream(response, blocks))
            return total
        finally:
            if not handed_on:
                response.close()

    def _verify(self, remote: str, item: dict[str, Any], size: int, digest: str, total: int | None) -> None:
        if total is not None and size != total:
            raise OneDriveIntegrityError(f"download {remote}: received {size} bytes, the server announced {total}")
        settings = self.ctx.settings
        verify_transfer(
            "download",
            remote,
            item,
            size,
            digest,
            verify=settings.verify_hashes,
            lenient=settings.lenient_office_hashes,
        )

    # -- ranges ---------------------------------------------------------------------------------------
    def read_range(self, target: str | RemoteItem | dict[str, Any], start: int, length: int) -> bytes:
        """Bytes ``start``..``start+length`` of a file (fewer at the end of the file) via an HTTP Range."""
        if start < 0 or length < 0:
            raise OneDriveValidationError(f"invalid range start={start} length={length}")
        if isinstance(target, RemoteItem):
            item = target.raw or self.ctx.item(target.path)
        elif isinstance(target, dict):
            item = target
        else:
            item = self.ctx.item(target)
        size = int(item.get("size") or 0)
        if length == 0 or start >= size:
            return b""
        end = min(start + length, size) - 1
        fresh = False
        stalls = 0
        started = time.monotonic()
        while True:
            url = self.download_url(item, fresh=fresh)
            try:
                return self._read_range_once(url, start, end)
            except _ExpiredUrl:
                if fresh:
                    raise OneDriveTransportError(f"ranged read of {item.get('name')}: download URL refused") from None
                item, fresh = self._refresh(item), True
            except _STREAM_ERRORS as exc:
                stalls += 1
                wait = self._stall_wait(stalls, started)
                if wait is None:
                    raise OneDriveTransportError(
                        f"ranged read of {item.get('name')} failed ({type(exc).__name__})", attempts=stalls
                    ) from None
                self.ctx.graph.pause(wait)

    def _stall_wait(self, stalls: int, since: float) -> float | None:
        """The retry policy's decision for a stream that broke ``stalls`` times in a row without progress."""
        return self.ctx.graph.retry.decide(
            attempt=stalls, status=None, retry_after=None, elapsed=time.monotonic() - since
        )

    def _read_range_once(self, url: str, start: int, end: int) -> bytes:
        response = self.ctx.graph.request(
            "GET",
            url,
            headers={"Range": f"bytes={start}-{end}"},
            stream=True,
            authenticated=False,
            ok_statuses=(*_EXPIRED, 416),
            action="ranged read",
        )
        with response:
            if response.status_code in _EXPIRED:
                raise _ExpiredUrl
            if response.status_code == 416:
                return b""
            want = end - start + 1
            if response.status_code == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if not match or int(match.group(1)) != start:
                    raise OneDriveTransportError("ranged read: the server answered another range")
                data = response.raw.read(want, decode_content=True)
                if len(data) < min(want, int(match.group(2)) - start + 1):
                    raise OneDriveTransportError("ranged read ended early")
                return data
            # The server ignored the Range (200): skip to ``start`` in the full body.
            skipped = 0
            out = bytearray()
            for block in response.iter_content(BLOCK_SIZE):
                if skipped + len(block) <= start:
                    skipped += len(block)
                    continue
                out += block[max(0, start - skipped) :]
                skipped += len(block)
                if len(out) >= want:
                    break
            return bytes(out[:want])


class _ExpiredUrl(Exception):
    """The download host refused the pre-authenticated URL (expired): fetch a fresh one."""


def _file_path(path: str, drive_base: str) -> str:
    """A remote file path, normalised; the drive root is refused before any request (a client rooted at a
    shared file addresses that file as '')."""
    remote = paths.normalize(path)
    if not remote and paths.drive_part(drive_base)[1] is None:
        raise OneDriveValidationError("the drive root is a folder, not a file: name a file, or use download_folder")
    return remote


#: Bytes of the destination's name kept in its temporary name: with the dot, tempfile's 8 random characters and
#: ".partial", the temporary name stays within the 255-byte name limit of common file systems.
_TEMP_STEM_BYTES = 200


def _temp_stem(name: str) -> str:
    """The destination's name, cut to whole characters within :data:`_TEMP_STEM_BYTES` bytes of UTF-8."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= _TEMP_STEM_BYTES:
        return name
    return encoded[:_TEMP_STEM_BYTES].decode("utf-8", "ignore")
