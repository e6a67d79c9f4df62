"""Refresh-token stores: records, the 0600 encrypted file store and its cross-process lock."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time

from airflow_provider_onedrive.config import ConnectionSettings
from airflow_provider_onedrive.token_stores import (
    FileTokenStore,
    MemoryTokenStore,
    NullTokenStore,
    StoredToken,
    store_for_settings,
)


def test_stored_token_round_trip_and_bare_tokens():
    record = StoredToken("rt-9", origin="abc", saved_at=12.5)
    assert StoredToken.decode(record.encode()) == record
    assert StoredToken.decode("  rt-raw\n") == StoredToken("rt-raw", origin=None, saved_at=0.0)
    assert StoredToken.decode(None) is None and StoredToken.decode("") is None


def test_null_and_memory_stores():
    null = NullTokenStore()
    null.save("x")
    assert null.load() is None
    memory = MemoryTokenStore()
    memory.save("y")
    assert memory.load() == "y"


def test_file_store_is_private_encrypted_and_atomic(tmp_path):
    path = tmp_path / "state" / "token.json"
    store = FileTokenStore(path, key_material=b"client\0secret")
    assert store.load() is None
    store.save("rt-secret-value")
    assert store.load() == "rt-secret-value"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert b"rt-secret-value" not in path.read_bytes()
    store.save("rt-newer")
    assert store.load() == "rt-newer"
    assert sorted(p.name for p in path.parent.iterdir()) == ["token.json", "token.json.lock"]  # no temp files left
    # Another key (the connection's secret changed) cannot read it: it reads as empty.
    assert FileTokenStore(path, key_material=b"other").load() is None
    assert FileTokenStore(path).load() is None


def test_file_store_without_key_is_plain_but_private(tmp_path):
    store = FileTokenStore(tmp_path / "t.json")
    store.save("rt-plain")
    assert b"rt-plain" in (tmp_path / "t.json").read_bytes()
    assert stat.S_IMODE(os.stat(tmp_path / "t.json").st_mode) == 0o600


def test_truncated_or_undecryptable_file_reads_as_empty_with_a_warning(tmp_path, caplog):
    import logging

    path = tmp_path / "t.json"
    FileTokenStore(path, key_material=b"k").save("rt-1")
    caplog.set_level(logging.WARNING, logger="airflow_provider_onedrive.token_stores")
    assert FileTokenStore(path, key_material=b"other").load() is None  # another connection's key
    path.write_bytes(path.read_bytes()[:20])  # truncated mid-write by a crash or a full disk
    assert FileTokenStore(path, key_material=b"k").load() is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert all(str(path) in w and "falls back" in w and "Delete the file" in w for w in warnings)
    assert "decrypted" in warnings[0] and "truncated" in warnings[1]
    assert "rt-1" not in " ".join(warnings)


def _increment(path: str, rounds: int) -> None:
    store = FileTokenStore(path, key_material=b"k")
    for _ in range(rounds):
        with store.lock():
            value = int(store.load() or "0")
            time.sleep(0.001)
            store.save(str(value + 1))


def test_file_store_lock_serialises_processes(tmp_path):
    path = str(tmp_path / "counter.json")
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_increment, args=(path, 20)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert FileTokenStore(path, key_material=b"k").load() == "80"  # no lost update


def test_store_for_settings(tmp_path):
    def make(store):
        return ConnectionSettings.from_connection_fields(
            "od", "cid", "pw", {"tenant_id": "common", "refresh_token": "rt", "token_store": store}
        )

    assert isinstance(store_for_settings(make("none")), NullTokenStore)
    assert isinstance(store_for_settings(make("memory")), MemoryTokenStore)
    file_store = store_for_settings(make(f"file:{tmp_path}/x.json"))
    assert isinstance(file_store, FileTokenStore) and file_store.path == f"{tmp_path}/x.json"
    file_store.save("rt-1")
    assert b"rt-1" not in (tmp_path / "x.json").read_bytes()
