"""Each auth type end to end through real MSAL against the emulator: caching, single-flight, 401 refresh,
refresh-token rotation across runs and processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from airflow_provider_onedrive.auth import build_token_provider, clear_credential_cache
from airflow_provider_onedrive.errors import OneDriveAuthError
from airflow_provider_onedrive.graph import GraphClient
from airflow_provider_onedrive.token_stores import (
    FileTokenStore,
    MemoryTokenStore,
    NullTokenStore,
    StoredToken,
    store_for_settings,
)
from tests.connection.helpers import settings_for, token_requests


def graph_for(settings, provider) -> GraphClient:
    return GraphClient(provider, graph_url=settings.graph_url, verify=settings.verify, timeout=settings.timeout)


def drive_name(settings, provider) -> str:
    with graph_for(settings, provider) as graph:
        return graph.get_json("me/drive" if settings.is_delegated else f"users/{settings.drive_value}/drive")["name"]


@pytest.mark.parametrize("kind", ["app", "app_cert", "delegated"])
def test_each_auth_type_reads_the_drive(emu, kind):
    settings = settings_for(emu, kind)
    seen: list[str] = []
    provider = build_token_provider(settings, store=MemoryTokenStore(), on_new_secret=seen.append)
    assert drive_name(settings, provider) == "OneDrive"
    assert (seen and seen[-1]) or seen[0]
    assert provider.get_token() in seen


def test_ca_bundle_honoured_despite_requests_ca_bundle(emu, monkeypatch, tmp_path):
    bogus = tmp_path / "empty-ca.pem"
    bogus.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bogus))
    settings = settings_for(emu, "app")
    assert build_token_provider(settings).get_token()


def test_token_cached_and_shared_between_providers(emu):
    settings = settings_for(emu, "app")
    first = build_token_provider(settings)
    token = first.get_token()
    assert first.get_token() == token
    assert build_token_provider(settings_for(emu, "app")).get_token() == token
    assert len(token_requests(emu)) == 1


def test_single_flight_eight_threads(emu):
    emu.faults.add("latency", kind="identity", path="/token", seconds=0.3)
    provider = build_token_provider(settings_for(emu, "app"))
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(provider.get_token())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == 1 and len(tokens) == 8
    assert len(token_requests(emu)) == 1


def test_expired_token_401_refreshes_once(emu):
    settings = settings_for(emu, "app")
    provider = build_token_provider(settings)
    with graph_for(settings, provider) as graph:
        graph.get_json(f"users/{settings.drive_value}/drive")
        emu.advance_time(2)  # expire_tokens() spares tokens issued within the last second
        emu.expire_tokens()
        threads = [
            threading.Thread(target=graph.get_json, args=(f"users/{settings.drive_value}/drive",)) for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(token_requests(emu)) == 2  # the first token, then exactly one forced refresh
    assert sum(1 for r in emu.requests if r.status == 401) >= 1


def test_wrong_secret_is_auth_error_with_aadsts(emu):
    conn = emu.connection("app")
    from airflow_provider_onedrive.config import ConnectionSettings

    settings = ConnectionSettings.from_connection_fields("bad", conn["login"], "not-the-secret", conn["extra"])
    with pytest.raises(OneDriveAuthError) as info:
        build_token_provider(settings).get_token()
    assert info.value.code == "invalid_client" and info.value.inner_code == "AADSTS7000215"
    assert "not-the-secret" not in str(info.value) and "Trace ID" not in str(info.value)


def test_rotation_across_runs_outlives_the_original_token(emu):
    emu.settings.refresh_token_lifetime = 60
    store = MemoryTokenStore()
    settings = settings_for(emu, "delegated")
    original = settings.refresh_token
    for _run in range(4):  # each run is a fresh process: no in-memory state, only the store
        clear_credential_cache()
        provider = build_token_provider(settings, store=store)
        assert drive_name(settings, provider) == "OneDrive"
        emu.advance_time(40)  # the original token (and each one older than 60 s) expires
    assert StoredToken.decode(store.load()).token != original
    clear_credential_cache()
    with pytest.raises(OneDriveAuthError) as info:
        build_token_provider(settings, store=NullTokenStore()).get_token()  # the original alone no longer works
    assert info.value.code == "invalid_grant"


def test_revoked_refresh_token_says_sign_in_again(emu):
    settings = settings_for(emu, "delegated")
    emu.revoke_refresh_tokens()
    with pytest.raises(OneDriveAuthError, match="sign in again"):
        build_token_provider(settings, store=MemoryTokenStore()).get_token()


WORKER = """
import json, sys
from airflow_provider_onedrive.auth import build_token_provider
from airflow_provider_onedrive.config import ConnectionSettings
from airflow_provider_onedrive.graph import GraphClient
from airflow_provider_onedrive.token_stores import store_for_settings
conn = json.loads(sys.argv[1])
s = ConnectionSettings.from_connection_fields("od", conn.get("login"), conn.get("password"), conn["extra"])
store = store_for_settings(s)
if len(sys.argv) > 2:  # no lock, as Airflow Variables offer none
    inner = store
    store = type("Unlocked", (), {"load": lambda self: inner.load(), "save": lambda self, v: inner.save(v)})()
