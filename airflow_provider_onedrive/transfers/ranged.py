"""Parallel ranged downloads: a large file fetched as fixed-size ranges over several streams, written in place.

On real links one HTTP stream is capped well below the link (per-connection throughput limits and latency), so
files at or above ``multi_stream_cutoff`` are fetched by ``download_streams`` streams at once, each taking the next
``multi_stream_chunk``-sized range (``Range: bytes=a-b``) and writing it with ``pwrite`` at its offset in the
preallocated temporary file. Memory stays at about one block per stream.

Each range is hashed as it arrives by its own quickXorHash started at the range's offset: the hash places byte
``i`` by its absolute position, so the ranges' states combine into the file's hash by XOR, with no second read of
the file. A range that breaks resumes from its last byte on its own, under the client's retry policy; an expired
download URL is refreshed once for all streams; a changed eTag or a server that ignores ``Range`` stops the
parallel attempt, and the caller falls back to one stream from byte 0.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_provider_onedrive.errors import OneDriveIntegrityError, OneDriveTransportError
from airflow_provider_onedrive.hashing import QuickXorHash
from airflow_provider_onedrive.transfers.common import StallStreak

if TYPE_CHECKING:
    from airflow_provider_onedrive.graph import GraphClient
    from airflow_provider_onedrive.transfers.progress import ProgressReporter

__all__ = ["FallBackToOneStream", "RangedFetch", "plan_ranges"]

log = logging.getLogger("airflow_provider_onedrive.transfers.downloads")


class HeadStream:
    """The open response of a download's first stream, positioned where its bytes so far end: the first range
    reads on from it (its connection is past TCP's slow start) instead of opening a new one."""

    def __init__(self, response: Any, blocks: Iterator[bytes]) -> None:
        self.response = response
        self.blocks = blocks

    def close(self) -> None:
        self.response.close()


class FallBackToOneStream(Exception):
    """The parallel attempt cannot go on (the server ignored Range, or the file changed): use one stream."""


def plan_ranges(size: int, chunk: int, start: int = 0) -> list[tuple[int, int]]:
    """``[a, b)`` ranges of at most ``chunk`` bytes covering bytes ``start`` to ``size``, in order."""
    return [(a, min(a + chunk, size)) for a in range(start, size, chunk)]


class RangedFetch:
    """One file fetched by several streams into ``fd`` (preallocated to ``size``); :meth:`run` returns its hash.

    :param url: the current pre-authenticated download URL; ``refresh_url()`` returns a new one (it raises
        :class:`FallBackToOneStream` itself when the file changed meanwhile).
    :param expired: statuses meaning the URL expired.
    :param stream_errors: exceptions meaning a stream broke (the range resumes).
    :param retry_wait: ``(stalls, since)`` -> seconds to wait before resuming a range, or None to give up.
    :param prefix: the hash of bytes ``0..prefix.length`` already in ``fd`` (one stream began the download);
        the ranges cover the rest.
    :param head: the open response that wrote ``prefix``; it feeds the first range (closed when that is done).
    """

    def __init__(
        self,
        graph: GraphClient,
        remote: str,
        fd: int,
        size: int,
        *,
        url: str,
        refresh_url: Callable[[], str],
        streams: int,
        chunk: int,
        reporter: ProgressReporter,
        expired: tuple[int, ...],
        stream_errors: tuple[type[BaseException], ...],
        retry_wait: Callable[[int, float], float | None],
        block_size: int,
        prefix: QuickXorHash | None = None,
        head: HeadStream | None = None,
    ) -> None:
        self.graph = graph
        self.remote = remote
        self.fd = fd
        self.size = size
        self.url = url
        self.refresh_url = refresh_url
        self.streams = streams
        self.chunk = chunk
        self.reporter = reporter
        self.expired = expired
        self.stream_errors = stream_errors
        self.retry_wait = retry_wait
        self.block_size = block_size
        self.resumed = 0
        self.prefix = prefix if prefix is not None else QuickXorHash()
        self.head = head
        self._done = self.prefix.length
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def run(self) -> QuickXorHash:
        """Fetch every range; the combined quickXorHash of the whole file. Raises the first range's failure."""
        ranges = plan_ranges(self.size, self.chunk, self.prefix.length)
        with ThreadPoolExecutor(max(1, min(self.streams, len(ranges))), thread_name_prefix="onedrive-range") as pool:
            heads = [self.head] + [None] * (len(ranges) - 1)
            futures = [pool.submit(self._fetch_range, a, b, h) for (a, b), h in zip(ranges, heads, strict=False)]
            partials: list[QuickXorHash] = []
            errors: list[BaseException] = []
            for future in futures:
                try:
                    partials.append(future.result())
                except BaseException as exc:
                    if not errors:
                        self._stop.set()  # the other ranges stop at their next block
                        for pending in futures:
                            pending.cancel()
                    errors.append(exc)
        if errors:  # the range that failed first, not the ranges it stopped
            raise next((e for e in errors if not isinstance(e, _Stopped | CancelledError)), errors[0])
        combined = self.prefix.copy()
        for partial in partials:
            combined.merge(partial)
        if combined.length != self.size:
            raise OneDriveIntegrityError(f"download {self.remote}: the ranges cover {combined.length} of {self.size}")
        return combined

    def _current_url(self, failed: str) -> str:
        """A fresh URL after ``failed`` expired; threads that saw the same URL expire refresh it once."""
        with self._lock:
            if self.url == failed:
                self.url = self.refresh_url()
            return self.url

    def _fetch_range(self, start: int, end: int, head: HeadStream | None = None) -> QuickXorHash:
        hasher = QuickXorHash.starting_at(start)  # hasher.length: the next byte this range needs
        streak = StallStreak()
        if head is not None:
            try:
                self._write_blocks(head.blocks, end, hasher, cut=True)
            except self.stream_errors as exc:  # resumed below from its last byte, like any broken range
                name = type(exc).__name__
                log.warning("download %s: stream broke at byte %d (%s); resuming", self.remote, hasher.length, name)
            finally:
                head.close()
        while hasher.length < end:
            if self._stop.is_set():
                raise _Stopped("another range failed")
            url = self.url
            try:
                self._read(url, end, hasher)
            except _Expired:
                self._current_url(url)
                continue
            except self.stream_errors as exc:
                pos = hasher.length
                streak.broke(pos)
                wait = self.retry_wait(streak.stalls, streak.since)
                if wait is None:
                    raise OneDriveTransportError(
                        f"download {self.remote}: the range {start}-{end - 1} kept failing ({type(exc).__name__}) "
                        f"at byte {pos}",
                        attempts=streak.stalls,
                    ) from None
                log.warning(
                    "download %s: range broke at byte %d (%s); resuming it", self.remote, pos, type(exc).__name__
                )
                with self._lock:
                    self.resumed += 1
                self.graph.pause(wait)
        return hasher

    def _read(self, url: str, end: int, hasher: QuickXorHash) -> None:
        """One GET from the range's next byte (``hasher.length``) to ``end - 1``, written in place and hashed
        block by block (so a break keeps every block already written)."""
        pos = hasher.length
        response = self.graph.request(
            "GET",
            url,
            headers={"Range": f"bytes={pos}-{end - 1}"},
            stream=True,
            authenticated=False,
            ok_statuses=(*self.expired, 416),
            action=f"download {self.remote} (range {pos}-{end - 1})",
        )
        with response:
            if response.status_code in self.expired:
                raise _Expired
            if response.status_code != 206 or not _starts_at(response.headers.get("Content-Range", ""), pos):
                raise FallBackToOneStream(f"the server did not answer the range at byte {pos}")
            self._write_blocks(response.raw.stream(self.block_size, decode_content=False), end, hasher, cut=False)
        if hasher.length < end:
            raise OneDriveTransportError(f"download {self.remote}: the range ended early at byte {hasher.length}")

    def _write_blocks(self, blocks: Iterator[bytes], end: int, hasher: QuickXorHash, *, cut: bool) -> None:
        """Write ``blocks`` in place from ``hasher.length`` up to ``end``, hashing them. ``cut``: the stream goes
        on past ``end`` (the first stream's open-ended response), so stop there; else more is an error."""
        pos = hasher.length
        for block in blocks:
            if self._stop.is_set():
                raise _Stopped("another range failed")
            if pos + len(block) > end:
                if not cut:
                    raise OneDriveIntegrityError(f"download {self.remote}: the server sent more than the range")
                block = block[: end - pos]
            os.pwrite(self.fd, block, pos)
            hasher.update(block)
            pos += len(block)
            with self._lock:
                self._done += len(block)
                self.reporter.set(self._done)
            if pos >= end:
                return


class _Stopped(FallBackToOneStream):
    """This range stopped because another one failed."""


class _Expired(Exception):
    """The download URL stopped working (401/403/404/410)."""


def _starts_at(content_range: str, pos: int) -> bool:
    unit, _, rest = content_range.partition(" ")
    return unit.strip().lower() == "bytes" and rest.split("-", 1)[0].strip() == str(pos)
