"""Uploads and downloads against the emulator: byte-exact, verified, conflict rules, mtimes, streams, folders."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime

import pytest

from airflow_provider_onedrive.errors import (
    OneDriveConflictError,
    OneDriveNotFoundError,
    OneDriveValidationError,
)
from airflow_provider_onedrive.hashing import quickxorhash
from tests.transfer.transfer_helpers import FRAGMENT, THRESHOLD, uploads, write

MTIME = 1_700_000_000.25


@pytest.mark.parametrize("size", [0, 1, THRESHOLD, THRESHOLD + 1, 3 * FRAGMENT, 3 * FRAGMENT + 17])
def test_upload_file_round_trip(client, emu, tmp_path, payload, size):
    data = payload(size)
    src = write(tmp_path / "src.bin", data, MTIME)
    result = client.upload_file(src, "dir/sub/file name #1.bin")
    assert emu.read_file("dir/sub/file name #1.bin") == data
    assert (result.status, result.size, result.hash, result.path) == (
        "created",
        size,
        quickxorhash(data),
        "dir/sub/file name #1.bin",
    )
    fragments = uploads(emu)
    if size > THRESHOLD:
        assert sum(r.bytes_in for r in fragments) == size
        assert all(r.bytes_in == FRAGMENT for r in fragments[:-1])
        assert all("authorization" not in r.headers for r in fragments)
    else:
        assert fragments == []
    info = client.info("dir/sub/file name #1.bin")
    assert info.modified is not None and abs(info.modified - datetime.fromtimestamp(MTIME, UTC)).total_seconds() < 1
    out = tmp_path / "out" / "copy.bin"
    downloaded = client.download_file("dir/sub/file name #1.bin", out)
    assert out.read_bytes() == data and downloaded.hash == quickxorhash(data)
    assert abs(out.stat().st_mtime - MTIME) < 1
    assert not [p for p in os.listdir(out.parent) if p.endswith(".partial")]


def test_download_host_never_sees_authorization(client, emu, payload):
    emu.put_file("f.bin", payload(2 * FRAGMENT))
    client.download_bytes("f.bin")
    downloads = [r for r in emu.requests if r.kind == "download"]
    assert downloads and all("authorization" not in r.headers for r in downloads)


def test_conflict_fail_identical_is_success_different_is_error(client, emu, tmp_path, payload):
    for size in (100, 2 * FRAGMENT + 5):
        data = payload(size)
        src = write(tmp_path / f"s{size}", data)
        assert client.upload_file(src, f"c/{size}.bin").status == "created"
        emu.clear_requests()
        again = client.upload_file(src, f"c/{size}.bin")
        assert again.status == "identical" and again.already_present
        if size > THRESHOLD:  # looked before sending: no session, no fragment
            assert uploads(emu) == [] and again.bytes_sent == 0
        write(src, payload(size, seed=2))
        with pytest.raises(OneDriveConflictError) as caught:
            client.upload_file(src, f"c/{size}.bin")
        assert "conflict='replace'" in str(caught.value)
        assert emu.read_file(f"c/{size}.bin") == data


@pytest.mark.parametrize("size", [10, 2 * FRAGMENT])
def test_conflict_replace_and_rename(client, emu, payload, size):
    client.upload_bytes(payload(size), "r/a.txt")
    new = payload(size, seed=3)
    replaced = client.upload_bytes(new, "r/a.txt", conflict="replace")
    assert replaced.status == "replaced" and emu.read_file("r/a.txt") == new
    renamed = client.upload_bytes(b"third", "r/a.txt", conflict="rename")
    assert renamed.status == "renamed" and renamed.path != "r/a.txt" and renamed.path.startswith("r/a")
    assert emu.read_file(renamed.path) == b"third" and emu.read_file("r/a.txt") == new
    with pytest.raises(OneDriveValidationError):
        client.upload_bytes(b"x", "r/b.txt", conflict="overwrite")


@pytest.mark.parametrize("size", [0, 1000, 3 * FRAGMENT + 1])
@pytest.mark.parametrize("known", [True, False])
def test_upload_stream(client, emu, payload, size, known):
    data = payload(size)
    result = client.upload_stream(io.BytesIO(data), "s/stream.bin", size=size if known else None)
    assert emu.read_file("s/stream.bin") == data and result.hash == quickxorhash(data)


def test_push_session_write_finish_and_cancel(client, emu, payload):
    data = payload(3 * FRAGMENT + 100)
    session = client.start_upload_session("p/a.bin", size=len(data))
    for i in range(0, len(data), 100_000):
        session.write(data[i : i + 100_000])
    assert session.finish().size == len(data) and emu.read_file("p/a.bin") == data
    session = client.start_upload_session("p/b.bin", size=len(data))
    session.write(data[: 2 * FRAGMENT + 1])
    session.cancel()
    assert emu.item("p/b.bin") is None
    cancels = [r for r in emu.requests if r.kind == "upload" and r.method == "DELETE"]
    assert [r.status for r in cancels] == [204]
    with pytest.raises(OneDriveValidationError), client.start_upload_session("p/c.bin", size=5) as short:
        short.write(b"abc")
    assert emu.item("p/c.bin") is None


def test_download_variants(client, emu, tmp_path, payload):
    data = payload(2 * FRAGMENT + 3)
    emu.put_file("d/x.bin", data)
    assert client.download_bytes("onedrive://d/x.bin") == data
    sink = io.BytesIO()
    assert client.download_to("d/x.bin", sink).size == len(data) and sink.getvalue() == data
    for start, length in [(0, 10), (5, 1000), (len(data) - 3, 10), (len(data), 5), (0, len(data))]:
        assert client.read_range("d/x.bin", start, length) == data[start : start + length]
    item = client.info("d/x.bin")
    assert client.read_range(item, 100, 50) == data[100:150]
    target = write(tmp_path / "exists.bin", b"keep")
    with pytest.raises(FileExistsError):
        client.download_file("d/x.bin", target, overwrite=False)
    assert target.read_bytes() == b"keep"
    with pytest.raises(OneDriveNotFoundError):
        client.download_file("d/missing.bin", tmp_path / "m.bin")
    assert not (tmp_path / "m.bin").exists()
    with pytest.raises(OneDriveValidationError):
        client.download_bytes("d")


def test_folder_round_trip_with_concurrency(client, emu, tmp_path, payload):
    local = tmp_path / "tree"
    files = {f"f{i}.txt": payload(500 + i, seed=i) for i in range(12)}
    files["sub/deep/big.bin"] = payload(2 * FRAGMENT + 7)
    files["sub/x.csv"] = b"a,b\n"
    for name, data in files.items():
        write(local / name, data, MTIME)
    (local / "empty").mkdir()
    results = client.upload_folder(local, "up", max_workers=4)
    assert sorted(r.path for r in results) == sorted(f"up/{n}" for n in files)
    assert all(r.status == "created" for r in results)
    assert emu.item("up/empty") is not None
    again = client.upload_folder(local, "up")  # idempotent under conflict="fail"
    assert {r.status for r in again} == {"identical"}
    out = tmp_path / "down"
    downloaded = client.download_folder("up", out, max_workers=4)
    assert len(downloaded) == len(files)
    for name, data in files.items():
        assert (out / name).read_bytes() == data
    assert (out / "empty").is_dir()


def test_folder_download_takes_each_files_url_from_the_listing(client, emu, tmp_path, payload):
    files = {f"f{i}.txt": payload(100 + i, seed=i) for i in range(6)}
    files.update({"sub/a.bin": payload(300), "sub/b.bin": payload(301)})
    for name, data in files.items():
        emu.put_file(f"many/{name}", data)
    emu.clear_requests()
    client.download_folder("many", tmp_path / "out", max_workers=3)
    for name, data in files.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    records = emu.requests
    assert not [r for r in records if r.path.split("?")[0].endswith("/content")]
    downloads = [r for r in records if r.kind == "download"]
    assert len(downloads) == len(files) and all("authorization" not in r.headers for r in downloads)
    listings = [r for r in records if r.path.split("?")[0].endswith("/children")]
    assert listings and all("select" not in r.path for r in listings)


def test_folder_download_survives_listed_urls_that_expired(client, emu, tmp_path, payload):
    emu.put_file("old/a.bin", payload(2000))
    items = client.context.list_folder("old", select=None)
    assert "@microsoft.graph.downloadUrl" in items[0].raw
    emu.advance_time(7200)  # every download URL handed out so far is past its lifetime
    emu.clear_requests()
    result = client.download_file("old/a.bin", tmp_path / "a.bin", item=items[0])
    assert (tmp_path / "a.bin").read_bytes() == payload(2000) and result.size == 2000
    statuses = [r.status for r in emu.requests if r.kind == "download"]
    assert statuses[0] in (401, 403, 404, 410) and statuses[-1] == 200


def test_folder_upload_refuses_case_clashes_and_bad_names(client, emu, tmp_path):
    local = tmp_path / "clash"
    write(local / "Report.csv", b"1")
    write(local / "report.CSV", b"2")
    with pytest.raises(OneDriveValidationError, match="differ only by case"):
        client.upload_folder(local, "x")
    bad = tmp_path / "bad"
    write(bad / "a:b.txt", b"1")
    with pytest.raises(OneDriveValidationError, match="does not allow"):
        client.upload_folder(bad, "x")
    assert [r for r in emu.requests if r.kind == "graph"] == []


@pytest.mark.parametrize("name", ["n" * 251 + ".csv", "é" * 120 + ".csv"], ids=["255-chars", "244-utf8-bytes"])
def test_names_up_to_the_limit_download_atomically(client, emu, tmp_path, name):
    """A long name's temporary file stays within the file system's 255-byte name limit."""
    emu.put_file(f"long/{name}", b"a,b\n")
    result = client.download_file(f"long/{name}", tmp_path / name)
    assert (tmp_path / name).read_bytes() == b"a,b\n" and result.size == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left behind
