"""quickXorHash against a bit-by-bit reference written from Microsoft's description of the algorithm."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_onedrive import hashing
from airflow_provider_onedrive.hashing import QuickXorHash, quickxorhash, quickxorhash_file


def reference(data: bytes) -> str:
    """Byte i goes in at bit (11 * i) mod 160, each of its bits wrapping inside the 160-bit state on its own;
    then the 64-bit little-endian length is XORed into the state's last 8 bytes."""
    state = bytearray(20)
    for i, byte in enumerate(data):
        for bit in range(8):
            if byte >> bit & 1:
                position = (11 * i + bit) % 160
                state[position // 8] ^= 1 << (position % 8)
    for k, byte in enumerate(len(data).to_bytes(8, "little")):
        state[12 + k] ^= byte
    return base64.b64encode(bytes(state)).decode()


def test_empty_input():
    assert quickxorhash(b"") == reference(b"") == "AAAAAAAAAAAAAAAAAAAAAAAAAAA="


@pytest.mark.parametrize("size", [1, 2, 19, 20, 159, 160, 161, 319, 320, 321, 1000, 4096 + 3])
def test_small_inputs_match_the_reference(size):
    data = os.urandom(size)
    assert quickxorhash(data) == reference(data)


@pytest.mark.parametrize("size", [256 * 1024, 256 * 1024 + 161, 300_007])
def test_vectorised_fold_matches_the_reference(size):
    data = os.urandom(size)
    assert size >= hashing._NUMPY_MIN and hashing._load_numpy() is not None
    assert quickxorhash(data) == reference(data)


def test_numpy_comes_with_the_transfer_layer_not_with_the_first_block():
    """A cold process pays numpy's import (~0.06-0.09 s) when it loads the client, not inside a transfer."""
    code = "import sys, airflow_provider_onedrive.drive; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("size", [0, 159, 160, 161, 320 * 7 + 5, 1024 * 1024, 1024 * 1024 + 321])
def test_numpy_and_integer_folds_agree(size):
    np = hashing._load_numpy()
    data = os.urandom(size)
    value = int.from_bytes(data, "little")
    by_int = bytearray(160)
    for i in range(0, size, 160):
        for k, byte in enumerate(((value >> (8 * i)) & ((1 << 1280) - 1)).to_bytes(160, "little")):
            by_int[k] ^= byte
    assert hashing._fold_numpy(np, data) == bytes(by_int)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0, max_value=2000), max_size=6))
def test_any_split_into_updates_gives_the_same_digest(data, cuts):
    hasher = QuickXorHash()
    start = 0
    for cut in sorted(c for c in cuts if c <= len(data)):
        hasher.update(data[start:cut])
        start = cut
    hasher.update(memoryview(data)[start:])
    assert hasher.b64digest() == reference(data) and hasher.length == len(data)


def test_reset_copy_and_file(tmp_path):
    data = os.urandom(700_001)
    hasher = QuickXorHash(b"something else")
    hasher.reset()
    hasher.update(data[:300_000])
    clone = hasher.copy()
    hasher.update(data[300_000:])
    clone.update(data[300_000:])
    path = tmp_path / "blob"
    path.write_bytes(data)
    with path.open("rb") as handle:
        from_file = quickxorhash_file(handle, block_size=65_536)
    assert hasher.b64digest() == clone.b64digest() == from_file == quickxorhash(data)
