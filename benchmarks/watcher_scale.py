"""Scale benchmark: many OneDriveChangeTrigger watchers of ONE drive, run as the triggerer runs them.

The watchers (each on its own folder, ``bench/wNNN/*.csv``) go through Airflow's own ``SharedStreamManager``,
the triggerer's shared-stream machinery, on one event loop. The Graph emulator runs in a child process with
latency injected into every request; halfway through, it puts one file in every watcher's folder (directly in
its store, so no request of ours is counted for it). At the end the child reports its request log: how many
delta requests the watchers cost. A ticker task measures the event loop's lag meanwhile.

The feed runs in ack mode, as in the triggerer: every event is bound to its round as it leaves the trigger, and a
sync task confirms the events stored once per ``--sync-interval`` (the triggerer's loop confirms them about once
a second), which is what lets the watchers' positions move on.

    python benchmarks/watcher_scale.py                              # 200 watchers, shared feed, 1 s polls
    python benchmarks/watcher_scale.py --mode standalone            # each watcher polls on its own (run())
    python benchmarks/watcher_scale.py --watchers 1000 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from airflow_provider_onedrive.testing.assets import MemoryAssetStateStore

EMULATOR = """
import json, sys
from airflow_provider_onedrive.testing import GraphEmulator

with GraphEmulator(latency=float(sys.argv[1])) as emu:
    print(json.dumps(emu.connection("app")), flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "seed":
            for path in json.loads(argument):
                emu.put_file(path, b"id,amount\\n1,2\\n")
            print("seeded", flush=True)
        elif command == "report":
            log = emu.requests
            delta = [r for r in log if r.path.split("?")[0].endswith("/delta")]
            graph = [r for r in log if r.kind == "graph"]
            print(json.dumps({
                "delta_requests": len(delta),
                "delta_token_latest": sum(1 for r in delta if "token=latest" in r.path),
                "graph_requests": len(graph),
                "graph_requests_other_than_delta": len(graph) - len(delta),
                "identity_requests": sum(1 for r in log if r.kind == "identity"),
            }), flush=True)
            break
"""


class LagMeter:
    """How late a 5 ms sleep wakes up: a blocking call anywhere on the loop shows up here."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.lags: list[float] = []

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags.append(time.perf_counter() - before - self.interval)


async def bench(
    watchers: int, interval: float, seconds: float, mode: str, sync: float, child: subprocess.Popen[str]
) -> dict[str, Any]:
    from airflow.triggers.shared_stream import SharedStreamManager

    from airflow_provider_onedrive.triggers.onedrive import OneDriveChangeTrigger

    manager = SharedStreamManager()
    triggers = [OneDriveChangeTrigger(path=f"bench/w{i:03d}/*.csv", poll_interval=interval) for i in range(watchers)]
    stores = [MemoryAssetStateStore() for _ in triggers]
    fired: list[list[float]] = [[] for _ in triggers]
    rounds = [0 for _ in triggers]
    unconfirmed: list[int] = []
    for trigger, store in zip(triggers, stores, strict=True):
        trigger.asset_state_store = store

    async def counted(index: int, stream: Any) -> Any:
        async for item in stream:
            rounds[index] += 1
            yield item

    async def watch(index: int) -> None:
        trigger = triggers[index]
        key = trigger.shared_stream_key()
        if mode == "shared":
            stream = manager.subscribe(trigger_id=index, trigger=trigger, key=key)
            events = trigger.filter_shared_stream(counted(index, stream))
        else:
            events = trigger.run()
        async for _ in events:
            fired[index].append(time.perf_counter())
            if mode == "shared":  # what the triggerer does with each event: tie it to its round
                seq = manager.bind_pending_event(trigger_id=index, key=key)
                if seq is not None:
                    unconfirmed.append(seq)

    async def supervisor() -> None:
        while True:  # the events "stored" since the last sync, confirmed in one go
            await asyncio.sleep(sync)
            seqs = unconfirmed[:]
            del unconfirmed[:]
            manager.confirm_persisted(seqs)

    meter = LagMeter()
    ticker = asyncio.ensure_future(meter.run())
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(watch(i)) for i in range(watchers)]
    syncing = asyncio.ensure_future(supervisor())
    while not all(s.writes for s in stores) and time.perf_counter() - started < seconds:
        await asyncio.sleep(0.05)
    ready_at = time.perf_counter() - started
    await asyncio.sleep(max(0.0, seconds / 2 - ready_at))
    seeded_at = time.perf_counter() - started
    before = [position(s) for s in stores]
    paths = [f"bench/w{i:03d}/arrived.csv" for i in range(watchers)]
    await asyncio.to_thread(_ask, child, f"seed {json.dumps(paths)}")
    await asyncio.sleep(max(0.0, seconds - (time.perf_counter() - started)))
    for task in [*tasks, syncing]:
        task.cancel()
    await asyncio.gather(*tasks, syncing, return_exceptions=True)
    if mode == "shared":
        for index, trigger in enumerate(triggers):
            await manager.unsubscribe(index, trigger.shared_stream_key())
    elapsed = time.perf_counter() - started
    ticker.cancel()
    lags = sorted(meter.lags)
    latencies = [f[0] - started - seeded_at for f in fired if f]
    return {
        "mode": mode,
        "watchers": watchers,
        "poll_interval_s": interval,
        "elapsed_s": round(elapsed, 2),
        "all_started_at_s": round(ready_at, 2),
        "files_at_s": round(seeded_at, 2),
        "fired": sum(len(f) for f in fired),
        "watchers_fired_once": sum(1 for f in fired if len(f) == 1),
        "event_latency_max_s": round(max(latencies), 2) if latencies else None,
        "rounds_seen_max": max(rounds) if mode == "shared" else max(s.writes for s in stores),
        "positions_saved_max": max(s.writes for s in stores),
        "positions_past_the_files": sum(1 for s, b in zip(stores, before, strict=True) if position(s) != b),
        "lag_max_ms": round(lags[-1] * 1000, 1),
        "lag_p99_ms": round(lags[int(len(lags) * 0.99)] * 1000, 1),
        "lag_median_ms": round(statistics.median(lags) * 1000, 2),
        "ticks": len(lags),
        "gc_tracked_objects": len(gc.get_objects()),
    }