provider = build_token_provider(s, store=store)
with GraphClient(provider, graph_url=s.graph_url, verify=s.verify) as graph:
    print(graph.get_json("me/drive")["name"])
"""


def run_workers(conn: dict, count: int, *, unlocked: bool = False) -> list[subprocess.CompletedProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(conn), *(["unlocked"] if unlocked else [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(count)
    ]
    return [subprocess.CompletedProcess(p.args, p.wait(60), *p.communicate()) for p in procs]


def test_concurrent_processes_share_a_locked_file_store(emu, tmp_path: Path):
    """Refresh tokens are single-use here (no reuse grace): without the lock, racing workers would fail."""
    emu.settings.refresh_token_reuse = "single_use"  # opt-in strict rotation; Microsoft lets old tokens live on
    conn = emu.connection("delegated")
    conn["extra"]["token_store"] = f"file:{tmp_path}/rt.json"
    for batch in (3, 3):
        results = run_workers(conn, batch)
        assert [r.returncode for r in results] == [0] * batch, [r.stderr.decode()[-500:] for r in results]
        assert all(r.stdout.decode().strip() == "OneDrive" for r in results)
    # the first process redeemed the token and saved both tokens; the five after it used the saved access token
    assert len(token_requests(emu)) == 1
    assert conn["extra"]["refresh_token"].encode() not in (tmp_path / "rt.json").read_bytes()
    assert FileTokenStore(tmp_path / "rt.json").load() is None  # encrypted: unreadable without the connection


def test_concurrent_processes_without_a_lock_wait_for_the_winner(emu, tmp_path: Path):
    """Six processes redeem the same single-use token at once through a store without a lock (as Variables
    are): one wins, the five refused wait for what it saves and use it; none fails, none writes an older token."""
    emu.settings.refresh_token_reuse = "single_use"
    conn = emu.connection("delegated")
    conn["extra"]["token_store"] = f"file:{tmp_path}/rt.json"
    results = run_workers(conn, 6, unlocked=True)
    assert [r.returncode for r in results] == [0] * 6, [r.stderr.decode()[-800:] for r in results]
    # each success issued one token; the refused (if the processes met) issued none
    issued = [r for r in token_requests(emu) if r.status == 200]
    assert len(emu.refresh_tokens_issued()) == 1 + len(issued)  # the connection's own, then one per success
    settings = settings_for(emu, "delegated", token_store=f"file:{tmp_path}/rt.json")
    stored = StoredToken.decode(store_for_settings(settings).load())
    assert stored is not None and stored.token == emu.refresh_tokens_issued()[-1]
