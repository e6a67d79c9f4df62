"""OneDriveClient: files and folders of one drive, on top of :class:`~airflow_provider_onedrive.graph.GraphClient`.

No Airflow imports: this works in a plain Python process. Paths are relative to the drive root
(``reports/q1.csv``; ``onedrive://reports/q1.csv`` is accepted). The transfer policy (simple PUT vs upload
session, resumable sessions, verified atomic downloads, concurrency) lives in :mod:`.transfers`.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import IO, Any, Protocol
from urllib.parse import unquote

from airflow_provider_onedrive import paths as _paths
from airflow_provider_onedrive.errors import OneDriveNotFoundError, OneDriveValidationError
from airflow_provider_onedrive.graph import GraphClient
from airflow_provider_onedrive.transfers import folders
from airflow_provider_onedrive.transfers.common import MIB
from airflow_provider_onedrive.transfers.downloads import Downloader
from airflow_provider_onedrive.transfers.listing import (
    LIST_SELECT,
    compile_glob,
    compile_segment,
    split_glob,
    walk_tree,
)
from airflow_provider_onedrive.transfers.models import DownloadResult, RemoteItem, UploadResult
from airflow_provider_onedrive.transfers.operations import CopyMonitor, Operations
from airflow_provider_onedrive.transfers.progress import ProgressCallback, ProgressReporter
from airflow_provider_onedrive.transfers.state import UploadStateStore
from airflow_provider_onedrive.transfers.uploads import Uploader, check_fragment_size
from airflow_provider_onedrive.transfers.writer import UploadSession

__all__ = ["DriveLike", "OneDriveClient"]

log = logging.getLogger(__name__)


class DriveLike(Protocol):
    """Anything that names a drive lazily (the hook's DriveLocator): ``resolve(graph)`` -> ``"drives/{id}"``."""

    def resolve(self, graph: GraphClient) -> str: ...


class OneDriveClient:
    """Files and folders of one drive: listing, verified resumable transfers, and item operations.

    :param graph: the Graph client (session, token, retries, pacer) every request goes through.
    :param drive: a Graph-relative drive base (``"drives/{id}"``, ``"me/drive"``, ``"users/{upn}/drive"``,
        ``"sites/{id}/drive"``) or an object with ``resolve(graph)`` returning one (resolved once, lazily).
    :param simple_upload_threshold: files up to this size (and empty files) go in one PUT; larger ones use an
        upload session. With ``preserve_mtime`` a small file also gets a metadata PATCH, which may keep an extra
        version on Business drives; 0 sends every non-empty file through a session (no extra version).
    :param fragment_size: upload-session fragment size, rounded down to a multiple of 320 KiB, below 60 MiB.
    :param max_workers: concurrency of folder transfers, walks and multi-deletes (default 8).
    :param state_dir: where unfinished upload sessions are remembered for resume (private, 0700).
    :param verify_hashes: compare quickXorHash (and size) of every transfer with the server's.
    :param lenient_office_hashes: accept a hash/size mismatch for Office/PDF/HTML files (SharePoint rewrites them).
    :param progress_interval: seconds between progress log lines of one long transfer.
    :param progress_log_min_bytes: transfers smaller than this log no progress lines (the callback still runs).
    """

    def __init__(
        self,
        graph: GraphClient,
        drive: DriveLike | str = "me/drive",
        *,
        simple_upload_threshold: int = 4 * MIB,
        fragment_size: int = 10 * MIB,
        max_workers: int = 8,
        state_dir: str | os.PathLike[str] | None = None,
        verify_hashes: bool = True,
        lenient_office_hashes: bool = False,
        progress_interval: float = 5.0,
        progress_log_min_bytes: int = 8 * MIB,
    ) -> None:
        if simple_upload_threshold < 0:
            raise OneDriveValidationError("simple_upload_threshold must be >= 0")
        if max_workers < 1:
            raise OneDriveValidationError("max_workers must be at least 1")
        self.graph = graph
        self._drive = drive
        self._drive_base: str | None = drive.strip("/") if isinstance(drive, str) else None
        self._drive_lock = threading.Lock()
        self._drive_id: str | None = None
        self.simple_upload_threshold = simple_upload_threshold
        self.fragment_size = check_fragment_size(fragment_size)
        self.max_workers = max_workers
        self.verify_hashes = verify_hashes
        self.lenient_office_hashes = lenient_office_hashes
        self.progress_interval = progress_interval
        self.progress_log_min_bytes = progress_log_min_bytes
        self._uploader = Uploader(self, UploadStateStore(state_dir))
        self._downloader = Downloader(self)
        self._operations = Operations(self)

    # -- plumbing -------------------------------------------------------------------------------------
    @property
    def drive_base(self) -> str:
        """The Graph-relative drive base, e.g. ``drives/b!abc`` (resolved on first use)."""
        if self._drive_base is None:
            with self._drive_lock:
                if self._drive_base is None:
                    drive = self._drive
                    self._drive_base = (drive if isinstance(drive, str) else drive.resolve(self.graph)).strip("/")
        return self._drive_base

    def close(self) -> None:
        """Close the pooled HTTP connections of this client's Graph session."""
        self.graph.close()

    def __enter__(self) -> OneDriveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def drive_id(self) -> str:
        """The drive's id (for ``me/drive``, ``users/...``, ``sites/...`` bases: one GET, then cached)."""
        if self._drive_id is None:
            base = self.drive_base
            if base.startswith("drives/") and "/" not in base[len("drives/") :]:
                self._drive_id = unquote(base[len("drives/") :])
            else:
                self._drive_id = str(self.graph.get_json(base, params={"$select": "id"})["id"])
        return self._drive_id

    def reporter(
        self, path: str, total: int | None, direction: str, callback: ProgressCallback | None
    ) -> ProgressReporter:
        return ProgressReporter(
            path,
            total,
            direction,
            callback=callback,
            interval=self.progress_interval,
            log_min_bytes=self.progress_log_min_bytes,
        )

    # -- metadata -------------------------------------------------------------------------------------
    def item(self, path: str) -> dict[str, Any]:
        """The raw driveItem at ``path`` ('' = the root). Raises OneDriveNotFoundError if missing."""
        return self.graph.get_json(_paths.item_path(self.drive_base, path))

    def info(self, path: str) -> RemoteItem:
        """The item at ``path`` as a :class:`RemoteItem`."""
        normalized = _paths.normalize(path)
        return RemoteItem.from_graph(self.item(normalized), normalized)

    def exists(self, path: str) -> bool:
        try:
            self.item(path)
        except OneDriveNotFoundError:
            return False
        return True

    # -- listing --------------------------------------------------------------------------------------
    def list_children(self, folder: str = "", *, select: str | None = None) -> Iterator[dict[str, Any]]:
        """Raw driveItems in ``folder``, every page (``$top=1000``), lazily: memory stays at one page."""
        params = {"$top": 1000, "$select": select or LIST_SELECT}
        return self.graph.iter_values(_paths.item_path(self.drive_base, folder, "children"), params=params)

    def _list_folder(self, folder: RemoteItem | str) -> list[RemoteItem]:
        if isinstance(folder, RemoteItem):
            url = f"{self.drive_base}/items/{folder.id}/children"
            base = folder.path
        else:
            base = _paths.normalize(folder)
            url = _paths.item_path(self.drive_base, base, "children")
        params = {"$top": 1000, "$select": LIST_SELECT}
        return [RemoteItem.child_of(base, raw) for raw in self.graph.iter_values(url, params=params)]

    def ls(
        self,
        folder: str = "",
        *,
        recursive: bool = False,
        files_only: bool = False,
        folders_only: bool = False,
        modified_since: datetime | None = None,
    ) -> Iterator[RemoteItem]:
        """Items in ``folder`` (and below it when ``recursive``), filtered; lazy."""
        if files_only and folders_only:
            raise OneDriveValidationError("files_only and folders_only exclude each other")
        if modified_since is not None and modified_since.tzinfo is None:
            raise OneDriveValidationError("modified_since must be timezone-aware (e.g. datetime.now(timezone.utc))")
        base = _paths.normalize(folder)
        if recursive:
            source: Iterable[RemoteItem] = (
                item for _, dirs, files in self.walk(base, detail=True) for item in (*dirs, *files)
            )
        else:
            source = (RemoteItem.child_of(base, raw) for raw in self.list_children(base))
        for item in source:
            if (files_only and item.is_folder) or (folders_only and not item.is_folder):
                continue
            if modified_since is not None and (item.modified is None or item.modified < modified_since):
                continue
            yield item

    def walk(
        self, folder: str = "", *, detail: bool = False, max_workers: int | None = None
    ) -> Iterator[tuple[str, list[Any], list[Any]]]:
        """Like ``os.walk`` (top-down): ``(folder path, subfolder names, file names)`` for every folder.

        Folders are listed concurrently (``max_workers``); with ``detail=True`` the lists hold RemoteItems.
        """
        top = _paths.normalize(folder)
        for path, dirs, files in walk_tree(self._list_folder, top, top, max_workers or self.max_workers):
            if detail:
                yield path, dirs, files
            else:
                yield path, [d.name for d in dirs], [f.name for f in files]

    def glob(self, pattern: str, *, case_sensitive: bool = False) -> list[RemoteItem]:
        """Items matching a glob (``*``, ``?``, ``[...]``, ``**``), case-insensitive by default, sorted by path."""
        base, rest = split_glob(pattern)
        base = _paths.normalize(base)
        if not rest:
            try:
                return [self.info(base)]
            except OneDriveNotFoundError:
                return []
        try:
            if "**" in rest:
                regex = compile_glob(rest, case_sensitive=case_sensitive)
                prefix = len(base) + 1 if base else 0
                found = [
                    item
                    for _, dirs, files in self.walk(base, detail=True)
                    for item in (*dirs, *files)
                    if regex.fullmatch(item.path[prefix:])
                ]
            else:
                found = self._glob_levels(base, rest, case_sensitive)
        except OneDriveNotFoundError:
            return []
        return sorted(found, key=lambda item: item.path)

    def _glob_levels(self, base: str, segments: list[str], case_sensitive: bool) -> list[RemoteItem]:
        current: list[RemoteItem | str] = [base]
        for index, segment in enumerate(segments):
            regex = compile_segment(segment, case_sensitive=case_sensitive)
            last = index == len(segments) - 1
            matched = [
                child
                for folder in current
                for child in self._list_folder(folder)
                if regex.fullmatch(child.name) and (last or child.is_folder)
            ]
            if last:
                return matched
            current = list(matched)
        return []

    # -- uploads --------------------------------------------------------------------------------------
    def upload_file(
        self,
        local_path: str | os.PathLike[str],
        path: str,
        *,
        conflict: str = "fail",
        preserve_mtime: bool = True,
        progress: ProgressCallback | None = None,
        resume: bool = True,
    ) -> UploadResult:
        """Upload a local file to ``path``; verified by quickXorHash.

        :param conflict: ``fail`` (default; an identical existing file counts as success, status ``identical``),
            ``replace`` or ``rename``.
        :param preserve_mtime: set the remote file's modified time to the local file's.
        :param resume: remember a large upload's session on disk so a rerun (another process) continues it.
        """
        return self._uploader.upload_file(
            local_path, path, conflict=conflict, preserve_mtime=preserve_mtime, progress=progress, resume=resume
        )

    def upload_bytes(
        self,
        data: bytes | bytearray | memoryview,
        path: str,
        *,
        conflict: str = "fail",
        progress: ProgressCallback | None = None,
    ) -> UploadResult:
        """Upload in-memory bytes to ``path``."""
        return self._uploader.upload_bytes(bytes(data), path, conflict=conflict, progress=progress)

    def upload_stream(
        self,
        fileobj: IO[bytes],
        path: str,
        *,
        size: int | None = None,
        conflict: str = "fail",
        progress: ProgressCallback | None = None,
    ) -> UploadResult:
        """Upload a readable binary stream. With ``size`` it streams one fragment at a time; without, it is
        spooled to a temporary file first (Graph needs the total size in every fragment)."""
        with self.start_upload_session(path, size=size, conflict=conflict, progress=progress) as session:
            while block := fileobj.read(self.fragment_size):
                session.write(block)
            return session.finish()

    def start_upload_session(
        self, path: str, *, size: int | None = None, conflict: str = "fail", progress: ProgressCallback | None = None
    ) -> UploadSession:
        """A push-style upload (``write()``, ``finish()``, ``cancel()``), e.g. for fsspec's ``open("wb")``."""
        return UploadSession(self._uploader, path, size=size, conflict=conflict, progress=progress)

    def upload_folder(
        self,
        local_dir: str | os.PathLike[str],
        remote: str,
        *,
        conflict: str = "fail",
        max_workers: int | None = None,
        preserve_mtime: bool = True,
        progress: ProgressCallback | None = None,
    ) -> list[UploadResult]:
        """Upload a local directory tree into ``remote`` (created if needed); one result per file."""
        return folders.upload_folder(
            self,
            local_dir,
            remote,
            conflict=conflict,
            max_workers=max_workers,
            preserve_mtime=preserve_mtime,
            progress=progress,
        )

    # -- downloads ------------------------------------------------------------------------------------
    def download_file(
        self,
        path: str,
        local_path: str | os.PathLike[str],
        *,
        overwrite: bool = True,
        progress: ProgressCallback | None = None,
    ) -> DownloadResult:
        """Download ``path`` to ``local_path`` atomically (temp file, verify, rename); sets the local mtime."""
        return self._downloader.download_file(path, local_path, overwrite=overwrite, progress=progress)

    def download_to(self, path: str, fileobj: IO[bytes], *, progress: ProgressCallback | None = None) -> DownloadResult:
        """Stream ``path`` into a writable binary file object (verified; restarts need a seekable one)."""
        return self._downloader.download_to(path, fileobj, progress=progress)

    def download_bytes(self, path: str) -> bytes:
        """The whole content of ``path`` in memory (verified)."""
        buffer = io.BytesIO()
        self._downloader.download_to(path, buffer)
        return buffer.getvalue()

    def read_range(self, path_or_item: str | RemoteItem | dict[str, Any], start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the end of the file) via an HTTP Range on the download URL."""
        return self._downloader.read_range(path_or_item, start, length)

    def download_folder(
        self,
        remote: str,
        local_dir: str | os.PathLike[str],
        *,
        max_workers: int | None = None,
        overwrite: bool = True,
        progress: ProgressCallback | None = None,
    ) -> list[DownloadResult]:
        """Download the tree under ``remote`` into ``local_dir``, listing and downloading concurrently."""
        return folders.download_folder(
            self, remote, local_dir, max_workers=max_workers, overwrite=overwrite, progress=progress
        )

    # -- item operations ------------------------------------------------------------------------------
    def delete(self, paths: str | Iterable[str], *, missing_ok: bool = False, permanent: bool = False) -> list[str]:
        """Delete items (to the recycle bin unless ``permanent``); returns the paths deleted.

        The drive root is refused before any request. ``permanent`` needs Business/SharePoint.
        """
        return self._operations.delete(paths, missing_ok=missing_ok, permanent=permanent)

    def delete_glob(
        self, pattern: str, *, case_sensitive: bool = False, permanent: bool = False, missing_ok: bool = True
    ) -> list[str]:
        """Delete every item matching ``pattern`` (items inside a matched folder go with it)."""
        matched = [item.path for item in self.glob(pattern, case_sensitive=case_sensitive)]
        tops = [p for p in matched if not any(p.startswith(other + "/") for other in matched)]
        return self.delete(tops, missing_ok=missing_ok, permanent=permanent) if tops else []

    def mkdir(self, path: str, *, parents: bool = True, exist_ok: bool = True) -> RemoteItem:
        """Create a folder (and its parents); an existing folder is returned when ``exist_ok``."""
        return self._operations.mkdir(path, parents=parents, exist_ok=exist_ok)

    def move(self, src: str, dst: str, *, conflict: str = "fail") -> RemoteItem:
        """Move/rename ``src``. ``dst`` ending with '/' or naming an existing folder means into that folder."""
        return self._operations.move(src, dst, conflict=conflict)

    def copy(
        self, src: str, dst: str, *, conflict: str = "fail", wait: bool = True, timeout: float = 300.0
    ) -> RemoteItem | CopyMonitor:
        """Server-side copy. With ``wait`` it polls the monitor until done (``timeout`` seconds) and returns
        the new item; otherwise it returns the :class:`CopyMonitor`."""
        return self._operations.copy(src, dst, conflict=conflict, wait=wait, timeout=timeout)
