"""Behaviour of the onedrive:// filesystem beyond fsspec's shared suites: URLs, credentials, caching, writes."""

from __future__ import annotations

import base64
import os
import pickle
from typing import Any

import fsspec
import pytest

from airflow_provider_onedrive.errors import OneDriveConfigError
from airflow_provider_onedrive.fs import OneDriveFileSystem
from airflow_provider_onedrive.fs.onedrive import get_fs, schemes, split_url
from airflow_provider_onedrive.hashing import quickxorhash

emulator_only = pytest.mark.skipif(
    bool(os.environ.get("ONEDRIVE_TEST_CONNECTION")), reason="inspects the emulator's state and request log"
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("onedrive://reports/q1.csv", (None, None, "reports/q1.csv")),
        ("onedrive://my_conn@/reports/q1.csv", ("my_conn", None, "reports/q1.csv")),
        ("onedrive://my_conn@b!AbC/reports/", ("my_conn", "b!AbC", "reports")),
        ("onedrive+graph://my_conn@/x", ("my_conn", None, "x")),
        ("ONEDRIVE://Folder/File.txt", (None, None, "Folder/File.txt")),
        ("onedrive:///user@example.com/x", (None, None, "user@example.com/x")),
        ("/reports/q1.csv", (None, None, "reports/q1.csv")),
        ("onedrive://", (None, None, "")),
    ],
)
def test_split_url(url: str, expected: tuple[Any, ...]) -> None:
    assert split_url(url) == expected


def test_url_authority_becomes_storage_options() -> None:
    assert OneDriveFileSystem._get_kwargs_from_urls("onedrive://c@d/x") == {"conn_id": "c", "drive": "d"}
    assert OneDriveFileSystem._get_kwargs_from_urls("onedrive://folder/x") == {}
    assert OneDriveFileSystem._strip_protocol(["onedrive://c@/a/", "b"]) == ["a", "b"]


def test_both_protocols_resolve_to_this_class() -> None:
    assert fsspec.get_filesystem_class("onedrive") is OneDriveFileSystem
    assert fsspec.get_filesystem_class("onedrive+graph") is OneDriveFileSystem
    assert schemes == ["onedrive", "onedrive+graph"]


def test_constructor_does_no_io_and_keeps_no_secret_in_repr() -> None:
    fs = OneDriveFileSystem(client_id="app", client_secret="s3cret-value", tenant_id="t", skip_instance_cache=True)
    assert fs._client is None  # nothing built until the first request
    assert "s3cret-value" not in repr(fs)
    with pytest.raises(ValueError, match="conflict"):
        OneDriveFileSystem(conflict="overwrite")


def test_missing_credentials_say_what_to_pass() -> None:
    fs = OneDriveFileSystem(skip_instance_cache=True)
    with pytest.raises(OneDriveConfigError, match="conn_id"):
        fs.ls("")


def test_get_fs_uses_the_connection_and_storage_options() -> None:
    fs = get_fs("some_conn", {"conflict": "fail", "skip_instance_cache": True})
    assert isinstance(fs, OneDriveFileSystem)
    assert fs._source["conn_id"] == "some_conn"
    assert fs.conflict == "fail"
    assert get_fs(None, {"skip_instance_cache": True})._source["conn_id"] == "onedrive_default"


def test_token_and_client_sources(onedrive_fs: OneDriveFileSystem, base: str) -> None:
    onedrive_fs.pipe_file(f"{base}/a.txt", b"hello")
    graph = onedrive_fs.client.graph
    by_token = OneDriveFileSystem(
        token=graph.token_provider.get_token,
        graph_url=graph.graph_url,
        ca_bundle=graph.verify if isinstance(graph.verify, str) else None,
        drive_id=onedrive_fs.client.drive_base.rpartition("/")[2]
        if "drives/" in onedrive_fs.client.drive_base
        else None,
        skip_instance_cache=True,
    )
    by_client = OneDriveFileSystem(client=onedrive_fs.client, skip_instance_cache=True)
    assert by_client.cat_file(f"{base}/a.txt") == b"hello"
    if "drives/" in onedrive_fs.client.drive_base:
        assert by_token.cat_file(f"{base}/a.txt") == b"hello"


def test_pickled_filesystem_reconnects(fs_options: dict[str, Any], base: str) -> None:
    fs = OneDriveFileSystem(**fs_options)
    fs.pipe_file(f"{base}/p.txt", b"pickled")
    clone = pickle.loads(pickle.dumps(fs))
    assert clone.cat_file(f"{base}/p.txt") == b"pickled"


