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


def test_triggers_watching_one_folder_share_its_listing(drive):
    """Twenty sensors on one inbox cost Graph one listing per poll, not twenty."""
    drive.put_file("shared/a.csv", b"a")
    drive.clear_requests()

    async def scenario() -> list[dict[str, Any]]:
        triggers = [OneDriveFileTrigger(path="shared/*.csv", poke_interval=10) for _ in range(20)]
        return await asyncio.gather(*(first_event(t) for t in triggers))

    payloads = asyncio.run(scenario())
    assert [p["status"] for p in payloads] == ["success"] * 20
    assert {p["matches"][0]["path"] for p in payloads} == {"shared/a.csv"}
    listings = [r for r in drive.requests if r.kind == "graph" and "children" in r.path]
    assert len(listings) == 1  # first polls are spread over 2 s; a listing is shared for up to 5 s here


def test_a_shared_listing_is_never_older_than_half_the_poke_interval(drive):
    """A trigger polling every 0.4 s must not reuse a listing another trigger (polling every 10 s) made
    before the file arrived: it would then wait for that trigger's next poll, 10 s later."""

    async def scenario() -> dict[str, Any]:
        slow = asyncio.ensure_future(first_event(OneDriveFileTrigger(path="fresh/*.csv", poke_interval=10)))
        while not any("children" in r.path for r in drive.requests):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # its empty listing is now kept for sharing (for up to 5 s)
        await asyncio.to_thread(drive.put_file, "fresh/a.csv", b"a")
        fast = await first_event(OneDriveFileTrigger(path="fresh/*.csv", poke_interval=0.4), timeout=4)
        slow.cancel()
        return fast

    payload = asyncio.run(scenario())
    assert [m["path"] for m in payload["matches"]] == ["fresh/a.csv"]


def test_a_cancelled_trigger_does_not_cancel_the_listing_others_wait_for(drive):
    drive.put_file("cancel/a.csv", b"a")
    drive.faults.latency = 0.5

    async def scenario() -> dict[str, Any]:
        first = asyncio.ensure_future(first_event(OneDriveFileTrigger(path="cancel/*.csv", poke_interval=0.05)))
        second = asyncio.ensure_future(first_event(OneDriveFileTrigger(path="cancel/*.csv", poke_interval=0.05)))
        while not _session_of_this_loop() or not _session_of_this_loop()._pending:
            await asyncio.sleep(0.01)  # the shared listing is in flight (0.5 s of latency)
        first.cancel()  # the triggerer cancels a trigger (its task timed out or was cleared)
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    payload = asyncio.run(scenario())
    assert payload["status"] == "success"
    assert [m["path"] for m in payload["matches"]] == ["cancel/a.csv"]


def _session_of_this_loop() -> Any:
    """The connection's shared trigger state on the running loop, once set up."""
    from airflow_provider_onedrive.triggers.async_graph import sessions as _sessions

    task = _sessions._by_loop.get(asyncio.get_running_loop(), {}).get("onedrive_default")
    return task.result() if task is not None and task.done() else None


def test_many_triggers_share_a_few_pooled_clients_closed_by_the_last_one(drive):
    from airflow_provider_onedrive.triggers import async_graph as module

    drive.faults.latency = 0.2
    for i in range(60):
        drive.put_file(f"pool/{i:02d}/x.csv", b"x")
    sessions = []

    async def scenario() -> list[dict[str, Any]]:
        triggers = [OneDriveFileTrigger(path=f"pool/{i:02d}/x.csv", poke_interval=0.1) for i in range(60)]
        events = asyncio.gather(*(first_event(t) for t in triggers))
        while not sessions:
            session = _session_of_this_loop()
            if session is not None and session._clients:
                sessions.append(session)
            await asyncio.sleep(0.01)
        peak = 0
        while not events.done():
            peak = max(peak, len(sessions[0]._clients))
            await asyncio.sleep(0.01)
        assert 1 < peak <= module._CLIENTS
        return await events

    payloads = asyncio.run(scenario())
    assert all(p["status"] == "success" for p in payloads)
    assert sessions[0]._clients == []  # the last trigger to finish closed the pooled connections


