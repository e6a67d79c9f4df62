"""OneDriveFile: the buffered file object behind ``OneDriveFileSystem.open``.

Reading fetches byte ranges from the item's pre-authenticated download URL (through fsspec's block caches);
the client fetches a fresh URL when the old one expires. Writing goes through the client's push-style
:class:`~airflow_provider_onedrive.transfers.uploads.UploadSession`. It cannot send fragments while the caller
writes: Graph's upload sessions need the total size in every fragment's ``Content-Range`` (``bytes 0-N/*`` is
refused), and fsspec does not know the size until ``close()``. So the bytes are spooled (in memory up to the
simple-upload threshold, then to a temporary file) and sent at close: one PUT for small files, an upload
session with 320 KiB-aligned fragments for large ones. Nothing is visible remotely before a successful close;
leaving a ``with`` block by an exception, or ``discard()``, uploads nothing.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Protocol

from fsspec.spec import AbstractBufferedFile

if TYPE_CHECKING:
    from airflow_provider_onedrive.drive import OneDriveClient
    from airflow_provider_onedrive.transfers.models import RemoteItem
    from airflow_provider_onedrive.transfers.uploads import UploadSession

__all__ = ["OneDriveFile"]


class _FileSystem(Protocol):
    """What a file needs of its filesystem (OneDriveFileSystem), so this module does not import it back."""

    conflict: str

    @property
    def client(self) -> OneDriveClient: ...

    def exists(self, path: str, **kwargs: Any) -> bool: ...

    def invalidate_cache(self, path: str | None = None) -> None: ...

    @staticmethod
    def _entry(item: RemoteItem) -> dict[str, Any]: ...

    @staticmethod
    def _remote_item(raw: dict[str, Any], path: str) -> RemoteItem: ...


class OneDriveFile(AbstractBufferedFile):
    """A file in a drive opened for reading (``rb``) or writing (``wb``, or ``xb`` to fail if it exists)."""

    fs: _FileSystem
    buffer: io.BytesIO  # fsspec's write buffer (set while writing)
    DEFAULT_BLOCK_SIZE = 4 * 2**20

    def __init__(
        self,
        fs: _FileSystem,
        path: str,
        mode: str = "rb",
        block_size: int | str | None = "default",
        autocommit: bool = True,
        cache_type: str = "readahead",
        cache_options: dict[str, Any] | None = None,
        conflict: str | None = None,
        **kwargs: Any,
    ) -> None:
        if mode == "ab":
            raise NotImplementedError("OneDrive files cannot be appended to; read, then write a new version")
        self._item: dict[str, Any] | None = None
        self._session: UploadSession | None = None
        self.conflict = "fail" if mode == "xb" else (conflict or fs.conflict)
        if mode == "xb" and fs.exists(path):
            raise FileExistsError(f"{path!r} already exists (opened with mode 'xb')")
        if mode == "rb" and kwargs.get("size") is None:
            self._item = fs.client.item(path)
            self.details = fs._entry(fs._remote_item(self._item, path))
            kwargs["size"] = self.details["size"]
            if self.details["type"] != "file":
                raise IsADirectoryError(f"{path!r} is a folder, not a file")
        super().__init__(fs, path, mode, block_size, autocommit, cache_type, cache_options, **kwargs)

    # -- reading ----------------------------------------------------------------------------------------
    def _fetch_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` via the item's download URL (the client fetches a new URL when it expires)."""
        if end <= start:
            return b""
        if self._item is None:
            self._item = self.fs.client.item(self.path)
        return self.fs.client.read_range(self._item, start, end - start)

    # -- writing ----------------------------------------------------------------------------------------
    def _initiate_upload(self) -> None:
        """Start the client's push-style upload (it spools until the size is known, then picks PUT or session)."""
        self._session = self.fs.client.start_upload_session(self.path, size=None, conflict=self.conflict)

    def _upload(self) -> UploadSession:
        """The upload started by :meth:`_initiate_upload` (fsspec calls that before the first chunk)."""
        if self._session is None:
            raise ValueError(f"{self.path!r}: no upload in progress (the file is not open for writing)")
        return self._session

    def _upload_chunk(self, final: bool = False) -> bool:
        """Hand the buffer to the upload; on the final call, commit (if autocommitting)."""
        self._upload().write(self.buffer.getbuffer())
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        """Upload and commit what was written (at close, or at the end of an fsspec transaction)."""
        try:
            self._upload().finish()
        finally:
            self.fs.invalidate_cache(self.path)

    def discard(self) -> None:
        """Abandon the write: cancel the upload (and its server session, if any); nothing becomes visible."""
        if self._session is not None:
            self._session.cancel()
        if self.writable():
            self.buffer = type(self.buffer)()
            self.forced = True
            self.closed = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None and self.writable():
            self.discard()  # a failed write must not publish a truncated file
            return
        self.close()
