"""OneDriveClient: files and folders of one drive, on top of :class:`~airflow_provider_onedrive.graph.GraphClient`.

No Airflow imports: this works in a plain Python process. Paths are relative to the drive root
(``reports/q1.csv``; ``onedrive://reports/q1.csv`` is accepted). The transfer policy (simple PUT vs upload
session, resumable sessions, verified atomic downloads, concurrency) lives in :mod:`.transfers`.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import IO, Any

from airflow_provider_onedrive import paths as _paths
from airflow_provider_onedrive.errors import OneDriveNotFoundError, OneDriveValidationError
from airflow_provider_onedrive.graph import GraphClient
from airflow_provider_onedrive.matching import GlobPattern, segments_regex
from airflow_provider_onedrive.transfers import folders
from airflow_provider_onedrive.transfers.common import MIB, check_seconds, check_workers
from airflow_provider_onedrive.transfers.context import DriveContext, DriveLike, TransferSettings
from airflow_provider_onedrive.transfers.downloads import Downloader
from airflow_provider_onedrive.transfers.listing import LIST_SELECT, walk_tree
from airflow_provider_onedrive.transfers.models import DownloadResult, RemoteItem, UploadResult, check_time_basis
from airflow_provider_onedrive.transfers.operations import CopyMonitor, Operations
from airflow_provider_onedrive.transfers.progress import ProgressCallback
from airflow_provider_onedrive.transfers.sharing import SharedItem, Sharing, SharingLink, check_link_options
from airflow_provider_onedrive.transfers.state import SessionStateStore, UploadStateStore
from airflow_provider_onedrive.transfers.uploads import Uploader, UploadSession

__all__ = ["DriveLike", "OneDriveClient"]

log = logging.getLogger(__name__)


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
    :param state_store: a store for them instead (:mod:`.transfers.state`: a shared one lets a retry on another
        worker resume, e.g. ``FsspecStateStore("file:///mnt/shared/onedrive-uploads")``).
    :param verify_hashes: compare quickXorHash (and size) of every transfer with the server's.
    :param lenient_office_hashes: accept a hash/size mismatch for Office/PDF/HTML files (SharePoint rewrites them).
    :param progress_interval: seconds between progress log lines of one long transfer.
    :param progress_log_min_bytes: transfers smaller than this log no progress lines (the callback still runs).
    :param download_streams: streams fetching one large file at once (ranged requests written in place); 1 turns
        it off. Real links cap each stream, so several fill the link (see docs/performance.md).
    :param multi_stream_cutoff: files from this size up use ``download_streams`` streams (default 64 MiB).
    :param multi_stream_chunk: bytes per ranged request (default 16 MiB).
    :param multi_stream_min_rate: a large download starts on one stream and opens the others only if that one
        is slower than this many bytes per second after its first moments (default 100 MiB/s: a stream that
        fast is on a LAN or loopback, where more streams only compete for CPU); 0 opens them all at once.
    :param fsync_downloads: fsync each download before renaming it into place, so a power loss cannot leave a
        renamed but empty file (default True; False is faster on slow disks and is what rclone does).
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
        state_store: SessionStateStore | None = None,
        verify_hashes: bool = True,
        lenient_office_hashes: bool = False,
        progress_interval: float = 5.0,
        progress_log_min_bytes: int = 8 * MIB,
        download_streams: int = 4,
        multi_stream_cutoff: int = 64 * MIB,
        multi_stream_chunk: int = 16 * MIB,
        multi_stream_min_rate: int = 100 * MIB,
        fsync_downloads: bool = True,
    ) -> None:
        self.settings = TransferSettings(
            simple_upload_threshold=simple_upload_threshold,
            fragment_size=fragment_size,
            max_workers=max_workers,
            verify_hashes=verify_hashes,
            lenient_office_hashes=lenient_office_hashes,
            progress_interval=progress_interval,
            progress_log_min_bytes=progress_log_min_bytes,
            download_streams=download_streams,
            multi_stream_cutoff=multi_stream_cutoff,
            multi_stream_chunk=multi_stream_chunk,
            multi_stream_min_rate=multi_stream_min_rate,
            fsync_downloads=fsync_downloads,
        )
        self.graph = graph
        self.context = DriveContext(graph, drive, self.settings)
        self.state_store = state_store if state_store is not None else UploadStateStore(state_dir)
        self._uploader = Uploader(self.context, self.state_store)
        self._downloader = Downloader(self.context)
        self._operations = Operations(self.context)
        self._sharing = Sharing(self.context)

    # -- plumbing -------------------------------------------------------------------------------------
    @property
    def drive_base(self) -> str:
        """The Graph-relative drive base, e.g. ``drives/b!abc`` (resolved on first use)."""
        return self.context.drive_base

    @property
    def drive_id(self) -> str:
        """The drive's id (for ``me/drive``, ``users/...``, ``sites/...`` bases: one GET, then cached)."""
        return self.context.drive_id

    @property
    def simple_upload_threshold(self) -> int:
        return self.settings.simple_upload_threshold

    @property
    def fragment_size(self) -> int:
        return self.settings.fragment_size

    @property
    def max_workers(self) -> int:
        return self.settings.max_workers

    @property
    def verify_hashes(self) -> bool:
        return self.settings.verify_hashes

    @property
    def lenient_office_hashes(self) -> bool:
        return self.settings.lenient_office_hashes

    def close(self) -> None:
        """Close the pooled HTTP connections of this client's Graph session."""
        self.graph.close()

    def __enter__(self) -> OneDriveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata -------------------------------------------------------------------------------------
    def item(self, path: str) -> dict[str, Any]:
        """The raw driveItem at ``path`` ('' = the root). Raises OneDriveNotFoundError if missing."""
        return self.context.item(path)

    def info(self, path: str) -> RemoteItem:
        """The item at ``path`` as a :class:`RemoteItem`."""
        return self.context.info(path)

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

    def ls(
        self,
        folder: str = "",
        *,
        recursive: bool = False,
        files_only: bool = False,
        folders_only: bool = False,
        modified_since: datetime | None = None,
        modified_by: str = "file_system",
        max_depth: int | None = None,
    ) -> Iterator[RemoteItem]:
        """Items in ``folder`` (and below it when ``recursive``, at most ``max_depth`` levels), filtered; lazy.

        :param modified_since: only items modified at or after this aware datetime, by the time ``modified_by``
            names: ``"file_system"`` (``RemoteItem.modified``, which uploads may set to a local mtime) or
            ``"drive"`` (when the item last changed in the drive).
        """
        if files_only and folders_only:
            raise OneDriveValidationError("files_only and folders_only exclude each other")
        if modified_since is not None and modified_since.tzinfo is None:
            raise OneDriveValidationError("modified_since must be timezone-aware (e.g. datetime.now(timezone.utc))")
        check_time_basis(modified_by)
        base = _paths.normalize(folder)
        if recursive:
            source: Iterable[RemoteItem] = (
                item for _, dirs, files in self.walk(base, detail=True, max_depth=max_depth) for item in (*dirs, *files)
            )
        else:
            source = RemoteItem.children(base, self.list_children(base))
        for item in source:
            if (files_only and item.is_folder) or (folders_only and not item.is_folder):
                continue
            if modified_since is not None:
                moment = item.modified_at(modified_by)
                if moment is None or moment < modified_since:
                    continue
            yield item

    def walk(
        self,
        folder: str = "",
        *,
        detail: bool = False,
        max_workers: int | None = None,
        max_depth: int | None = None,
    ) -> Iterator[tuple[str, list[Any], list[Any]]]:
        """Like ``os.walk`` (top-down): ``(folder path, subfolder names, file names)`` for every folder.

        Folders are listed concurrently (``max_workers``); with ``detail=True`` the lists hold RemoteItems;
        ``max_depth`` limits how many levels are listed (1 = ``folder``'s children only).
        """
        top = _paths.normalize(folder)
        workers = check_workers(max_workers) or self.max_workers
        for path, dirs, files in walk_tree(self.context.list_folder, top, top, workers, max_depth):
            if detail:
                yield path, dirs, files
            else:
                yield path, [d.name for d in dirs], [f.name for f in files]

    def glob(self, pattern: str, *, case_sensitive: bool = False) -> list[RemoteItem]:
        """Items (files and folders) matching a glob, sorted by path; see :mod:`..matching` for the semantics."""
        glob = GlobPattern.parse(pattern)
        if not glob.is_glob:
            try:
                return [self.info(glob.base)]
            except OneDriveNotFoundError:
                return []
        try:
            if "**" in glob.segments:
                regex = glob.regex(case_sensitive=case_sensitive)
                prefix = len(glob.base) + 1 if glob.base else 0
                found = [
                    item
                    for _, dirs, files in self.walk(glob.base, detail=True)
                    for item in (*dirs, *files)
                    if regex.fullmatch(item.path[prefix:])
                ]
            else:
                found = self._glob_levels(glob.base, glob.segments, case_sensitive)
        except OneDriveNotFoundError:
            return []
        return sorted(found, key=lambda item: item.path)

    def _glob_levels(self, base: str, segments: tuple[str, ...], case_sensitive: bool) -> list[RemoteItem]:
        """Match level by level, listing only the folders whose names match the pattern so far."""
        current: list[RemoteItem | str] = [base]
        for index, segment in enumerate(segments):
            regex = segments_regex((segment,), case_sensitive=case_sensitive)
            last = index == len(segments) - 1
            matched = [
                child
                for folder in current
                for child in self.context.list_folder(folder)
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
        return self._uploader.upload_bytes(data, path, conflict=conflict, progress=progress)

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
            self._uploader,
            self._operations,
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
        streams: int | None = None,
        item: RemoteItem | None = None,
    ) -> DownloadResult:
        """Download ``path`` to ``local_path`` atomically (temp file, verify, rename); sets the local mtime.

        :param streams: ranged streams for a file of at least ``multi_stream_cutoff`` bytes (default: the
            client's ``download_streams``; 1 = one stream).
        :param item: the file's :class:`RemoteItem` when the caller just looked it up (``info``), which saves
            looking it up again (and, with its download URL, the redirect request too).
        """
        raw = item.raw if item is not None and item.raw else None
        return self._downloader.download_file(
            path, local_path, overwrite=overwrite, progress=progress, streams=streams, item=raw
        )

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
        streams: int | None = None,
    ) -> list[DownloadResult]:
        """Download the tree under ``remote`` into ``local_dir``, listing and downloading concurrently (at most
        ``max_workers`` files, each large one over ``streams`` ranged streams)."""
        return folders.download_folder(
            self._downloader,
            remote,
            local_dir,
            max_workers=max_workers,
            overwrite=overwrite,
            progress=progress,
            streams=streams,
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
        return self._operations.copy(src, dst, conflict=conflict, wait=wait, timeout=check_seconds(timeout, "timeout"))

    # -- sharing --------------------------------------------------------------------------------------
    def create_link(
        self,
        path: str,
        *,
        type: str = "view",
        scope: str | None = None,
        expires: datetime | str | None = None,
        password: str | None = None,
        recipients: Iterable[Any] | None = None,
        retain_inherited_permissions: bool | None = None,
    ) -> SharingLink:
        """A sharing link of ``path`` (``createLink``). Asking again for the same type and scope returns the
        existing link (``created`` False), so retries are harmless.

        Options are checked before any request (see :func:`~.transfers.sharing.check_link_options`), and those
        that depend on the drive (personal or Business) and the item before the link is created.

        :param type: ``view`` (read-only), ``edit`` (read-write) or ``embed`` (OneDrive Personal files only).
        :param scope: ``anonymous`` (anyone with the URL: a bearer credential), ``organization`` (anyone signed
            in to the tenant), ``users`` (specific people), or None for the organization's default.
        :param expires: when the link stops working (a timezone-aware datetime or ISO 8601 text).
        :param password: a password for the link (OneDrive Personal only).
        :param recipients: email addresses (or ``{"objectId": ...}``/``{"alias": ...}``) for scope ``users``.
        :param retain_inherited_permissions: False removes inherited permissions when the item is shared for
            the first time (Graph's default keeps them).
        """
        options = check_link_options(
            type=type,
            scope=scope,
            expires=expires,
            password=password,
            recipients=recipients,
            retain_inherited_permissions=retain_inherited_permissions,
        )
        return self._sharing.create_link(path, options)

    def permissions(self, path: str) -> list[dict[str, Any]]:
        """The sharing permissions of ``path`` (raw Graph permission resources, links included)."""
        return self._sharing.permissions(path)

    def resolve_share(self, share: str, *, redeem: bool = True) -> SharedItem:
        """The item a sharing URL (``https://...``) or share id (``s!...``, ``u!...``) names, with the drive and
        item ids that address it. ``redeem`` asks for durable access (``Prefer: redeemSharingLink``)."""
        return self._sharing.resolve(share, redeem=redeem)

    def for_share(self, share: str | SharedItem, *, redeem: bool = True) -> OneDriveClient:
        """A client rooted at a shared item: paths are relative to the shared folder (``""`` is the folder,
        or the shared file itself), and every operation (ls, download, upload, mkdir...) works below it.

        It shares this client's Graph session and settings; closing either closes the session of both.
        """
        shared = share if isinstance(share, SharedItem) else self.resolve_share(share, redeem=redeem)
        options = dataclasses.asdict(self.settings)
        return OneDriveClient(self.graph, shared.base, state_store=self.state_store, **options)

    def shared_with_me(self) -> list[dict[str, Any]]:
        """Items shared with the signed-in user (``/me/drive/sharedWithMe``: delegated connections only, and
        deprecated by Microsoft, see docs/sharing.md): each entry's ``remoteItem`` (``id``, ``name``,
        ``parentReference.driveId``...)."""
        return list(self._sharing.shared_with_me())
