"""Listing (paging, filters, walk, glob) and item operations (mkdir, delete, move, copy) against the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_onedrive.errors import (
    OneDriveConflictError,
    OneDriveNotFoundError,
    OneDriveValidationError,
)
from airflow_provider_onedrive.transfers import CopyMonitor


def children_requests(emu):
    return [r for r in emu.requests if r.kind == "graph" and r.method == "GET" and "children" in r.path]


def test_list_children_pages_lazily_with_top_1000(client, emu):
    for i in range(2500):
        emu.put_file(f"big/f{i:05d}.txt", b"x")
    emu.clear_requests()
    listing = client.list_children("big")
    first = next(listing)
    assert first["name"].startswith("f") and len(children_requests(emu)) == 1  # lazy: one page so far
    names = [first["name"]] + [item["name"] for item in listing]
    assert len(names) == 2500 and len(set(names)) == 2500
    pages = children_requests(emu)
    assert len(pages) == 3
    assert "$top" in pages[0].query and "$select" in pages[0].query


def test_ls_filters_and_recursive(client, emu):
    emu.put_file("t/a.csv", b"1")
    emu.put_file("t/b.txt", b"22")
    emu.put_file("t/sub/c.csv", b"333")
    emu.put_file("t/sub/deeper/d.csv", b"4444")
    emu.mkdir("t/empty")
    assert sorted(i.path for i in client.ls("t")) == ["t/a.csv", "t/b.txt", "t/empty", "t/sub"]
    assert sorted(i.name for i in client.ls("t", files_only=True)) == ["a.csv", "b.txt"]
    assert sorted(i.name for i in client.ls("t", folders_only=True)) == ["empty", "sub"]
    everything = sorted(i.path for i in client.ls("onedrive://t", recursive=True, files_only=True))
    assert everything == ["t/a.csv", "t/b.txt", "t/sub/c.csv", "t/sub/deeper/d.csv"]
    future = datetime.now(UTC) + timedelta(days=1)
    assert list(client.ls("t", modified_since=future)) == []
    assert len(list(client.ls("t", modified_since=datetime(2000, 1, 1, tzinfo=UTC)))) == 4
    with pytest.raises(OneDriveValidationError):
        list(client.ls("t", files_only=True, folders_only=True))
    with pytest.raises(OneDriveNotFoundError):
        list(client.ls("nope"))


def test_walk_is_os_walk_like_and_skips_empty_folders(client, emu):
    emu.put_file("w/a.txt", b"1")
    emu.put_file("w/x/b.txt", b"2")
    emu.put_file("w/x/y/c.txt", b"3")
    emu.mkdir("w/e")
    emu.clear_requests()
    walked = {path: (sorted(dirs), sorted(files)) for path, dirs, files in client.walk("w")}
    assert walked == {
        "w": (["e", "x"], ["a.txt"]),
        "w/e": ([], []),
        "w/x": (["y"], ["b.txt"]),
        "w/x/y": ([], ["c.txt"]),
    }
    assert len(children_requests(emu)) == 3  # the empty folder was not listed


def test_glob(client, emu):
    for path in ["g/Report.CSV", "g/data.csv", "g/notes.txt", "g/2024/q1.csv", "g/2024/q2.csv", "g/2024/x/deep.csv"]:
        emu.put_file(path, b"1")
    assert [i.path for i in client.glob("g/*.csv")] == ["g/Report.CSV", "g/data.csv"]
    assert [i.path for i in client.glob("g/*.csv", case_sensitive=True)] == ["g/data.csv"]
    assert [i.path for i in client.glob("g/20??/q[2-9].csv")] == ["g/2024/q2.csv"]
    assert len(client.glob("g/**/*.csv")) == 5
    assert [i.path for i in client.glob("onedrive://g/2024/**/deep.*")] == ["g/2024/x/deep.csv"]
    assert client.glob("g/missing/*.csv") == []
    assert [i.path for i in client.glob("g/notes.txt")] == ["g/notes.txt"]


def test_info_item_exists(client, emu):
    emu.put_file("i/a.txt", b"hello")
    info = client.info("i/a.txt")
    assert (info.path, info.name, info.size, info.is_folder) == ("i/a.txt", "a.txt", 5, False)
    assert info.quick_xor_hash and info.etag and info.id
    assert client.item("i")["folder"]["childCount"] == 1
    assert client.exists("I/A.TXT") and not client.exists("i/b.txt")
    root = client.info("")
    assert root.is_folder and root.path == ""


def test_mkdir(client, emu):
    made = client.mkdir("m/a/b/c")
    assert made.is_folder and made.path == "m/a/b/c" and emu.item("m/a/b/c") is not None
    assert client.mkdir("m/a/b/c").id == made.id  # exist_ok
    with pytest.raises(OneDriveConflictError):
        client.mkdir("m/a/b/c", exist_ok=False)
    emu.put_file("m/file", b"1")
    with pytest.raises(OneDriveConflictError, match="a file"):
        client.mkdir("m/file")
    with pytest.raises(OneDriveNotFoundError, match="parents=True"):
        client.mkdir("n/o", parents=False)
    assert client.mkdir("").is_folder


def test_delete(client, emu):
    emu.put_file("del/a.txt", b"1")
    emu.put_file("del/b.txt", b"2")
    emu.put_file("del/sub/c.txt", b"3")
    assert client.delete("del/a.txt") == ["del/a.txt"]
    assert emu.item("del/a.txt") is None and "a.txt" in emu.deleted_items()
    with pytest.raises(OneDriveNotFoundError):
        client.delete("del/a.txt")
    assert client.delete(["del/a.txt", "del/b.txt"], missing_ok=True) == ["del/b.txt"]
    emu.clear_requests()
    for root in ("", "/", "onedrive://", ["del/sub", ""]):
        with pytest.raises(OneDriveValidationError, match="root"):
            client.delete(root)
    assert emu.requests == []
    assert client.delete("del/sub", permanent=True) == ["del/sub"]
    assert emu.item("del/sub") is None and "sub" not in emu.deleted_items()


def test_delete_glob_deletes_top_matches_only(client, emu):
    for path in ["dg/a.tmp", "dg/b.tmp", "dg/keep.csv", "dg/x.tmp/inner.tmp"]:
        emu.put_file(path, b"1")
    deleted = client.delete_glob("dg/**/*.TMP")
    assert sorted(deleted) == ["dg/a.tmp", "dg/b.tmp", "dg/x.tmp"]
    assert emu.item("dg/keep.csv") is not None


def test_move(client, emu):
    emu.put_file("mv/a.txt", b"a")
    emu.mkdir("mv/into")
    moved = client.move("mv/a.txt", "mv/into")
    assert moved.path == "mv/into/a.txt" and emu.read_file("mv/into/a.txt") == b"a"
    renamed = client.move("mv/into/a.txt", "mv/b.txt")
    assert renamed.path == "mv/b.txt" and emu.item("mv/into/a.txt") is None
    emu.mkdir("mv/new")
    assert client.move("mv/b.txt", "mv/new/").path == "mv/new/b.txt"
    with pytest.raises(OneDriveNotFoundError):
        client.move("mv/new/b.txt", "mv/absent/")
    emu.put_file("mv/c.txt", b"c")
    emu.put_file("mv/d.txt", b"d")
    with pytest.raises(OneDriveConflictError):
        client.move("mv/c.txt", "mv/d.txt")
    assert client.move("mv/c.txt", "mv/d.txt", conflict="replace").path == "mv/d.txt"
    assert emu.read_file("mv/d.txt") == b"c"
    with pytest.raises(OneDriveValidationError):
        client.move("", "x")
    with pytest.raises(OneDriveValidationError, match="into itself"):
        client.move("mv/into", "mv/into/deeper/")
    with pytest.raises(OneDriveNotFoundError, match="does not exist"):
        client.move("mv/d.txt", "nowhere/x.txt")


def test_copy(client, emu, payload):
    data = payload(50_000)
    emu.put_file("cp/a.bin", data)
    copied = client.copy("cp/a.bin", "cp/b.bin")
    assert copied.path == "cp/b.bin" and emu.read_file("cp/b.bin") == data
    monitor = client.copy("cp/a.bin", "cp/", conflict="rename", wait=False)
    assert isinstance(monitor, CopyMonitor)
    item = monitor.wait(timeout=30)
    assert item.path.startswith("cp/a") and item.path != "cp/a.bin" and emu.read_file(item.path) == data
    with pytest.raises(OneDriveConflictError):
        client.copy("cp/a.bin", "cp/b.bin")
    monitor_polls = [r for r in emu.requests if r.kind == "monitor"]
    assert monitor_polls and all("authorization" not in r.headers for r in monitor_polls)


def test_modified_since_names_which_time_it_filters_on(client, tmp_path):
    """An upload that preserves an old local mtime: new to the drive, old to the file system."""
    import os

    local = tmp_path / "old.csv"
    local.write_bytes(b"a,b\n")
    old = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    os.utime(local, (old, old))
    client.upload_file(local, "times/old.csv")
    (item,) = client.ls("times")
    assert item.modified == datetime(2020, 1, 1, tzinfo=UTC)  # the file system's time, preserved
    assert item.drive_modified is not None and item.drive_modified > datetime.now(UTC) - timedelta(hours=1)
    since = datetime.now(UTC) - timedelta(hours=1)
    assert [i.path for i in client.ls("times", modified_since=since, modified_by="drive")] == ["times/old.csv"]
    assert list(client.ls("times", modified_since=since, modified_by="file_system")) == []
    assert list(client.ls("times", modified_since=since)) == []  # the default: the file-system time
    with pytest.raises(OneDriveValidationError, match="modified_by"):
        list(client.ls("times", modified_since=since, modified_by="server"))