def position(store: MemoryAssetStateStore) -> str | None:
    """The watcher's stored deltaLink (the emulator's names the drive's change sequence: new files, new link)."""
    value = store.values.get("onedrive_change_trigger")
    return value["delta_link"] if value else None


def _ask(child: subprocess.Popen[str], line: str) -> str:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(line + "\n")
    child.stdin.flush()
    return child.stdout.readline()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the watchers run")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every emulator request")
    parser.add_argument("--mode", choices=["shared", "standalone"], default="shared")
    parser.add_argument(
        "--sync-interval", type=float, default=1.0, help="seconds between two confirmations of stored events"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="watcher-scale-") as tmp:
        os.environ["AIRFLOW_HOME"] = tmp
        child = subprocess.Popen(
            [sys.executable, "-c", EMULATOR, str(args.latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            os.environ["AIRFLOW_CONN_ONEDRIVE_DEFAULT"] = child.stdout.readline().strip()
            import airflow.jobs.triggerer_job_runner  # noqa: F401  (a triggerer's heap)

            result = asyncio.run(
                bench(args.watchers, args.poll_interval, args.seconds, args.mode, args.sync_interval, child)
            )
            log = json.loads(_ask(child, "report"))
        finally:
            child.kill()
            child.wait(10)
    intervals = result["elapsed_s"] / args.poll_interval
    result.update(log)
    result.update(
        latency_s=args.latency,
        intervals=round(intervals, 1),
        delta_requests_per_interval=round(log["delta_requests"] / intervals, 2),
        python=sys.version.split()[0],
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
