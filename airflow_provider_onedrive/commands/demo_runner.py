"""Child process of ``airflow-onedrive demo``: run DAGs with ``dag.test()``; print ``DAG <id> <state>`` lines.

``dag.test()`` starts a run by hand, so an asset-scheduled DAG would get no asset events. For a DAG scheduled
on assets watched by :class:`~airflow_provider_onedrive.triggers.onedrive.OneDriveChangeTrigger`, the demo first
drives the real trigger against the drive: it takes its start position, the demo's arrivals are uploaded, and
the events the trigger fires are passed to the run as its ``changes`` conf (what the example DAG reads when a
run has no asset events). The trigger polls every second and without ``stable_for`` here, so the demo does not
wait the DAG's intervals; the line printed before says so.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from typing import Any

from airflow_provider_onedrive.testing.assets import MemoryAssetStateStore

#: Files that "arrive" while the demo drives a change watcher (uploaded once its start position is taken).
ARRIVALS: dict[str, bytes] = {
    "landing/orders_2024-05-02.csv": b"id,amount\n7,12.5\n8,30\n9,1.25\n",
    "landing/notes.txt": b"not a CSV: the watcher ignores it\n",
}


def change_watchers(dag: Any) -> list[Any]:
    """The OneDriveChangeTriggers watching the assets a DAG is scheduled on."""
    from airflow_provider_onedrive.triggers.onedrive import OneDriveChangeTrigger

    def assets(condition: Any) -> Iterator[Any]:
        for item in getattr(condition, "objects", ()) or ():
            yield from assets(item)
        if getattr(condition, "watchers", None):
            yield condition

    condition = getattr(getattr(dag, "timetable", None), "asset_condition", None)
    return [
        watcher.trigger
        for asset in assets(condition)
        for watcher in asset.watchers
        if isinstance(watcher.trigger, OneDriveChangeTrigger)
    ]


async def _changes_after(trigger: Any, arrive: Callable[[], None], timeout: float) -> list[dict[str, Any]]:
    store = MemoryAssetStateStore()
    trigger.asset_state_store = store
    events: list[dict[str, Any]] = []

    async def consume() -> None:
        async for event in trigger.run():
            events.append(event.payload)

    task = asyncio.ensure_future(consume())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not store.writes:  # the start position is taken: what comes now is a change
            await _tick(task, loop, deadline)
        await asyncio.to_thread(arrive)
        while not events:
            await _tick(task, loop, deadline)
        fired_in = store.writes
        while store.writes == fired_in:  # the rest of that round
            await _tick(task, loop, deadline)
        return events
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _tick(task: asyncio.Future[Any], loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    if task.done():
        task.result()
        raise RuntimeError("the change trigger stopped")
    if loop.time() > deadline:
        raise TimeoutError("the change trigger fired nothing in time")
    await asyncio.sleep(0.05)


def drive_change_watchers(dag: Any, arrive: Callable[[], None], timeout: float = 60.0) -> list[dict[str, Any]]:
    """Run the DAG's change watchers (each polling every second, without ``stable_for``) until the changes that
    ``arrive()`` makes have fired; their event payloads."""
    changes: list[dict[str, Any]] = []
    for index, trigger in enumerate(change_watchers(dag)):
        _, kwargs = trigger.serialize()
        quick = type(trigger)(**{**kwargs, "poll_interval": 1.0, "stable_for": 0.0})
        changes += asyncio.run(_changes_after(quick, arrive if index == 0 else lambda: None, timeout))
    return changes


def upload_arrivals(conn_id: str = "onedrive_default") -> None:
    """Upload the demo's arrivals through the connection, as a person dropping files in the folder would."""
    from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

    client = OneDriveHook(onedrive_conn_id=conn_id).get_conn()
    for path, data in ARRIVALS.items():
        client.upload_bytes(data, path, conflict="replace")


def main(argv: list[str]) -> int:
    from airflow.models import DagBag

    folder, *dag_ids = argv
    bag = DagBag(folder)
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"import error in {path}: {error}", file=sys.stderr)
    failures = 0
    for dag_id in dag_ids:
        dag = bag.get_dag(dag_id)
        if dag is None:
            print(f"DAG {dag_id} not-found", flush=True)
            failures += 1
            continue
        run_conf = None
        if change_watchers(dag):
            print(
                f"WATCH {dag_id}: driving its change watchers (1 s polls, no stable_for) over new arrivals", flush=True
            )
            run_conf = {"changes": drive_change_watchers(dag, upload_arrivals)}
            print(f"WATCH {dag_id}: {len(run_conf['changes'])} change event(s)", flush=True)
        state = str(dag.test(run_conf=run_conf).state)
        failures += state != "success"
        print(f"DAG {dag_id} {state}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
