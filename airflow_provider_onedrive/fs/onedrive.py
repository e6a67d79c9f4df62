"""The ``onedrive://`` fsspec filesystem, and the adapter Airflow's ObjectStoragePath uses (``schemes``, ``get_fs``).

Paths are relative to the drive root: ``onedrive://reports/q1.csv`` is ``reports/q1.csv``. A URL may name an
Airflow connection and a drive in its authority: ``onedrive://{conn_id}@{drive_id}/{path}``, where an empty
drive (``onedrive://my_conn@/reports``) means the connection's own drive. Without an ``@`` the authority is
simply the first folder. Importing this module imports no Airflow: connections are read through the hook only
when a filesystem built with ``conn_id=`` makes its first request.

The class is registered for ``onedrive`` and for the alias ``onedrive+graph``; the alias is ours alone, so it
always resolves here even when another package (msgraphfs) claims ``onedrive`` too. See docs/fsspec.md.
"""

from __future__ import annotations

import base64
import errno
import os
import posixpath
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import fsspec
from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.spec import AbstractFileSystem
from fsspec.utils import isfilelike, stringify_path, tokenize

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.fs.connect import ClientSource, build_client
from airflow_provider_onedrive.fs.file import OneDriveFile
from airflow_provider_onedrive.matching import has_magic

if TYPE_CHECKING:
    from airflow_provider_onedrive.drive import OneDriveClient
    from airflow_provider_onedrive.transfers.models import RemoteItem

__all__ = ["DEFAULT_CONN_ID", "PROTOCOLS", "OneDriveFile", "OneDriveFileSystem", "get_fs", "schemes", "share_url"]

#: ``onedrive`` is shared with msgraphfs and the microsoft-azure provider; ``onedrive+graph`` is only ours.
PROTOCOLS = ("onedrive", "onedrive+graph")
#: The schemes ObjectStoragePath routes to :func:`get_fs`.
schemes = list(PROTOCOLS)
DEFAULT_CONN_ID = "onedrive_default"
#: How every encoded sharing URL starts (``u!`` + base64url of ``http``...): never a real folder's name.
_ENCODED_URL_SEGMENT = "u!aHR0c"
#: Storage options understood by fsspec's AbstractFileSystem / DirCache rather than by us.
_FSSPEC_OPTIONS = ("use_listings_cache", "listings_expiry_time", "max_paths", "skip_instance_cache")


def split_url(url: str) -> tuple[str | None, str | None, str]:
    """Split ``onedrive://conn@drive/path`` into ``(conn_id, drive, path)``; absent parts are None."""
    text = stringify_path(url)
    lowered = text.lower()
    for protocol in sorted(PROTOCOLS, key=len, reverse=True):
        if lowered.startswith(protocol + "://"):
            rest = text[len(protocol) + 3 :]
            authority, _, tail = rest.partition("/")
            if "@" in authority:
                conn_id, _, drive = authority.rpartition("@")
                return conn_id or None, drive or None, tail.strip("/")
            return None, None, rest.strip("/")
    return None, None, text.strip("/")


def share_url(sharing_url: str, path: str = "", *, conn_id: str | None = None) -> str:
    """An ``onedrive://`` URL for ``path`` below a shared folder (or, with no path, the shared file):
    ``onedrive://{conn_id}@u!{token}/{path}``, where the token is Graph's encoding of the sharing URL.

    ``pd.read_csv(share_url(link, "q1.csv", conn_id="onedrive_default"))`` reads ``q1.csv`` of a shared folder.
    The URL holds the sharing link (decodable): treat it as the link itself.
    """
    from airflow_provider_onedrive.transfers.sharing import share_token

    token = share_token(sharing_url)
    return f"onedrive://{conn_id or ''}@{token}/{path.strip('/')}"