FREEZE_PROBE = """
import asyncio, gc, json
from airflow_provider_onedrive.triggers.onedrive import OneDriveFileTrigger

async def main():
    before = gc.get_freeze_count()
    async for event in OneDriveFileTrigger(path="frozen/a.csv", poke_interval=0.1).run():
        return before, event.payload["status"]

before, status = asyncio.run(main())
print(json.dumps({"before": before, "after": gc.get_freeze_count(), "status": status}))
"""


@pytest.mark.parametrize("enabled", [False, True])
def test_triggerer_gc_freeze_is_opt_in_and_freezes_the_heap_once(drive, enabled):
    import json
    import os
    import subprocess
    import sys

    drive.put_file("frozen/a.csv", b"a")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__ONEDRIVE__")}
    if enabled:
        env["AIRFLOW__ONEDRIVE__TRIGGERER_GC_FREEZE"] = "True"
    out = subprocess.run([sys.executable, "-c", FREEZE_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "success" and result["before"] == 0
    if enabled:
        assert result["after"] > 50_000  # Airflow's import-time heap
        assert "objects frozen out of garbage collection" in out.stdout + out.stderr
    else:
        assert result["after"] == 0


def test_the_last_cancelled_trigger_leaves_no_open_connection_behind(drive):
    """Cancelled while its listing still waits for a token: the listing runs on, opens a pooled connection
    after the trigger left, and closes it when done."""
    from airflow_provider_onedrive.auth import clear_credential_cache

    clear_credential_cache()  # the shared listing must fetch a token (0.5 s of latency) before it connects
    drive.put_file("alone/a.csv", b"a")
    drive.faults.latency = 0.5

    async def scenario() -> Any:
        task = asyncio.ensure_future(first_event(OneDriveFileTrigger(path="alone/*.csv", poke_interval=0.05)))
        while not _session_of_this_loop() or not _session_of_this_loop()._pending:
            await asyncio.sleep(0.01)
        session = _session_of_this_loop()
        assert session._clients == []  # still acquiring the token
        [listing] = session._pending.values()
        task.cancel()
        while session._pending:
            await asyncio.sleep(0.01)
        return session, listing

    session, listing = asyncio.run(scenario())
    assert [item["name"] for item in listing.result()["value"]] == ["a.csv"]
    assert session._clients == [] and session._users == 0


def test_sensors_on_one_missing_file_share_its_404(drive):
    async def scenario() -> None:
        triggers = [OneDriveFileTrigger(path="missing/x.csv", poke_interval=10) for _ in range(10)]
        waiting = [asyncio.ensure_future(first_event(t)) for t in triggers]
        await asyncio.sleep(3)  # every first poll (spread over 2 s) has happened; the next is 10 s away
        assert not any(w.done() for w in waiting)
        for w in waiting:
            w.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    drive.clear_requests()
    asyncio.run(scenario())
    assert len([r for r in drive.requests if r.kind == "graph" and "missing/x.csv" in r.path]) == 1


def test_shared_answers_are_bounded_by_age_and_item_count(monkeypatch):
    from airflow_provider_onedrive.triggers import async_graph as module

    monkeypatch.setattr(module, "_MAX_SHARED_ITEMS", 2500)
    recent = module._RecentAnswers()
    page = {"value": [{"id": str(i)} for i in range(999)]}  # 1,000 items counting the page itself
    recent.put("a", 100.0, page)
    recent.put("b", 101.0, page)
    recent.put("missing", 101.5, None)  # a 404 is an answer too
    assert recent.get("missing", 100.0) is None and recent.get("a", 100.0) is page and recent.items == 2001
    recent.put("c", 102.0, page)  # 3,001 items: the oldest answer goes
    assert recent.get("a", 0.0) is module._MISS and recent.items == 2001
    assert recent.get("b", 101.5) is module._MISS  # started before the asking trigger accepts
    recent.put("d", 101.0 + module.MAX_SHARED_AGE + 1, {"value": []})  # "b" and "missing" are now too old
    assert [recent.get(k, 0.0) is module._MISS for k in ("b", "missing", "c", "d")] == [True, True, False, False]
    assert recent.items == 1001
