"""File content: immutable blobs kept in memory when small and spilled to the emulator's temp dir when not."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import weakref
from collections.abc import Iterator
from typing import Any

from airflow_provider_onedrive.hashing import QuickXorHash
from airflow_provider_onedrive.testing.wire import BLOCK_SIZE

__all__ = ["Blob", "BlobWriter"]


class Blob:
    """Committed, immutable content of a file version; a spilled file is removed once no item refers to it."""

    def __init__(self, size: int, hashes: dict[str, str], data: bytes | None, path: str | None) -> None:
        self.size = size
        self.hashes = hashes
        self.data = data
        self.path = path
        if path is not None:
            weakref.finalize(self, _unlink, path)

    @classmethod
    def from_bytes(cls, data: bytes, personal: bool) -> Blob:
        writer = BlobWriter(directory="", personal=personal, memory_threshold=len(data) + 1)
        writer.write(data)
        return writer.finish()

    def blocks(self, start: int = 0, length: int | None = None, block_size: int = BLOCK_SIZE) -> Iterator[bytes]:
        """Yield ``length`` bytes from ``start`` in blocks."""
        end = self.size if length is None else min(self.size, start + length)
        if self.data is not None:
            view = memoryview(self.data)
            for offset in range(start, end, block_size):
                yield bytes(view[offset : min(end, offset + block_size)])
            return
        assert self.path is not None
        with open(self.path, "rb") as handle:
            handle.seek(start)
            left = end - start
            while left > 0:
                block = handle.read(min(block_size, left))
                if not block:
                    return
                left -= len(block)
                yield block

    def read(self) -> bytes:
        return b"".join(self.blocks())


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class BlobWriter:
    """Receives content block by block, hashing as it goes; spills to disk past ``memory_threshold``.

    ``checkpoint()`` / ``rollback()`` let an upload session forget a fragment that arrived incomplete.
    """

    def __init__(self, directory: str, personal: bool, memory_threshold: int) -> None:
        self._directory = directory
        self._threshold = memory_threshold
        self._buffer: bytearray | None = bytearray()
        self._file: Any = None
        self.path: str | None = None
        self.size = 0
        self._hashers: dict[str, Any] = {"quickXorHash": QuickXorHash()}
        if personal:
            self._hashers["sha1Hash"] = hashlib.sha1()
            self._hashers["sha256Hash"] = hashlib.sha256()

    def write(self, block: bytes) -> None:
        if self._buffer is not None and len(self._buffer) + len(block) > self._threshold:
            self._spill()
        if self._buffer is not None:
            self._buffer += block
        else:
            self._file.write(block)
        for hasher in self._hashers.values():
            hasher.update(block)
        self.size += len(block)

    def _spill(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="blob-", dir=self._directory)
        self._file = os.fdopen(fd, "w+b")
        assert self._buffer is not None
        self._file.write(self._buffer)
        self._buffer = None

    def checkpoint(self) -> tuple[int, dict[str, Any]]:
        return self.size, {name: h.copy() for name, h in self._hashers.items()}

    def rollback(self, state: tuple[int, dict[str, Any]]) -> None:
        self.size, self._hashers = state[0], state[1]
        if self._buffer is not None:
            del self._buffer[self.size :]
        else:
            self._file.seek(self.size)
            self._file.truncate()

    def finish(self) -> Blob:
        """Seal the content into a Blob; the writer must not be used afterwards."""
        hashes = {}
        for name, hasher in self._hashers.items():
            hashes[name] = hasher.b64digest() if name == "quickXorHash" else hasher.hexdigest().upper()
        if self._buffer is not None:
            return Blob(self.size, hashes, bytes(self._buffer), None)
        self._file.close()
        path, self.path = self.path, None
        return Blob(self.size, hashes, None, path)

    def abort(self) -> None:
        """Drop whatever was received."""
        self._buffer = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            _unlink(self.path)
            self.path = None
