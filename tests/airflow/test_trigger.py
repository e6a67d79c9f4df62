"""OneDriveFileTrigger run directly on an event loop against the emulator.

The loop-lag assertions are behavioural: with every emulator request delayed far longer than the allowed lag,
a blocking call anywhere in the trigger (HTTP, MSAL, TLS set-up) would stall the ticker for that long. The
garbage collector is paused while measuring: a full collection of this test process (everything the suite has
built) can stall any loop for hundreds of milliseconds, and that is not the trigger's doing.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import pytest

from airflow_provider_onedrive.triggers.onedrive import OneDriveFileTrigger

pytestmark = pytest.mark.airflow

LATENCY = 0.5
MAX_LAG = LATENCY / 2  # a blocking call would stall the loop for at least LATENCY


class LagMeter:
    """A ticker task: how late does a 5 ms sleep wake up while the trigger runs?"""

    def __init__(self) -> None:
        self.max_lag = 0.0
        self.ticks = 0

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            self.max_lag = max(self.max_lag, time.perf_counter() - before - 0.005)
            self.ticks += 1


async def first_event(trigger: OneDriveFileTrigger, timeout: float = 30) -> dict[str, Any]:
    async def consume() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return await asyncio.wait_for(consume(), timeout)


async def measured(trigger: OneDriveFileTrigger, timeout: float = 30) -> tuple[dict[str, Any], LagMeter, float]:
    meter = LagMeter()
    ticker = asyncio.ensure_future(meter.run())
    started = time.perf_counter()
    gc.disable()
    try:
        payload = await first_event(trigger, timeout)
    finally:
        gc.enable()
        ticker.cancel()
    return payload, meter, time.perf_counter() - started


def test_serialize_is_pinned_and_round_trips():
    trigger = OneDriveFileTrigger(
        path="incoming/*.csv",
        onedrive_conn_id="finance_drive",
        min_size=1,
        modified_after="2024-03-15T00:00:00+00:00",
        stable_for=30.0,
        case_sensitive=True,
        poke_interval=60.0,
    )
    classpath, kwargs = trigger.serialize()
    assert (classpath, kwargs) == (
        "airflow_provider_onedrive.triggers.onedrive.OneDriveFileTrigger",
        {
            "path": "incoming/*.csv",
            "onedrive_conn_id": "finance_drive",
            "min_size": 1,
            "modified_after": "2024-03-15T00:00:00+00:00",
            "stable_for": 30.0,
            "case_sensitive": True,
            "poke_interval": 60.0,
        },
    )
    from airflow.sdk.module_loading import import_string

    assert import_string(classpath)(**kwargs).serialize() == (classpath, kwargs)


def test_fires_with_the_matches(drive):
    drive.put_file("incoming/a.csv", b"a,b\n")
    drive.put_file("incoming/skip.txt", b"x")
    payload = asyncio.run(first_event(OneDriveFileTrigger(path="incoming/*.csv", poke_interval=0.1)))
    assert payload["status"] == "success"
    [match] = payload["matches"]
    assert (match["path"], match["size"], match["is_folder"]) == ("incoming/a.csv", 4, False)
    assert match["quick_xor_hash"] == drive.item("incoming/a.csv").blob.hashes["quickXorHash"]


def test_waits_for_a_missing_folder_then_fires(drive):
    async def scenario() -> dict[str, Any]:
        trigger = OneDriveFileTrigger(path="later/**/*.parquet", poke_interval=0.2)
        waiting = asyncio.ensure_future(first_event(trigger))
        await asyncio.sleep(1.0)
        assert not waiting.done()  # a missing folder is "not yet", not an error
        await asyncio.to_thread(drive.put_file, "later/2024/03/data.parquet", b"PAR1")
        return await waiting

    payload = asyncio.run(scenario())
    assert [m["path"] for m in payload["matches"]] == ["later/2024/03/data.parquet"]


def test_the_event_loop_never_blocks_even_with_slow_graph_and_identity(drive):
    """Token acquisition, TLS set-up and every Graph call take >= LATENCY; the loop stays responsive."""
    from airflow_provider_onedrive.auth import clear_credential_cache

    clear_credential_cache()  # so this trigger's token really comes from the (slow) identity endpoint
    drive.faults.latency = LATENCY

    async def scenario():
        trigger = OneDriveFileTrigger(path="slow/*.csv", poke_interval=0.1)
        task = asyncio.ensure_future(measured(trigger))
        await asyncio.sleep(LATENCY * 3)
        await asyncio.to_thread(drive.put_file, "slow/a.csv", b"1")
        return await task

    payload, meter, elapsed = asyncio.run(scenario())
    assert payload["status"] == "success"
    assert any(r.kind == "identity" for r in drive.requests)
    assert elapsed > LATENCY * 3
    assert meter.ticks > 50
    assert meter.max_lag < MAX_LAG, f"event loop blocked for {meter.max_lag:.3f} s"
    print(f"max loop lag {meter.max_lag * 1000:.1f} ms over {elapsed:.1f} s with {LATENCY} s latency per request")


def test_honours_retry_after_without_blocking(drive):
    drive.put_file("inbox/a.csv", b"a")
    rule = drive.faults.add("status", status=429, retry_after=1, kind="graph", nth=1)
    payload, meter, elapsed = asyncio.run(measured(OneDriveFileTrigger(path="inbox/*.csv", poke_interval=0.1)))
    assert payload["status"] == "success" and rule.fired == 1
    assert elapsed >= 1.0
    assert [r.status for r in drive.requests if r.kind == "graph"] == [429, 200]
    assert meter.max_lag < MAX_LAG


def test_follows_next_link_across_pages(drive):
    for i in range(1005):
        drive.put_file(f"many/{i:04d}.txt", b"x")
    payload = asyncio.run(first_event(OneDriveFileTrigger(path="many/*.txt", poke_interval=0.1)))
    assert len(payload["matches"]) == 1005
    pages = [r for r in drive.requests if r.kind == "graph" and "children" in r.path]
    assert len(pages) == 2


def test_refreshes_an_expired_token_once(drive):
    drive.put_file("inbox/a.csv", b"a")

    async def scenario() -> dict[str, Any]:
        await first_event(OneDriveFileTrigger(path="inbox/*.csv"))  # caches a token for this loop
        drive.expire_tokens()
        drive.clear_requests()
        return await first_event(OneDriveFileTrigger(path="inbox/*.csv"))

    payload = asyncio.run(scenario())
    assert payload["status"] == "success"
    kinds = [(r.kind, r.status) for r in drive.requests]
    assert kinds[0] == ("graph", 401)
    assert ("identity", 200) in kinds and kinds[-1] == ("graph", 200)


def test_a_permanent_error_fires_an_error_event_without_secrets(drive):
    drive.faults.add("status", status=403, code="accessDenied", kind="graph")
    payload = asyncio.run(first_event(OneDriveFileTrigger(path="inbox/*.csv", poke_interval=0.1)))
    assert payload["status"] == "error"
    assert "HTTP 403" in payload["message"] and "accessDenied" in payload["message"]
    assert drive.client_secret not in payload["message"]
    assert "Bearer" not in payload["message"]


def test_a_bad_connection_fires_an_error_event(drive, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN", '{"conn_type": "onedrive", "login": "app"}')
    payload = asyncio.run(first_event(OneDriveFileTrigger(path="x/*.csv", onedrive_conn_id="broken")))
    assert payload["status"] == "error"
    assert "connection 'broken'" in payload["message"]
