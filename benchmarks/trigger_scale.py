"""Scale benchmark: many OneDriveFileTrigger instances on ONE event loop, as a triggerer runs them.

The Graph emulator runs in its own process with latency injected into every request. Half the triggers wait
for an exact path, half for a glob; the files they wait for are created by another process a few seconds in,
so every trigger polls several times before it fires. A ticker task measures how late the event loop wakes
up (loop lag): a blocking call anywhere in the triggers shows up there.

    python benchmarks/trigger_scale.py                          # 1,000 triggers, 200 ms latency
    python benchmarks/trigger_scale.py --triggers 200 --latency 0.5
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
from pathlib import Path
from typing import Any

SEEDER = """
import json, sys, time
from airflow_provider_onedrive.auth import build_token_provider
from airflow_provider_onedrive.config import ConnectionSettings
from airflow_provider_onedrive.drive import OneDriveClient
from airflow_provider_onedrive.graph import GraphClient
from concurrent.futures import ThreadPoolExecutor

conn = json.loads(sys.argv[1])
paths = json.loads(sys.argv[2])
time.sleep(float(sys.argv[3]))
settings = ConnectionSettings.from_connection_fields("seed", conn["login"], conn["password"], conn["extra"])
graph = GraphClient(build_token_provider(settings), graph_url=settings.graph_url, verify=settings.verify)
client = OneDriveClient(graph, "users/" + conn["extra"]["user_id"] + "/drive")
with ThreadPoolExecutor(16) as pool:
    list(pool.map(lambda p: client.upload_bytes(b"id,amount\\n1,2\\n", p, conflict="replace"), paths))
