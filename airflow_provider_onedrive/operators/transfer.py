"""Upload and download operators: local files, folders and globs to and from a drive."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.matching import GlobPattern, has_magic
from airflow_provider_onedrive.operators.base import (
    OneDriveBaseOperator,
    check_conflict,
    describe_rate,
    is_templated,
    remote_path_or_glob,
)
from airflow_provider_onedrive.paths import join, local_child
from airflow_provider_onedrive.transfers.common import check_workers
from airflow_provider_onedrive.transfers.context import check_streams

if TYPE_CHECKING:
    from airflow_provider_onedrive.drive import OneDriveClient

__all__ = ["OneDriveDownloadOperator", "OneDriveUploadOperator"]


class OneDriveUploadOperator(OneDriveBaseOperator):
    """Upload a local file, a local folder (recursively), the files matching a local glob, or ``data``.

    Where things land: with ``data`` or a single file, ``remote_path`` is the file's path, unless it ends
    with ``/`` (then the file keeps its name inside that folder). A folder or a glob always uploads into the
    folder ``remote_path``. Missing remote folders are created. Files above the simple-upload threshold go
    through a resumable upload session; every upload is verified by size and quickXorHash.

    :param remote_path: destination file or folder, relative to the drive root (templated).
    :param local_path: a local file, folder or glob such as ``/data/out/*.csv`` (templated).
    :param data: text or bytes to upload instead of a local file (templated); text is encoded with ``encoding``.
    :param conflict: what to do when the destination exists: ``fail`` (default, never overwrites),
        ``replace`` or ``rename``. Re-uploading identical bytes is not a conflict.
    :param encoding: encoding of ``data`` when it is text.
    :param max_workers: files transferred at once for a folder or a glob (default: the client's, 8).
    :param preserve_mtime: give each remote file its local file's modification time (default True). For a file
        up to the simple-upload threshold that costs a second request (a metadata PATCH, which may also keep an
        extra version on Business drives); ``False`` sends one request per small file.
    :param share: also create a sharing link for each uploaded file: the keyword arguments of
        :class:`~airflow_provider_onedrive.operators.share.OneDriveShareOperator` (``link_type``, ``scope``,
        ``expires``, ``expires_in``, ``password``, ``recipients``, ``retain_inherited_permissions``,
        ``mask_link``), e.g. ``{"scope": "organization", "expires_in": timedelta(days=30)}``. Each file's record
        then has a ``link`` (the share operator's XCom dict); see docs/sharing.md about XCom and anonymous links.
    :param onedrive_conn_id: the ``onedrive`` connection (templated).
    :return: (XCom) a list of ``{"path", "size", "id", "hash", "status", "source"}`` dicts, one per file;
        ``status`` is ``created``, ``replaced``, ``renamed`` or ``identical``; with ``share``, also ``link``.
    """

    template_fields: Sequence[str] = ("onedrive_conn_id", "remote_path", "local_path", "data")
    ui_color = "#cfe3f7"

    def __init__(
        self,
        *,
        remote_path: str,
        local_path: str | os.PathLike[str] | None = None,
        data: str | bytes | None = None,
        conflict: str = "fail",
        encoding: str = "utf-8",
        max_workers: int | None = None,
        preserve_mtime: bool = True,
        share: Mapping[str, Any] | None = None,
        onedrive_conn_id: str = "onedrive_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(onedrive_conn_id=onedrive_conn_id, **kwargs)
        self.share = dict(share) if share is not None else None
        if self.share is not None:
            from airflow_provider_onedrive.operators.share import link_request

            link_request(self.share, at_parse=True)
        self.max_workers = check_workers(max_workers)
        if not isinstance(preserve_mtime, bool):
            raise OneDriveValidationError(f"preserve_mtime must be True or False, got {preserve_mtime!r}")
        self.preserve_mtime = preserve_mtime
        if (local_path is None) == (data is None):
            raise OneDriveValidationError("give exactly one of local_path (a file, folder or glob) or data")
        self.remote_path = remote_path
        self.local_path = os.fspath(local_path) if isinstance(local_path, os.PathLike) else local_path
        self.data = data
        self.conflict = check_conflict(conflict)
        self.encoding = encoding
        if not is_templated(remote_path):
            self._check_remote(remote_path)

    def _check_remote(self, remote_path: Any) -> str:
        if isinstance(remote_path, str) and has_magic(remote_path):
            raise OneDriveValidationError(f"remote_path {remote_path!r} is a glob; name the destination file or folder")
        folder_only = self.data is None and self.local_path is not None and not os.path.isfile(self.local_path)
        return remote_path_or_glob(remote_path, what="remote_path", allow_root=folder_only)

    def execute(self, context: Any) -> list[dict[str, Any]]:
        remote = self._check_remote(self.remote_path)
        into_folder = self.remote_path.rstrip().endswith("/")
        started = self.clock()
        with self.client() as client:
            if self.data is not None:
                results = [self._upload_data(client, remote, into_folder)]
            else:
                results = self._upload_local(client, str(self.local_path), remote, into_folder)
            links = self._share_all(client, results) if self.share is not None else None
        elapsed = self.clock() - started
        total = sum(r.size for r in results)
        if not results:
            self.log.info("No local files matched %s; nothing uploaded", self.local_path)
        else:
            self.log.info("Uploaded %d file(s), %s", len(results), describe_rate(total, elapsed))
        records = [_upload_record(r) for r in results]
        for record, link in zip(records, links or [], strict=False):
            record["link"] = link
        return records

    def _share_all(self, client: OneDriveClient, results: list[Any]) -> list[dict[str, Any]]:
        from airflow_provider_onedrive.operators.share import create_and_log

        assert self.share is not None
        return [create_and_log(self, client, result.path, self.share) for result in results]

    def _upload_data(self, client: OneDriveClient, remote: str, into_folder: bool) -> Any:
        if into_folder or not remote:
            raise OneDriveValidationError("with data, remote_path must name the file to write, not a folder")
        data = self.data.encode(self.encoding) if isinstance(self.data, str) else self.data
        if not isinstance(data, bytes | bytearray):
            raise OneDriveValidationError(f"data must be str or bytes, got {type(self.data).__name__}")
        result = client.upload_bytes(bytes(data), remote, conflict=self.conflict)
        self._log_one(result)
        return result

    def _upload_local(self, client: OneDriveClient, local: str, remote: str, into_folder: bool) -> list[Any]:
        if has_magic(local):
            files = sorted(p for p in glob.glob(local, recursive=True) if os.path.isfile(p))
            _refuse_clashing_names(files)
            results = _concurrently(
                lambda path: client.upload_file(
                    path,
                    join(remote, os.path.basename(path)),
                    conflict=self.conflict,
                    preserve_mtime=self.preserve_mtime,
                ),
                files,
                self.max_workers or client.max_workers,
            )
            for result in results:
                self._log_one(result)
            return results
        if os.path.isdir(local):
            self.log.info("Uploading folder %s to %s/", local, remote or "(drive root)")
            results = list(
                client.upload_folder(
                    local,
                    remote,
                    conflict=self.conflict,
                    max_workers=self.max_workers,
                    preserve_mtime=self.preserve_mtime,
                )
            )
            for result in results:
                self._log_one(result)
            return results
        if not os.path.isfile(local):
            raise FileNotFoundError(f"local_path {local!r} does not exist (or is not a file, folder or glob)")
        target = join(remote, os.path.basename(local)) if into_folder or not remote else remote
        result = client.upload_file(local, target, conflict=self.conflict, preserve_mtime=self.preserve_mtime)
        self._log_one(result)
        return [result]

    def _log_one(self, result: Any) -> None:
        source = f"{result.source} -> " if getattr(result, "source", None) else ""
        self.log.info("%s%s: %s, %s", source, result.path, result.status, describe_rate(result.size, result.elapsed))


def _upload_record(result: Any) -> dict[str, Any]:
    return {
        "path": result.path,
        "size": result.size,
        "id": result.id,
        "hash": result.hash,
        "status": result.status,
        "source": result.source,
    }


def _refuse_clashing_names(files: list[str]) -> None:
    """OneDrive is case-insensitive and a glob flattens folders: two sources must not land on one name."""
    seen: dict[str, str] = {}
    for path in files:
        key = os.path.basename(path).lower()
        if key in seen:
            raise OneDriveValidationError(
                f"{seen[key]!r} and {path!r} would both upload as {os.path.basename(path)!r} (OneDrive names are "
                "case-insensitive); narrow the glob or upload the folder instead"
            )
        seen[key] = path


class OneDriveDownloadOperator(OneDriveBaseOperator):
    """Download a remote file, a folder (recursively) or the files matching a glob to the local disk.

    A single file goes to ``local_path`` (or into it, keeping its name, when ``local_path`` is an existing
    directory or ends with a path separator). A folder or a glob goes into the directory ``local_path``,
    keeping paths relative to the folder (or to the glob's fixed prefix). Each file is written to a temporary
    name, verified by size and quickXorHash, then moved into place: a failed download leaves nothing half-written.

    :param remote_path: remote file, folder or glob such as ``incoming/*.csv`` (templated).
    :param local_path: local file or directory (templated); directories are created as needed.
    :param max_workers: files transferred at once for a folder or a glob (default: the client's, 8).
    :param streams: ranged streams for each file of 64 MiB or more (1 to 16; default: the connection's
        ``download_streams``, else 4; 1 = one stream). At most ``max_workers`` x ``streams`` connections at once.
    :param onedrive_conn_id: the ``onedrive`` connection (templated).
    :return: (XCom) the list of local file paths written (a glob matching nothing gives ``[]``).
    """

    template_fields: Sequence[str] = ("onedrive_conn_id", "remote_path", "local_path")
    ui_color = "#cfe3f7"

    def __init__(
        self,
        *,
        remote_path: str,
        local_path: str | os.PathLike[str],
        max_workers: int | None = None,
        streams: int | None = None,
        onedrive_conn_id: str = "onedrive_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(onedrive_conn_id=onedrive_conn_id, **kwargs)
        self.max_workers = check_workers(max_workers)
        self.streams = check_streams(streams) if streams is not None else None
        self.remote_path = remote_path
        self.local_path = os.fspath(local_path)
        if not is_templated(remote_path):
            remote_path_or_glob(remote_path, what="remote_path")
        if not self.local_path:
            raise OneDriveValidationError("local_path is empty; name a local file or directory")

    def execute(self, context: Any) -> list[str]:
        remote = remote_path_or_glob(self.remote_path, what="remote_path")
        started = self.clock()
        with self.client() as client:
            if has_magic(remote):
                results = self._download_glob(client, remote)
            else:
                item = client.info(remote)
                if item.is_folder:
                    self.log.info("Downloading folder %s to %s", remote, self.local_path)
                    results = list(
                        client.download_folder(
                            remote, self.local_path, max_workers=self.max_workers, streams=self.streams
                        )
                    )
                else:
                    # the name as asked for (the server's spelling only when it is the same name)
                    asked = remote.rsplit("/", 1)[-1]
                    target = self._file_target(item.name if item.name.lower() == asked.lower() else asked)
                    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
                    results = [client.download_file(remote, target, streams=self.streams)]
        for result in results:
            self.log.info("%s -> %s: %s", result.path, result.local_path, describe_rate(result.size, result.elapsed))
        total = sum(r.size for r in results)
        if results:
            self.log.info("Downloaded %d file(s), %s", len(results), describe_rate(total, self.clock() - started))
        else:
            self.log.info("No remote files matched %s; nothing downloaded", remote)
        return [str(r.local_path) for r in results]

    def _file_target(self, name: str) -> str:
        local = self.local_path
        if os.path.isdir(local) or local.endswith((os.sep, "/")):
            return os.path.join(local, name)
        return local

    def _download_glob(self, client: OneDriveClient, pattern: str) -> list[Any]:
        base = GlobPattern.parse(pattern).base

        def fetch(item: Any) -> Any:
            relative = item.path[len(base) :].lstrip("/") if base else item.path
            target = Path(local_child(self.local_path, relative))
            target.parent.mkdir(parents=True, exist_ok=True)
            return client.download_file(item.path, str(target), streams=self.streams)

        files = [item for item in client.glob(pattern) if not item.is_folder]
        return _concurrently(fetch, files, self.max_workers or client.max_workers)


def _concurrently(func: Callable[[Any], Any], items: Iterable[Any], workers: int) -> list[Any]:
    """``func`` over ``items`` on a bounded pool, results in input order; the first failure is raised."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(func, items))
