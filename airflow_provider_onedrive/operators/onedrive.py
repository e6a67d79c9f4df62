"""OneDrive operators: list, delete, create folders, move and copy (upload and download live in ``transfer``,
sharing links in ``share``).

All eight operators are importable from here. Every remote path is relative to the drive root of the
connection (``reports/q1.csv``; ``onedrive://reports/q1.csv`` works too) and is templated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_onedrive.errors import OneDriveNotFoundError, OneDriveValidationError
from airflow_provider_onedrive.matching import (
    GlobPattern,
    compact_item,
    has_magic,
    parse_datetime,
    segments_regex,
    xcom_record,
)
from airflow_provider_onedrive.operators.base import (
    OneDriveBaseOperator,
    check_conflict,
    is_templated,
    remote_path_or_glob,
)
from airflow_provider_onedrive.operators.share import OneDriveShareOperator
from airflow_provider_onedrive.operators.transfer import OneDriveDownloadOperator, OneDriveUploadOperator
from airflow_provider_onedrive.paths import join, normalize, parent_and_name

if TYPE_CHECKING:
    from airflow_provider_onedrive.drive import OneDriveClient

__all__ = [
    "OneDriveCopyOperator",
    "OneDriveCreateFolderOperator",
    "OneDriveDeleteOperator",
    "OneDriveDownloadOperator",
    "OneDriveListOperator",
    "OneDriveMoveOperator",
    "OneDriveShareOperator",
    "OneDriveUploadOperator",
]


class OneDriveListOperator(OneDriveBaseOperator):
    """List a folder, optionally recursively and filtered, and push a compact description of each item.

    The output never holds file contents, so it is safe for XCom and made for dynamic task mapping::

        listed = OneDriveListOperator(task_id="list", folder="inbox", pattern="*.csv", paths_only=True)
        OneDriveDownloadOperator.partial(task_id="get", local_path="/tmp/in/").expand(remote_path=listed.output)

    :param folder: the folder to list, relative to the drive root; ``""`` is the root (templated).
    :param pattern: a glob such as ``*.csv`` matched against each item's name, or, when it contains ``/``,
        against its path relative to ``folder`` (``*`` never crosses ``/``; ``**`` spans folders; see
        :mod:`airflow_provider_onedrive.matching`) (templated).
    :param recursive: list sub-folders too.
    :param files_only: leave folders out.
    :param folders_only: leave files out.
    :param modified_since: only items the drive last modified at or after this moment: a datetime or ISO 8601
        text such as ``{{ data_interval_start }}`` (templated).
    :param case_sensitive: match ``pattern`` exactly (OneDrive names are case-insensitive, so the default is not).
    :param paths_only: push a list of path strings instead of dicts.
    :param max_items: fail instead of pushing more than this many items (guards XCom and mapping limits).
    :param missing_ok: a missing ``folder`` lists as empty instead of failing with a not-found error.
    :param onedrive_conn_id: the ``onedrive`` connection (templated).
    :return: (XCom) ``[{"path", "name", "size", "modified", "is_folder", "id", "quick_xor_hash"}, ...]`` sorted by
        path, or ``["path", ...]`` with ``paths_only``. ``modified`` is the drive's ISO 8601 UTC timestamp.
    """

    template_fields: Sequence[str] = ("onedrive_conn_id", "folder", "pattern", "modified_since")

    def __init__(
        self,
        *,
        folder: str = "",
        pattern: str | None = None,
        recursive: bool = False,
        files_only: bool = False,
        folders_only: bool = False,
        modified_since: Any = None,
        case_sensitive: bool = False,
        paths_only: bool = False,
        max_items: int | None = None,
        missing_ok: bool = False,
        onedrive_conn_id: str = "onedrive_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(onedrive_conn_id=onedrive_conn_id, **kwargs)
        if files_only and folders_only:
            raise OneDriveValidationError("files_only and folders_only exclude each other; set at most one")
        if max_items is not None and (not isinstance(max_items, int) or max_items < 0):
            raise OneDriveValidationError(f"max_items must be a non-negative integer, got {max_items!r}")
        self.folder = folder
        self.pattern = pattern
        self.recursive = recursive
        self.files_only = files_only
        self.folders_only = folders_only
        self.modified_since = modified_since
        self.case_sensitive = case_sensitive
        self.paths_only = paths_only
        self.max_items = max_items
        self.missing_ok = missing_ok
        if not is_templated(folder):
            remote_path_or_glob(folder, what="folder", allow_root=True)
        if not is_templated(modified_since):
            parse_datetime(modified_since, what="modified_since")

    def execute(self, context: Any) -> list[Any]:
        folder = normalize(self.folder)
        if has_magic(folder):
            raise OneDriveValidationError(f"folder {self.folder!r} is a glob; put the wildcard in pattern")
        since = parse_datetime(self.modified_since, what="modified_since")
        records: list[dict[str, Any]] = []
        with self.client() as client:
            try:
                # "modified" in the output and in modified_since is the drive's time, never a client-set one
                listing = client.ls(folder, recursive=self.recursive, modified_since=since, modified_by="drive")
                for item in listing:
                    record = compact_item(item)
                    if self._wanted(record, folder):
                        records.append(xcom_record(record))
                        self._check_count(len(records), folder)
            except OneDriveNotFoundError:
                if not self.missing_ok:
                    raise
                self.log.info("Folder %s does not exist; listing it as empty (missing_ok)", folder)
        records.sort(key=lambda r: r["path"].lower())
        total = sum(r["size"] for r in records if not r["is_folder"])
        self.log.info(
            "Listed %s%s: %d item(s), %d bytes in files",
            folder or "(drive root)",
            f" matching {self.pattern!r}" if self.pattern else "",
            len(records),
            total,
        )
        return [r["path"] for r in records] if self.paths_only else records

    def _check_count(self, count: int, folder: str) -> None:
        if self.max_items is not None and count > self.max_items:
            raise OneDriveValidationError(
                f"listing {folder or '(drive root)'} found more than max_items={self.max_items} matching items; "
                "narrow folder/pattern or raise max_items"
            )

    def _wanted(self, record: dict[str, Any], folder: str) -> bool:
        if (self.files_only and record["is_folder"]) or (self.folders_only and not record["is_folder"]):
            return False
        if self.pattern:
            pattern = self.pattern.strip("/")
            if "/" in pattern:  # a relative path pattern: same glob semantics as everywhere else
                target = record["path"][len(folder) :].lstrip("/") if folder else record["path"]
                segments: tuple[str, ...] = tuple(pattern.split("/"))
            else:
                target, segments = record["name"], (pattern,)
            if not segments_regex(segments, case_sensitive=self.case_sensitive).fullmatch(target):
                return False
        return True


class OneDriveDeleteOperator(OneDriveBaseOperator):
    """Delete files or folders by path or glob (to the recycle bin unless ``permanent``).

    The drive root, and root-level globs without a literal character (``*``, ``**``, ``?*``, ``[!~]*``, ``*/*``:
    any of them can match everything in the drive root), are refused before any request is sent. A glob
    matching nothing deletes nothing and succeeds.

    :param paths: one path or glob, or a list of them (templated).
    :param missing_ok: succeed when a named path does not exist (default: fail with a not-found error).
    :param permanent: skip the recycle bin (OneDrive for Business and SharePoint only).
    :param onedrive_conn_id: the ``onedrive`` connection (templated).
    :return: (XCom) the list of paths deleted.
    """

    template_fields: Sequence[str] = ("onedrive_conn_id", "paths")

    def __init__(
        self,
        *,
        paths: str | Sequence[str],
        missing_ok: bool = False,
        permanent: bool = False,
        onedrive_conn_id: str = "onedrive_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(onedrive_conn_id=onedrive_conn_id, **kwargs)
        if not isinstance(paths, str | list | tuple) and not is_templated(paths):
            raise OneDriveValidationError(f"paths must be a path, a glob or a list of them, got {type(paths).__name__}")
        self.paths = paths
        self.missing_ok = missing_ok
        self.permanent = permanent
        if isinstance(paths, str | list | tuple):
            for path in [paths] if isinstance(paths, str) else paths:
                if not is_templated(path):
                    _deletable(path)

    def execute(self, context: Any) -> list[str]:
        targets = [_deletable(p) for p in ([self.paths] if isinstance(self.paths, str) else list(self.paths))]
        deleted: list[str] = []
        with self.client() as client:
            for target in targets:
                if has_magic(target):
                    matched = [item.path for item in client.glob(target)]
                    if not matched:
                        self.log.info("No items matched %s; nothing to delete", target)
                        continue
                    deleted += self._delete(client, matched)
                else:
                    deleted += self._delete(client, [target])
        self.log.info(
            "Deleted %d item(s)%s", len(deleted), " permanently" if self.permanent else " (to the recycle bin)"
        )
        return deleted

    def _delete(self, client: OneDriveClient, paths: list[str]) -> list[str]:
        gone = client.delete(paths, missing_ok=self.missing_ok, permanent=self.permanent)
        deleted = list(gone) if gone is not None else paths
        for path in paths:
            self.log.info("%s %s", "Deleted" if path in deleted else "Already absent:", path)
        return deleted


def _deletable(path: Any) -> str:
    value = remote_path_or_glob(path, what="path to delete")
    if has_magic(value) and GlobPattern.parse(value).sweeps_root:
        raise OneDriveValidationError(
            f"refusing to delete {path!r}: at the drive root a glob without a literal part can match "
            "everything in the drive root; name a folder first, or give part of the name (e.g. '*.csv')"
        )
    return value


class OneDriveCreateFolderOperator(OneDriveBaseOperator):
    """Create a folder.

    :param folder_path: the folder to create, relative to the drive root (templated).
    :param parents: create missing parent folders too (default True).
    :param exist_ok: succeed when the folder already exists (default True, so reruns are harmless).
    :param onedrive_conn_id: the ``onedrive`` connection (templated).
    :return: (XCom) ``{"path", "name", "size", "modified", "is_folder", "id", "quick_xor_hash"}`` of the folder.
    """

    template_fields: Sequence[str] = ("onedrive_conn_id", "folder_path")

    def __init__(
        self,
        *,
        folder_path: str,
        parents: bool = True,
        exist_ok: bool = True,
        onedrive_conn_id: str = "onedrive_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(onedrive_conn_id=onedrive_conn_id, **kwargs)
        self.folder_path = folder_path
        self.parents = parents
        self.exist_ok = exist_ok
        if not is_templated(folder_path):
            _plain_path(folder_path, "folder_path")

    def execute(self, context: Any) -> dict[str, Any]:
        path = _plain_path(self.folder_path, "folder_path")
        with self.client() as client:
            item = client.mkdir(path, parents=self.parents, exist_ok=self.exist_ok)
        self.log.info("Folder %s is ready (id %s)", path, item.id)
        return xcom_record(compact_item(item))


def _plain_path(value: Any, what: str) -> str:
    path = remote_path_or_glob(value, what=what)
    if has_magic(path):
        raise OneDriveValidationError(f"{what} {value!r} is a glob; name one item")
    return path


class _RelocateOperator(OneDriveBaseOperator):
    """Shared by move and copy: a path or glob goes to a path, or into a folder."""

    template_fields: Sequence[str] = ("onedrive_conn_id", "source_path", "destination_path")
    verb = "Moved"

    def __init__(
        self,
        *,
        source_path: str,
        destination_path: str,
        conflict: str = "fail",
        onedrive_conn_id: str = "onedrive_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(onedrive_conn_id=onedrive_conn_id, **kwargs)
        self.source_path = source_path
        self.destination_path = destination_path
        self.conflict = check_conflict(conflict)
        if not is_templated(source_path):
            remote_path_or_glob(source_path, what="source_path")
        if not is_templated(destination_path):
            self._destination()

    def _destination(self) -> str:
        if isinstance(self.destination_path, str) and has_magic(self.destination_path):
            raise OneDriveValidationError(f"destination_path {self.destination_path!r} is a glob; name a path")
        return remote_path_or_glob(self.destination_path, what="destination_path", allow_root=True)

    def execute(self, context: Any) -> list[dict[str, Any]]:
        source = remote_path_or_glob(self.source_path, what="source_path")
        destination = self._destination()
        into_folder = has_magic(source) or self.destination_path.rstrip().endswith("/") or not destination
        records = []
        with self.client() as client:
            if has_magic(source):
                sources = [item.path for item in client.glob(source)]
                if not sources:
                    self.log.info("No items matched %s; nothing to do", source)
                    return []
            else:
                sources = [source]
            folder = destination if into_folder else parent_and_name(destination)[0]
            if folder:
                client.mkdir(folder, parents=True, exist_ok=True)
            for path in sources:
                target = join(destination, parent_and_name(path)[1]) if into_folder else destination
                item = self._relocate(client, path, target)
                self.log.info("%s %s -> %s (%d bytes)", self.verb, path, item.path, item.size)
                records.append({"source": path, "destination": item.path, "size": item.size, "id": item.id})
        self.log.info("%s %d item(s) to %s", self.verb, len(records), destination or "(drive root)")
        return records

    def _relocate(self, client: OneDriveClient, source: str, target: str) -> Any:
        raise NotImplementedError


class OneDriveMoveOperator(_RelocateOperator):
    """Move (or rename) files and folders within the drive; e.g. archive ``inbox/*.csv`` to ``archive/{{ ds }}/``.

    A glob source, or a destination ending with ``/``, moves each item into that folder (created if missing);
    otherwise ``destination_path`` is the item's new path. A glob matching nothing succeeds and moves nothing.

    :param source_path: a path or glob, relative to the drive root (templated).
    :param destination_path: the new path, or a folder when it ends with ``/`` (templated).
    :param conflict: when the destination name is taken: ``fail`` (default), ``replace`` or ``rename``.
    :param onedrive_conn_id: the ``onedrive`` connection (templated).
    :return: (XCom) ``[{"source", "destination", "size", "id"}, ...]``, one per item moved.
    """

    verb = "Moved"

    def _relocate(self, client: OneDriveClient, source: str, target: str) -> Any:
        return client.move(source, target, conflict=self.conflict)


class OneDriveCopyOperator(_RelocateOperator):
    """Copy files and folders within the drive, waiting until Graph's asynchronous copy completes.

    Paths work as for :class:`OneDriveMoveOperator`.

    :param source_path: a path or glob, relative to the drive root (templated).
    :param destination_path: the copy's path, or a folder when it ends with ``/`` (templated).
    :param conflict: when the destination name is taken: ``fail`` (default), ``replace`` or ``rename``.
    :param onedrive_conn_id: the ``onedrive`` connection (templated).
    :return: (XCom) ``[{"source", "destination", "size", "id"}, ...]``, one per item copied.
    """

    verb = "Copied"

    def _relocate(self, client: OneDriveClient, source: str, target: str) -> Any:
        return client.copy(source, target, conflict=self.conflict, wait=True)
