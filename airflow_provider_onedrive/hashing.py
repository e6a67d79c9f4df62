"""quickXorHash, the content hash that OneDrive Personal and Business both return.

The algorithm keeps a 160-bit accumulator: input byte ``i`` is XORed in at bit offset ``(11 * i) mod 160``
(wrapping inside the 160 bits), and the 64-bit little-endian input length is XORed into bytes 12..19 of the
little-endian state at the end. The digest is the base64 of those 20 bytes.

Bytes whose positions are equal modulo 160 land on the same bit offset, so a block is first XOR-folded into
160 bytes (with numpy for blocks from 256 KiB, with big-integer arithmetic below that), and only those 160 bytes
are placed one by one.
"""

from __future__ import annotations

import base64
from types import ModuleType
from typing import BinaryIO

__all__ = ["QuickXorHash", "quickxorhash", "quickxorhash_file"]

_WIDTH_BITS = 160
_PERIOD = 160  # bytes after which the bit offset repeats (11 * 160 is a multiple of 160)
_FOLD_BITS = _PERIOD * 8
_MASK = (1 << _WIDTH_BITS) - 1


_NUMPY_MIN = 256 * 1024

_numpy: ModuleType | None
try:  # loaded with the transfer layer, not on a transfer's first block, whose timing the probe of a split reads
    import numpy as _numpy
except ImportError:  # a declared dependency; without it the big-integer fold still works, about 25x slower
    _numpy = None


def _load_numpy() -> ModuleType | None:
    """numpy (about 25x faster than the big-integer fold on large blocks), or None where it is missing."""
    return _numpy


def _fold_numpy(np: ModuleType, data: bytes | bytearray | memoryview) -> bytes:
    """XOR the 160-byte rows together by halving: each step is one long vectorised XOR (an axis-0 reduce over
    rows of twenty words runs a short inner loop per row and is about half as fast)."""
    whole = len(data) - len(data) % _PERIOD
    rows = np.frombuffer(data, dtype="<u8", count=whole // 8).reshape(-1, _PERIOD // 8)
    if not len(rows):
        folded = bytearray(_PERIOD)
    else:
        odd = np.zeros(_PERIOD // 8, dtype="<u8")
        while len(rows) > 1:
            half = len(rows) // 2
            if len(rows) % 2:
                odd ^= rows[-1]
            rows = rows[:half] ^ rows[half : 2 * half]
        folded = bytearray((rows[0] ^ odd).tobytes())
    for i, byte in enumerate(bytes(memoryview(data)[whole:])):
        folded[i] ^= byte
    return bytes(folded)


def _fold(data: bytes | bytearray | memoryview) -> bytes:
    """XOR every 160-byte stride of ``data`` together, returning exactly 160 bytes."""
    if len(data) >= _NUMPY_MIN and (np := _load_numpy()) is not None:
        return _fold_numpy(np, data)
    value = int.from_bytes(data, "little")
    chunks = -(-len(data) // _PERIOD)
    while chunks > 1:
        high = chunks // 2
        shift = (chunks - high) * _FOLD_BITS
        value = (value & ((1 << shift) - 1)) ^ (value >> shift)
        chunks -= high
    return value.to_bytes(_PERIOD, "little")


class QuickXorHash:
    """Streaming quickXorHash: ``update()`` with any number of chunks, then ``digest()`` or ``b64digest()``."""

    name = "quickXorHash"

    def __init__(self, data: bytes | None = None) -> None:
        self._state = 0
        self._length = 0
        self._start = 0
        if data:
            self.update(data)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        length = len(data)
        if not length:
            return
        start = self._length
        state = self._state
        for k, byte in enumerate(_fold(data)):
            if byte:
                offset = (11 * (start + k)) % _WIDTH_BITS
                shifted = byte << offset
                state ^= (shifted | (shifted >> _WIDTH_BITS)) & _MASK
        self._state = state
        self._length = start + length

    @classmethod
    def starting_at(cls, offset: int) -> QuickXorHash:
        """A hasher for the bytes from ``offset`` on (one range of a file fetched in parallel): each byte lands at
        its absolute position, so the ranges' hashers :meth:`merge` into the whole file's."""
        hasher = cls()
        hasher._start = hasher._length = offset
        return hasher

    def merge(self, other: QuickXorHash) -> None:
        """Add the bytes ``other`` hashed, which must start where this hasher's end (``other.start == length``)."""
        if other.start != self._length:
            raise ValueError(f"cannot merge a range starting at {other.start} after {self._length} bytes")
        self._state ^= other._state
        self._length = other._length

    @property
    def start(self) -> int:
        """Offset of the first byte this hasher covers (0 unless made by :meth:`starting_at`)."""
        return self._start

    @property
    def length(self) -> int:
        """Offset just past the last byte hashed (the number of bytes hashed, for a hasher starting at 0)."""
        return self._length

    def reset(self) -> None:
        """Start over from byte 0."""
        self._state = 0
        self._length = self._start = 0

    def digest(self) -> bytes:
        final = self._state ^ ((self._length & 0xFFFFFFFFFFFFFFFF) << 96)
        return final.to_bytes(20, "little")

    def b64digest(self) -> str:
        """The digest as Graph reports it in ``file.hashes.quickXorHash``."""
        return base64.b64encode(self.digest()).decode("ascii")

    def copy(self) -> QuickXorHash:
        clone = QuickXorHash()
        clone._state, clone._length, clone._start = self._state, self._length, self._start
        return clone


def quickxorhash(data: bytes | bytearray | memoryview) -> str:
    """Base64 quickXorHash of ``data``."""
    hasher = QuickXorHash()
    hasher.update(data)
    return hasher.b64digest()


def quickxorhash_file(fileobj: BinaryIO, block_size: int = 8 * 1024 * 1024) -> str:
    """Base64 quickXorHash of a binary file object read from its current position to the end."""
    hasher = QuickXorHash()
    while block := fileobj.read(block_size):
        hasher.update(block)
    return hasher.b64digest()
