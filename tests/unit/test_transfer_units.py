"""Single-response-shape units of the transfer engine, against requests-mock (no emulator)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime

import pytest

from airflow_provider_onedrive.drive import OneDriveClient
from airflow_provider_onedrive.errors import OneDriveIntegrityError, OneDriveValidationError
from airflow_provider_onedrive.graph import GraphClient
from airflow_provider_onedrive.hashing import quickxorhash
from airflow_provider_onedrive.retry import RetryPolicy
from airflow_provider_onedrive.transfers.context import check_fragment_size
from airflow_provider_onedrive.transfers.models import RemoteItem, format_datetime, parse_datetime
from airflow_provider_onedrive.transfers.state import SessionState, UploadStateStore

G = "https://graph.test/v1.0"
KIB = 1024


@pytest.fixture
def client(tmp_path):
    graph = GraphClient(lambda: "tok", graph_url=G, retry=RetryPolicy(backoff_base=0.001), pacer_key=str(tmp_path))
    return OneDriveClient(
        graph, "drives/d1", simple_upload_threshold=100 * KIB, fragment_size=320 * KIB, state_dir=tmp_path / "st"
    )


def file_item(name, data, **extra):
    return {
        "id": "i1",
        "name": name,
        "size": len(data),
        "eTag": "e1",
        "file": {"hashes": {"quickXorHash": quickxorhash(data)}},
        **extra,
    }


def test_fragment_size_rounds_down_to_320k_and_refuses_60mib():
    assert check_fragment_size(10 * 1024 * KIB) == 32 * 320 * KIB
    assert check_fragment_size(1) == 320 * KIB
    with pytest.raises(OneDriveValidationError):
        check_fragment_size(60 * 1024 * KIB)
    with pytest.raises(OneDriveValidationError):
        check_fragment_size(0)


def test_timestamps_round_trip():
    parsed = parse_datetime("2024-01-02T03:04:05.1234567Z")
    assert parsed == datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert format_datetime(parsed) == "2024-01-02T03:04:05.123Z"
    assert parse_datetime("garbage") is None


def test_remote_item_to_dict_is_json():
    item = RemoteItem.from_graph(
        file_item("a.csv", b"abc", lastModifiedDateTime="2024-01-02T03:04:05Z", webUrl="https://x"), "r/a.csv"
    )
    data = json.loads(json.dumps(item.to_dict()))
    assert data["path"] == "r/a.csv" and data["size"] == 3 and data["modified"].startswith("2024-01-02T03:04:05")
    assert "raw" not in data and item.raw["name"] == "a.csv"


def test_state_store_is_private_and_atomic(tmp_path):
    store = UploadStateStore(tmp_path / "state")
    key = store.key("/src/a", "https://g/drives/x/a", drive_id="x", identity="t/u")
    state = SessionState("https://up/secret", 10, 327680, "/src/a", 5, "a", "fail", 1.0, None)
    store.save(key, state)
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "state" / f"{key}.json").st_mode) == 0o600
    assert store.load(key) == state
    assert not [p for p in os.listdir(tmp_path / "state") if p.endswith(".tmp")]
    assert "secret" not in repr(state)  # the uploadUrl is a credential: not in reprs
    store.forget(key)
    assert store.load(key) is None


def test_state_key_names_the_drive_and_the_account():
    args = ("/src/a", "https://g/me/drive/a")
    keys = {
        UploadStateStore.key(*args, drive_id="d1", identity="t/alice"),
        UploadStateStore.key(*args, drive_id="d2", identity="t/alice"),
        UploadStateStore.key(*args, drive_id="d1", identity="t/bob"),
    }
    assert len(keys) == 3


def test_simple_upload_sends_conflict_as_query_and_patches_mtime(client, requests_mock, tmp_path):
    src = tmp_path / "a b.txt"
    src.write_bytes(b"hello")
    os.utime(src, (1_700_000_000, 1_700_000_000))
    put = requests_mock.put(
        f"{G}/drives/d1/root:/dir/a%20b.txt:/content", status_code=201, json=file_item("a b.txt", b"hello")
    )
    patch = requests_mock.patch(f"{G}/drives/d1/items/i1", json=file_item("a b.txt", b"hello"))
    result = client.upload_file(src, "dir/a b.txt")
    assert put.last_request.qs == {"@microsoft.graph.conflictbehavior": ["fail"]}
    assert put.last_request.body == b"hello"
    assert patch.last_request.json() == {"fileSystemInfo": {"lastModifiedDateTime": "2023-11-14T22:13:20.000Z"}}
    assert (result.status, result.size, result.hash) == ("created", 5, quickxorhash(b"hello"))


def test_session_upload_aligned_fragments_without_authorization(client, requests_mock):
    data = os.urandom(700 * KIB)
    up = "https://upload.test/session/xyz?tempauth=secret"
    requests_mock.get(f"{G}/drives/d1/root:/big.bin", status_code=404, json={"error": {"code": "itemNotFound"}})
    create = requests_mock.post(
        f"{G}/drives/d1/root:/big.bin:/createUploadSession", json={"uploadUrl": up, "nextExpectedRanges": ["0-"]}
    )
    frag = requests_mock.put(
        up,
        [
            {"status_code": 202, "json": {"nextExpectedRanges": ["327680-"]}},
            {"status_code": 202, "json": {"nextExpectedRanges": ["655360-"]}},
            {"status_code": 201, "json": file_item("big.bin", data)},
        ],
    )
    result = client.upload_bytes(data, "big.bin")
    body = create.last_request.json()
    assert body["item"] == {"@microsoft.graph.conflictBehavior": "fail", "name": "big.bin", "fileSize": len(data)}
    ranges = [r.headers["Content-Range"] for r in frag.request_history]
    assert ranges == ["bytes 0-327679/716800", "bytes 327680-655359/716800", "bytes 655360-716799/716800"]
    assert all("Authorization" not in r.headers for r in frag.request_history)
    assert b"".join(r.body for r in frag.request_history) == data
    assert result.status == "created" and result.bytes_sent == len(data)


def test_download_hash_mismatch_leaves_nothing_behind(client, requests_mock, tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    requests_mock.get(f"{G}/drives/d1/root:/f.bin", json=file_item("f.bin", b"expected"))
    requests_mock.get(f"{G}/drives/d1/items/i1/content", status_code=302, headers={"Location": "https://dl.test/x"})
    dl = requests_mock.get("https://dl.test/x", content=b"tampered", headers={"Content-Length": "8"})
    with pytest.raises(OneDriveIntegrityError):
        client.download_file("f.bin", target)
    assert "Authorization" not in dl.last_request.headers
    assert target.read_bytes() == b"old"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]


def test_delete_root_refused_before_any_request(client, requests_mock):
    for target in ("", "/", "onedrive://", ["a", "/"]):
        with pytest.raises(OneDriveValidationError):
            client.delete(target)
    assert requests_mock.call_count == 0


def test_drive_locator_resolved_lazily_once(requests_mock, tmp_path):
    calls = []

    class Locator:
        def resolve(self, graph):
            calls.append(graph)
            return "drives/zz"

    graph = GraphClient(lambda: "tok", graph_url=G, pacer_key=str(tmp_path))
    client = OneDriveClient(graph, Locator(), state_dir=tmp_path)
    assert calls == []
    requests_mock.get(f"{G}/drives/zz/root:/a", json={"id": "1", "name": "a", "folder": {"childCount": 0}})
    assert client.info("a").is_folder and client.exists("a")
    assert len(calls) == 1