def test_info_ls_and_metadata(onedrive_fs: OneDriveFileSystem, base: str) -> None:
    data = b"x" * 1000
    onedrive_fs.pipe_file(f"{base}/dir/f.bin", data)
    info = onedrive_fs.info(f"onedrive://{base}/dir/f.bin")
    assert (info["name"], info["size"], info["type"]) == (f"{base}/dir/f.bin", 1000, "file")
    assert info["quickXorHash"] == quickxorhash(data)
    assert onedrive_fs.checksum(f"{base}/dir/f.bin") == int.from_bytes(base64.b64decode(quickxorhash(data)), "big")
    assert onedrive_fs.ukey(f"{base}/dir/f.bin") == f"{quickxorhash(data)}:1000"
    assert onedrive_fs.modified(f"{base}/dir/f.bin").tzinfo is not None
    assert onedrive_fs.created(f"{base}/dir/f.bin").tzinfo is not None
    assert onedrive_fs.ls(f"{base}/dir/f.bin", detail=False) == [f"{base}/dir/f.bin"]
    assert onedrive_fs.ls(base, detail=False) == [f"{base}/dir"]
    assert onedrive_fs.isdir(f"{base}/dir") and onedrive_fs.isfile(f"{base}/dir/f.bin")
    assert onedrive_fs.du(base) == 1000
    assert onedrive_fs.find(base) == [f"{base}/dir/f.bin"]
    assert onedrive_fs.glob(f"{base}/*/*.bin") == [f"{base}/dir/f.bin"]
    assert not onedrive_fs.exists(f"{base}/missing")
    assert not onedrive_fs.exists(f"{base}/bad:name")
    with pytest.raises(FileNotFoundError):
        onedrive_fs.info(f"{base}/missing")
    with pytest.raises(FileNotFoundError):
        onedrive_fs.ls(f"{base}/missing")


def test_ranged_reads(onedrive_fs: OneDriveFileSystem, base: str) -> None:
    data = bytes(range(256)) * 64
    onedrive_fs.pipe_file(f"{base}/r.bin", data)
    path = f"{base}/r.bin"
    assert onedrive_fs.cat_file(path, start=10, end=20) == data[10:20]
    assert onedrive_fs.cat_file(path, start=-5) == data[-5:]
    assert onedrive_fs.cat_file(path, start=100, end=-100) == data[100:-100]
    assert onedrive_fs.cat_file(path, start=20, end=10) == b""
    with onedrive_fs.open(path, "rb", block_size=1000) as handle:
        handle.seek(5000)
        assert handle.read(10) == data[5000:5010]
        assert handle.read() == data[5010:]
    assert onedrive_fs.read_block(path, 0, 100) == data[:100]


@emulator_only
def test_listing_is_cached_until_a_write(onedrive_fs: OneDriveFileSystem, base: str, onedrive_emulator: Any) -> None:
    onedrive_fs.pipe_file(f"{base}/a", b"1")
    onedrive_fs.ls(base)
    onedrive_emulator.clear_requests()
    onedrive_fs.ls(base)
    onedrive_fs.info(f"{base}/a")
    assert onedrive_emulator.requests == []  # served from the dircache
    onedrive_fs.pipe_file(f"{base}/b", b"2")
    assert onedrive_fs.ls(base, detail=False) == [f"{base}/a", f"{base}/b"]
    assert onedrive_fs.info(f"{base}/a")["size"] == 1


@emulator_only
def test_failed_listing_is_not_cached(onedrive_fs: OneDriveFileSystem, base: str, onedrive_emulator: Any) -> None:
    for i in range(1001):  # two pages of $top=1000
        onedrive_emulator.put_file(f"{base}/f{i}", b"x")
    onedrive_emulator.faults.add("status", path="children", nth=2, status=403, code="accessDenied")
    with pytest.raises(PermissionError):
        onedrive_fs.ls(base)
    assert base not in onedrive_fs.dircache
    assert len(onedrive_fs.ls(base)) == 1001


@emulator_only
def test_written_file_is_visible_only_after_close(
    onedrive_fs: OneDriveFileSystem, base: str, onedrive_emulator: Any
) -> None:
    path = f"{base}/w.bin"
    handle = onedrive_fs.open(path, "wb", block_size=5 * 2**20)
    handle.write(b"a" * (6 * 2**20))
    assert onedrive_emulator.item(path) is None
    handle.close()
    assert onedrive_emulator.read_file(path) == b"a" * (6 * 2**20)


@emulator_only
def test_large_write_uses_an_aligned_upload_session(
    onedrive_fs: OneDriveFileSystem, base: str, onedrive_emulator: Any
) -> None:
    payload = bytes(range(256)) * (9 * 2**12)  # 9 MiB, above the 4 MiB simple-upload threshold
    onedrive_emulator.clear_requests()
    with onedrive_fs.open(f"{base}/big.bin", "wb") as handle:
        for offset in range(0, len(payload), 1_000_003):
            handle.write(payload[offset : offset + 1_000_003])
    fragments = [r for r in onedrive_emulator.requests if r.method == "PUT" and r.kind == "upload"]
    assert fragments and all(r.bytes_in % (320 * 1024) == 0 for r in fragments[:-1])
    assert sum(r.bytes_in for r in fragments) == len(payload)
    assert onedrive_fs.cat_file(f"{base}/big.bin") == payload