print(time.time(), flush=True)
"""


def start_emulator(latency: float, workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    info_file = workdir / "emulator.json"
    command = [
        str(Path(sys.executable).with_name("airflow-onedrive")),
        "emulator",
        "--info-file",
        str(info_file),
        "--set",
        f"latency={latency}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not info_file.exists() or not info_file.read_text().strip():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("the emulator did not start")
        time.sleep(0.1)
    time.sleep(0.2)
    return process, json.loads(info_file.read_text())


class GcMeter:
    """When the interpreter's full (generation 2) collections ran during the run, and for how long."""

    def __init__(self) -> None:
        self.full: list[tuple[float, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.full.append((self._started, time.perf_counter()))

    def durations(self) -> list[float]:
        return [end - start for start, end in self.full]

    def overlaps(self, start: float, end: float) -> bool:
        return any(gc_start < end and start < gc_end for gc_start, gc_end in self.full)


def full_collection_floor() -> float:
    """How long one full collection of this process takes before any trigger exists (median of 3)."""
    durations = []
    for _ in range(3):
        started = time.perf_counter()
        gc.collect()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


class LagMeter:
    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self.at: list[float] = []

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags.append(time.perf_counter() - before - self.interval)
            self.at.append(before)

    def outside(self, collections: GcMeter) -> list[float]:
        """Lags of the ticks during which no full collection ran: what the triggers themselves cost."""
        return [
            lag
            for at, lag in zip(self.at, self.lags, strict=True)
            if not collections.overlaps(at, at + self.interval + lag)
        ]

    def worst_per_second(self, started: float) -> list[float]:
        """The worst lag (ms) in each second of the run: where the stalls happen."""
        worst: dict[int, float] = {}
        for at, lag in zip(self.at, self.lags, strict=True):
            second = int(at - started)
            worst[second] = max(worst.get(second, 0.0), lag)
        return [round(worst.get(i, 0.0) * 1000) for i in range(max(worst) + 1)] if worst else []


async def bench(count: int, poke_interval: float, connection: dict[str, Any], seed_after: float) -> dict[str, Any]:
    """Start the seeder (a process spawn blocks the loop briefly, so before measuring), then run and measure."""
    from airflow_provider_onedrive.triggers.onedrive import OneDriveFileTrigger

    folders = 50
    triggers, targets = [], []
    for i in range(count):
        if i % 2:
            path = f"bench/exact/f{i:05d}.csv"
            triggers.append(OneDriveFileTrigger(path=path, poke_interval=poke_interval))
            targets.append(path)
        else:
            folder = f"bench/glob/g{i % folders:02d}"
            triggers.append(OneDriveFileTrigger(path=f"{folder}/*.csv", poke_interval=poke_interval))
            targets.append(f"{folder}/arrived.csv")
    seeder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SEEDER,
        json.dumps(connection),
        json.dumps(sorted(set(targets))),
        str(seed_after),
        stdout=asyncio.subprocess.PIPE,
    )
    fired: list[float] = []
    errors: list[str] = []

    async def watch(trigger: OneDriveFileTrigger) -> None:
        async for event in trigger.run():
            if event.payload["status"] != "success":
                errors.append(event.payload["message"])
            fired.append(time.perf_counter())
            return

    meter, collections = LagMeter(), GcMeter()
    gc.callbacks.append(collections)
    ticker = asyncio.ensure_future(meter.run())
    started, started_wall = time.perf_counter(), time.time()
    await asyncio.gather(*(watch(t) for t in triggers))
    finished = time.perf_counter()
    ticker.cancel()
    gc.callbacks.remove(collections)
    files_at = float((await seeder.communicate())[0].decode().split()[-1]) - started_wall
    lags = sorted(meter.lags)
    outside = sorted(meter.outside(collections))
    full = collections.durations()
    return {
        "triggers": count,
        "fired": len(fired),
        "errors": errors[:3],
        "error_count": len(errors),
        "wall_s": round(finished - started, 2),
        "all_files_present_at_s": round(files_at, 2),
        "last_fired_at_s": round(max(fired) - started, 2),
        "lag_max_ms": round(lags[-1] * 1000, 1),
        "lag_p99_ms": round(lags[int(len(lags) * 0.99)] * 1000, 1),
        "lag_median_ms": round(statistics.median(lags) * 1000, 2),
        "ticks": len(lags),
        "lag_max_outside_full_gc_ms": round(outside[-1] * 1000, 1),
        "lag_p99_outside_full_gc_ms": round(outside[int(len(outside) * 0.99)] * 1000, 1),
        "gc_full_collections": len(full),
        "gc_full_max_ms": round(max(full, default=0.0) * 1000, 1),
        "gc_tracked_objects": len(gc.get_objects()),
        "worst_lag_ms_each_second": meter.worst_per_second(started),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds added to every emulator request")
    parser.add_argument("--poke-interval", type=float, default=2.0)
    parser.add_argument("--seed-after", type=float, default=6.0, help="seconds before the files appear")
    parser.add_argument(
        "--gc-freeze",
        choices=["none", "local-settings", "provider"],
        default="none",
        help="none: as Airflow's triggerer runs by default; local-settings: gc.freeze() in airflow_local_settings.py "
        "(Airflow runs it while `import airflow` initialises); provider: [onedrive] triggerer_gc_freeze = True "
        "(the first OneDrive trigger freezes the heap)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trigger-scale-") as tmp:
        os.environ["AIRFLOW_HOME"] = tmp
        os.environ.pop("AIRFLOW__ONEDRIVE__TRIGGERER_GC_FREEZE", None)
        if args.gc_freeze == "provider":
            os.environ["AIRFLOW__ONEDRIVE__TRIGGERER_GC_FREEZE"] = "True"
        if args.gc_freeze == "local-settings":
            (Path(tmp) / "config").mkdir()
            (Path(tmp) / "config" / "airflow_local_settings.py").write_text("import gc\n\ngc.freeze()\n")
        emulator, info = start_emulator(args.latency, Path(tmp))
        try:
            connection = info["connections"]["app"]
            os.environ["AIRFLOW_CONN_ONEDRIVE_DEFAULT"] = json.dumps(connection)
            # The heap of a triggerer's trigger runner: Airflow, its triggerer job, this provider's trigger.
            import airflow.jobs.triggerer_job_runner  # noqa: F401

            import airflow_provider_onedrive.triggers.onedrive  # noqa: F401

            floor = full_collection_floor()
            result = asyncio.run(bench(args.triggers, args.poke_interval, connection, args.seed_after))
        finally:
            emulator.terminate()
            emulator.wait(10)
    result.update(
        latency_s=args.latency,
        poke_interval_s=args.poke_interval,
        gc_freeze=args.gc_freeze,
        gc_full_floor_ms=round(floor * 1000, 1),
        gc_frozen_objects=gc.get_freeze_count(),
        python=sys.version.split()[0],
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
