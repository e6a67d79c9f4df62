"""pandas and pyarrow through onedrive:// URLs, and reading the head of a multi-GB file without downloading it."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_provider_onedrive.fs import OneDriveFileSystem

FRAME = pd.DataFrame({"region": ["north", "south", "east", "west"], "amount": [1.5, 2.25, 3.0, 4.75]})


def test_csv_round_trip_with_storage_options(fs_options: dict[str, Any], base: str) -> None:
    url = f"onedrive://{base}/reports/q1.csv"
    FRAME.to_csv(url, index=False, storage_options=fs_options)
    assert pd.read_csv(url, storage_options=fs_options).equals(FRAME)


def test_parquet_round_trip(fs_options: dict[str, Any], base: str) -> None:
    url = f"onedrive+graph://{base}/reports/q1.parquet"
    FRAME.to_parquet(url, index=False, storage_options=fs_options)
    pd.testing.assert_frame_equal(pd.read_parquet(url, storage_options=fs_options), FRAME)
    fs = OneDriveFileSystem(**fs_options)
    table = pq.read_table(f"{base}/reports/q1.parquet", filesystem=fs)  # pyarrow's own reader over fsspec
    assert table.column("amount").to_pylist() == FRAME["amount"].tolist()


def _seed_sparse_csv(emulator: Any, path: str, size: int, spill_dir: Path) -> None:
    """Put a ``size``-byte file in the emulator without holding it in memory: real CSV rows, then a sparse tail."""
    from airflow_provider_onedrive.testing.blobs import Blob

    head = b"id,value\n" + b"".join(f"{i},{i * 7}\n".encode() for i in range(100_000))
    fd, spill = tempfile.mkstemp(prefix="sparse-", dir=spill_dir)
    with os.fdopen(fd, "r+b") as handle:
        handle.write(head)
        handle.truncate(size)
    blob = Blob(size, {"quickXorHash": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}, None, spill)  # hash unused by ranged reads
    drive = emulator.drive()
    names = path.split("/")
    actor = {"kind": "user", "displayName": "test seed", "id": emulator.user_id}
    with emulator.store.lock:
        parent = emulator.store.ensure_folders(drive, drive.root, names[:-1], actor)
        emulator.store.put_file(drive, parent, names[-1], blob, "replace", actor)


@pytest.mark.skipif(bool(os.environ.get("ONEDRIVE_TEST_CONNECTION")), reason="seeds a 2 GiB file in the emulator")
def test_head_of_a_2_gib_file_reads_a_few_mib(
    fs_options: dict[str, Any], base: str, onedrive_emulator: Any, tmp_path: Path
) -> None:
    size = 2 * 2**30
    _seed_sparse_csv(onedrive_emulator, f"{base}/huge.csv", size, tmp_path)
    fs = OneDriveFileSystem(**fs_options)
    assert fs.size(f"{base}/huge.csv") == size
    onedrive_emulator.clear_requests()
    with fs.open(f"{base}/huge.csv", "rb") as handle:
        rows = pd.read_csv(handle, nrows=5)
    assert rows["value"].tolist() == [0, 7, 14, 21, 28]
    time.sleep(0.2)  # the emulator logs a request just after sending its response
    downloads = [r for r in onedrive_emulator.requests if r.kind == "download"]
    served = sum(r.bytes_out for r in downloads)
    assert downloads and served < 16 * 2**20, f"{served} bytes served for five rows"