@emulator_only
def test_exception_in_with_block_discards(onedrive_fs: OneDriveFileSystem, base: str, onedrive_emulator: Any) -> None:
    with pytest.raises(RuntimeError), onedrive_fs.open(f"{base}/partial.csv", "wb") as handle:
        handle.write(b"header\n")
        raise RuntimeError("the producer failed")
    assert onedrive_emulator.item(f"{base}/partial.csv") is None
    handle = onedrive_fs.open(f"{base}/discarded", "wb")
    handle.write(b"x")
    handle.discard()
    assert handle.closed
    assert onedrive_emulator.item(f"{base}/discarded") is None


def test_overwrite_semantics(fs_options: dict[str, Any], base: str) -> None:
    replacing = OneDriveFileSystem(skip_instance_cache=True, **fs_options)
    replacing.pipe_file(f"{base}/c.txt", b"one")
    replacing.pipe_file(f"{base}/c.txt", b"two")  # fsspec convention: writes replace
    assert replacing.cat_file(f"{base}/c.txt") == b"two"
    careful = OneDriveFileSystem(conflict="fail", skip_instance_cache=True, **fs_options)
    with pytest.raises(FileExistsError):
        careful.pipe_file(f"{base}/c.txt", b"three")
    with pytest.raises(FileExistsError):
        replacing.pipe_file(f"{base}/c.txt", b"two", mode="create")  # even identical bytes
    with pytest.raises(FileExistsError):
        replacing.open(f"{base}/c.txt", "xb")
    with pytest.raises(NotImplementedError):
        replacing.open(f"{base}/c.txt", "ab")
    assert replacing.cat_file(f"{base}/c.txt") == b"two"


def test_move_copy_and_delete(onedrive_fs: OneDriveFileSystem, base: str) -> None:
    onedrive_fs.pipe({f"{base}/src/a.txt": b"a", f"{base}/src/sub/b.txt": b"b"})
    onedrive_fs.mv(f"{base}/src", f"{base}/moved")  # one server-side request for the folder
    assert onedrive_fs.find(base) == [f"{base}/moved/a.txt", f"{base}/moved/sub/b.txt"]
    onedrive_fs.makedirs(f"{base}/into")
    onedrive_fs.mv(f"{base}/moved/a.txt", f"{base}/into")
    assert onedrive_fs.cat_file(f"{base}/into/a.txt") == b"a"
    onedrive_fs.cp_file(f"{base}/into/a.txt", f"{base}/new/dir/copy.txt")
    assert onedrive_fs.cat_file(f"{base}/new/dir/copy.txt") == b"a"
    with pytest.raises(IsADirectoryError):
        onedrive_fs.rm(f"{base}/moved")
    with pytest.raises(OSError, match="not empty"):
        onedrive_fs.rmdir(f"{base}/moved")
    onedrive_fs.rm(f"{base}/moved", recursive=True)
    onedrive_fs.makedirs(f"{base}/empty")
    onedrive_fs.rmdir(f"{base}/empty")
    with pytest.raises(FileExistsError):
        onedrive_fs.mkdir(f"{base}/into")
    onedrive_fs.makedirs(f"{base}/into", exist_ok=True)
    assert sorted(onedrive_fs.ls(base, detail=False)) == [f"{base}/into", f"{base}/new"]


@emulator_only
def test_recursive_rm_sends_one_delete_per_top_folder(
    onedrive_fs: OneDriveFileSystem, base: str, onedrive_emulator: Any
) -> None:
    for i in range(6):
        onedrive_emulator.put_file(f"{base}/tree/d{i % 2}/f{i}", b"x")
    onedrive_fs.rm(f"{base}/tree", recursive=True)
    assert [r.method for r in onedrive_emulator.requests].count("DELETE") == 1
    assert onedrive_emulator.item(f"{base}/tree") is None
    assert "tree" in onedrive_emulator.deleted_items()  # the recycle bin, not a permanent delete


@pytest.mark.parametrize("root", ["", "/", "onedrive://", ["ok.txt", "/"]])
def test_rm_of_the_drive_root_is_refused_before_any_request(onedrive_fs, request, root):
    from airflow_provider_onedrive.errors import OneDriveValidationError

    emulator = request.getfixturevalue("onedrive_emulator")
    emulator.clear_requests()
    with pytest.raises(OneDriveValidationError, match="drive root"):
        onedrive_fs.rm(root, recursive=True)
    assert emulator.requests == []


@emulator_only
def test_get_follows_no_redirect_and_looks_the_file_up_at_most_twice(
    onedrive_fs: OneDriveFileSystem, base: str, onedrive_emulator: Any, tmp_path: Any
) -> None:
    onedrive_fs.pipe_file(f"{base}/one.csv", b"a,b\n")
    onedrive_emulator.clear_requests()
    onedrive_fs.get(f"{base}/one.csv", str(tmp_path / "one.csv"))
    assert (tmp_path / "one.csv").read_bytes() == b"a,b\n"
    graph = [r for r in onedrive_emulator.requests if r.kind == "graph"]
    downloads = [r for r in onedrive_emulator.requests if r.kind == "download"]
    # fsspec's own path expansion looks the file up, then get_file does, keeping the download URL it returns:
    # no third lookup inside the download, and no /content redirect
    assert len(graph) <= 2 and not [r for r in graph if r.path.endswith("/content")]
    assert len(downloads) == 1