class OneDriveFileSystem(AbstractFileSystem):
    """fsspec filesystem for a OneDrive or SharePoint drive, through Microsoft Graph.

    Give exactly one source of credentials:

    :param conn_id: an Airflow connection id (needs Airflow; read through ``OneDriveHook``).
    :param client: an existing :class:`~airflow_provider_onedrive.drive.OneDriveClient`.
    :param token: a Graph access token, or a callable returning a fresh one (drive from ``drive_type``... or
        ``me``; ``graph_url`` and ``ca_bundle`` are honoured).
    :param storage_options: otherwise, the connection's fields: ``client_id``, ``client_secret`` (or
        ``certificate``/``private_key``, or ``refresh_token``), ``tenant_id``, ``auth_type``, ``drive_type`` with
        ``user_id``/``drive_id``/``site``/``library``/``group_id``, ``graph_url``, ``authority_host``,
        ``ca_bundle``, ``proxies``, timeouts... (the same keys as the connection's extra).

    Behaviour:

    :param drive: a drive id overriding the configured drive (what ``onedrive://conn@drive/`` sets).
    :param share: a sharing URL (``https://...``) or share id (``s!...``): paths are then relative to the shared
        folder (``""`` is the shared file itself). ``onedrive://conn@u!{token}/path`` sets it from a URL (see
        :func:`share_url`). Resolved on first use, with ``Prefer: redeemSharingLink``.
    :param conflict: what writes do when the file exists: ``replace`` (fsspec's convention, default), ``fail``
        (raise FileExistsError) or ``rename``. ``open(path, "xb")`` and ``pipe(..., mode="create")`` always fail.
    :param block_size: read block size in bytes (default 4 MiB); ``cache_type`` the fsspec read cache.
    :param permanent_delete: delete permanently instead of to the recycle bin (Business/SharePoint only).
    :param client_options: keyword arguments for ``OneDriveClient``: ``simple_upload_threshold`` (files up to it go
        in one PUT, default 4 MiB), ``fragment_size`` (upload-session fragments, default 10 MiB), ``max_workers``...
    """

    protocol = PROTOCOLS
    root_marker = ""

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        client: OneDriveClient | None = None,
        token: str | Callable[[], str] | None = None,
        drive: str | None = None,
        share: str | None = None,
        conflict: str = "replace",
        block_size: int | None = None,
        cache_type: str = "readahead",
        permanent_delete: bool = False,
        client_options: dict[str, Any] | None = None,
        **storage_options: Any,
    ) -> None:
        fsspec_options = {k: storage_options.pop(k) for k in _FSSPEC_OPTIONS if k in storage_options}
        storage_options.pop("asynchronous", None)
        storage_options.pop("loop", None)
        super().__init__(**fsspec_options)
        if conflict not in ("replace", "fail", "rename"):
            raise OneDriveValidationError(f"conflict={conflict!r}: use 'replace' (default), 'fail' or 'rename'")
        self.conflict = conflict
        self.block_size = block_size
        self.cache_type = cache_type
        self.permanent_delete = permanent_delete
        self._source: ClientSource = {
            "client": client,
            "conn_id": conn_id,
            "token": token,
            "drive": drive,
            "client_options": client_options,
            "credentials": storage_options,
            "share": share,
        }
        self._client: OneDriveClient | None = client
        self._client_lock = threading.Lock()

    @property
    def client(self) -> OneDriveClient:
        """The OneDriveClient, built on first use (no network I/O or Airflow lookup in the constructor)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = build_client(**self._source)
        return self._client

    # -- URLs ---------------------------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list | tuple):
            return [cls._strip_protocol(p) for p in path]
        stripped = split_url(path)[2]
        if stripped.startswith(_ENCODED_URL_SEGMENT):
            # Airflow's ObjectStoragePath hands the URL's authority over as the first folder, so a share token
            # would be looked up as a folder (and echoed in the error): refuse it, without repeating it.
            raise OneDriveValidationError(
                "this path starts with a share token (u!...), which is not a folder: ObjectStoragePath does not pass "
                "a URL's share to the filesystem. Use OneDriveFileSystem(conn_id=..., share=<sharing URL>), "
                'storage_options={"share": <sharing URL>} with fsspec or pandas, or OneDriveHook.get_shared_client'
            )
        return stripped

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        conn_id, drive, _ = split_url(path)
        options: dict[str, Any] = {}
        if conn_id:
            options["conn_id"] = conn_id
        if drive:
            options["drive"] = drive
        return options

    # -- metadata -----------------------------------------------------------------------------------------
    @staticmethod
    def _remote_item(raw: dict[str, Any], path: str) -> RemoteItem:
        from airflow_provider_onedrive.transfers.models import RemoteItem

        return RemoteItem.from_graph(raw, path)

    @staticmethod
    def _entry(item: RemoteItem) -> dict[str, Any]:
        """fsspec's info dict for a RemoteItem (never the download URL: it is a credential)."""
        return {
            "name": item.path,
            "size": item.size,
            "type": "directory" if item.is_folder else "file",
            "id": item.id,
            "etag": item.etag,
            "quickXorHash": item.quick_xor_hash,
            "mimetype": item.mime_type,
            "created": item.created,
            "modified": item.modified,
        }

    def ls(self, path: str, detail: bool = True, refresh: bool = False, **kwargs: Any) -> list[Any]:
        """List a folder (or return a file's own entry); a listing is cached only once every page has arrived."""
        path = self._strip_protocol(path)
        entries = None if refresh else self.dircache.get(path)
        if entries is None:
            try:
                entries = [self._entry(item) for item in self.client.ls(path)]
            except NotADirectoryError:
                entries = [self.info(path, refresh=True)]
            else:
                if not entries:
                    own = self._entry(self.client.info(path))
                    if own["type"] == "file":
                        entries = [own]
                self.dircache[path] = entries
        return entries if detail else [entry["name"] for entry in entries]

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
        """Paths (or, with ``detail=True``, info dicts) matching a glob, with the provider's glob semantics
        (:mod:`airflow_provider_onedrive.matching`: ``*`` never crosses ``/``, ``**`` spans folders, names match
        case-insensitively), so a pattern selects the same items here as in the operators, sensor and CLI."""
        detail = kwargs.pop("detail", False)
        pattern = self._strip_protocol(path)
        if not has_magic(pattern):
            return super().glob(path, maxdepth=maxdepth, detail=detail, **kwargs)
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        from airflow_provider_onedrive.matching import GlobPattern

        base = GlobPattern.parse(pattern).base
        entries = {}
        for item in self.client.glob(pattern):
            depth = item.path.count("/") - (base.count("/") + 1 if base else 0) + 1
            if maxdepth is None or depth <= maxdepth:
                entries[item.path] = self._entry(item)
        return entries if detail else list(entries)

    def info(self, path: str, refresh: bool = False, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        parent = self._parent(path)
        if path and not refresh and parent in self.dircache:
            for entry in self.dircache[parent]:
                if entry["name"] == path:
                    return entry
        return self._entry(self.client.info(path))

    def exists(self, path: str, **kwargs: Any) -> bool:
        try:
            self.info(path)
        except FileNotFoundError:
            return False
        except OneDriveValidationError:
            return False  # a name OneDrive refuses cannot exist there
        return True

    def checksum(self, path: str) -> int:
        """The file's quickXorHash as an integer (folders: a hash of their metadata)."""
        info = self.info(path)
        if info.get("quickXorHash"):
            return int.from_bytes(base64.b64decode(info["quickXorHash"]), "big")
        return int(tokenize(info), 16)

    def ukey(self, path: str) -> str:
        """Changes when the content changes: quickXorHash and size for files, eTag for folders."""
        info = self.info(path)
        if info.get("quickXorHash"):
            return f"{info['quickXorHash']}:{info['size']}"
        return str(info.get("etag") or tokenize(info))

    def created(self, path: str) -> datetime:
        return self.info(path)["created"]

    def modified(self, path: str) -> datetime:
        return self.info(path)["modified"]

    # -- folders and deletes ------------------------------------------------------------------------------
    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if not path:
            raise FileExistsError("the drive root always exists")
        self.client.mkdir(path, parents=create_parents, exist_ok=False)
        self.invalidate_cache(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        path = self._strip_protocol(path)
        if not path:
            if exist_ok:
                return
            raise FileExistsError("the drive root always exists")
        self.client.mkdir(path, parents=True, exist_ok=exist_ok)
        self.invalidate_cache(path)

    def rmdir(self, path: str) -> None:
        path = self._strip_protocol(path)
        if self.info(path, refresh=True)["type"] != "directory":
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", path)
        if self.ls(path, refresh=True):
            raise OSError(errno.ENOTEMPTY, "folder is not empty", path)
        self._delete([path])

    def rm(self, path: str | list[str], recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete files and folders (to the recycle bin unless ``permanent_delete``).

        A recursive delete sends one request per top-most match: Graph removes a folder with its contents.
        With ``maxdepth``, folders are removed only when nothing below them is left. The drive root is refused
        before anything is listed.
        """
        for given in [path] if isinstance(path, str) else list(path):
            if isinstance(given, str) and not self._strip_protocol(given).strip("/"):
                raise OneDriveValidationError(
                    f"refusing to delete {given!r}: it is the drive root; name a file or folder below it"
                )
        paths = self.expand_path(path, recursive=recursive, maxdepth=maxdepth)
        if recursive and maxdepth is None:
            targets = _topmost(paths)
        else:
            targets = []
            for candidate in sorted(paths, reverse=True):  # children before their parents
                if self.isdir(candidate):
                    children = self.ls(candidate, detail=False, refresh=True)
                    if not set(children) <= set(targets):
                        if not recursive:
                            raise IsADirectoryError(errno.EISDIR, "folder is not empty; use recursive=True", candidate)
                        continue
                targets.append(candidate)
        self._delete(targets)

    def _delete(self, paths: list[str]) -> None:
        try:
            self.client.delete(paths, missing_ok=False, permanent=self.permanent_delete)
        finally:
            for path in paths:
                self.invalidate_cache(path)

    def rm_file(self, path: str) -> None:
        self._delete([self._strip_protocol(path)])

    # -- moving and copying (server-side) -----------------------------------------------------------------
    def mv(self, path1: Any, path2: Any, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        """Move or rename with one server-side request when the source is a single path (file or folder)."""
        if not (isinstance(path1, str) and isinstance(path2, str)) or maxdepth is not None or has_magic(path1):
            super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)
            return
        source, target = self._strip_protocol(path1), self._strip_protocol(path2)
        if path2.endswith("/") or (target and self.isdir(target)):
            target = posixpath.join(target, posixpath.basename(source))
        try:
            self.client.move(source, target, conflict=self.conflict)
        finally:
            self.invalidate_cache(source)
            self.invalidate_cache(target)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Server-side copy of a file (a folder source creates the target folder, as fsspec's copy expects)."""
        source, target = self._strip_protocol(path1), self._strip_protocol(path2)
        if self.info(source)["type"] == "directory":
            self.makedirs(target, exist_ok=True)
            return
        try:
            self._with_parents(target, lambda: self.client.copy(source, target, conflict=self.conflict, wait=True))
        finally:
            self.invalidate_cache(target)

    # -- whole-file reads and writes ----------------------------------------------------------------------
    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        if start is None and end is None:
            return self.client.download_bytes(path)
        if (start is not None and start < 0) or end is None or end < 0:
            size = self.info(path)["size"]
            start = max(0, size + start) if start is not None and start < 0 else start
            end = size if end is None else (max(0, size + end) if end < 0 else end)
        start = start or 0
        if end <= start:
            return b""
        return self.client.read_range(path, start, end - start)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        self._put_bytes(bytes(value), path, self._conflict_for(mode, path))

    def put_file(
        self, lpath: str, rpath: str, callback: Callback = DEFAULT_CALLBACK, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        """Upload a local file through the transfer engine (streamed, resumable, hash-verified)."""
        rpath = self._strip_protocol(rpath)
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        conflict = self._conflict_for(mode, rpath)
        size = os.path.getsize(lpath)
        callback.set_size(size)
        try:
            self._with_parents(rpath, lambda: self.client.upload_file(lpath, rpath, conflict=conflict))
        finally:
            self.invalidate_cache(rpath)
        callback.absolute_update(size)

    def get_file(
        self, rpath: str, lpath: Any, callback: Callback = DEFAULT_CALLBACK, outfile: Any = None, **kwargs: Any
    ) -> None:
        """Download through the transfer engine (temp file, verified, then renamed into place); ``streams=N``
        (``fs.get(..., streams=N)``) sets the ranged streams of a large file (default: the client's)."""
        rpath = self._strip_protocol(rpath)
        if isfilelike(lpath):
            self.client.download_to(rpath, lpath)
            return
        item = self.client.info(rpath)  # with its download URL: no second lookup, no redirect request
        if item.is_folder:
            os.makedirs(lpath, exist_ok=True)
            return
        callback.set_size(item.size)
        parent = os.path.dirname(os.path.abspath(lpath))
        os.makedirs(parent, exist_ok=True)
        self.client.download_file(rpath, lpath, streams=kwargs.get("streams"), item=item)
        callback.absolute_update(item.size)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> OneDriveFile:
        kwargs.setdefault("cache_type", self.cache_type)
        return OneDriveFile(
            self,
            path,
            mode,
            block_size=block_size or self.block_size or "default",
            autocommit=autocommit,
            cache_options=cache_options,
            **kwargs,
        )

    def _conflict_for(self, mode: str, path: str) -> str:
        """The conflict behaviour of a write; ``mode="create"`` refuses an existing file, even an identical one."""
        if mode != "create":
            return self.conflict
        if self.exists(path):
            raise FileExistsError(errno.EEXIST, "already exists (mode='create')", path)
        return "fail"

    def _put_bytes(self, data: bytes, path: str, conflict: str) -> None:
        try:
            self._with_parents(path, lambda: self.client.upload_bytes(data, path, conflict=conflict))
        finally:
            self.invalidate_cache(path)

    def _with_parents(self, path: str, call: Callable[[], Any]) -> Any:
        """Run a write; if its parent folder is missing, create it and try once more (fsspec auto-mkdir)."""
        try:
            return call()
        except FileNotFoundError:
            parent = self._parent(path)
            if not parent or self.exists(parent):
                raise
        self.makedirs(parent, exist_ok=True)
        return call()

    # -- caches -------------------------------------------------------------------------------------------
    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget cached listings of ``path``, everything below it, and its ancestors (whose sizes changed)."""
        stripped = None if path is None else self._strip_protocol(path)
        if not stripped:
            self.dircache.clear()
        else:
            for key in list(self.dircache):
                if key == stripped or key.startswith(stripped + "/"):
                    self.dircache.pop(key, None)
            while stripped:
                stripped = self._parent(stripped)
                self.dircache.pop(stripped, None)
        super().invalidate_cache(path)


def _topmost(paths: list[str]) -> list[str]:
    """Drop paths that lie below another path of the list."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path.startswith(parent + "/") for parent in kept):
            kept.append(path)
    return kept


def get_fs(conn_id: str | None, storage_options: dict[str, Any] | None = None) -> OneDriveFileSystem:
    """ObjectStoragePath adapter: the filesystem for an Airflow connection (``onedrive_default`` when None)."""
    return OneDriveFileSystem(conn_id=conn_id or DEFAULT_CONN_ID, **(storage_options or {}))


for _protocol in PROTOCOLS:
    # Clobber: whoever imports last wins `onedrive` (msgraphfs does the same at its import); see docs/fsspec.md.
    fsspec.register_implementation(_protocol, OneDriveFileSystem, clobber=True)
