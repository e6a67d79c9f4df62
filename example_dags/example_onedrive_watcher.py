"""Process files as they arrive, event-driven: an ``AssetWatcher`` on the drive's change feed starts a run when
CSV files land in ``landing/``; each one is summarised into ``processed/``.

``OneDriveChangeTrigger`` runs in the triggerer. Every watcher of one connection and poll interval shares ONE
poll of the drive's Graph delta feed, so watching many folders costs one request per interval, not one per
watcher. A run receives the changes that started it as asset events (``triggering_asset_events``); a manual run
may pass the same payloads as ``{"changes": [...]}`` in its conf (``airflow-onedrive demo`` does that after
driving the trigger against the emulator).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_onedrive.triggers.onedrive import OneDriveChangeTrigger

# [START howto_trigger_onedrive_change_watcher]
landing_csv = OneDriveChangeTrigger(
    path="landing/*.csv",
    kinds=["created", "modified"],
    stable_for=30,  # a file still being written fires once, after 30 s without a change
    poll_interval=60,  # one delta request per minute for every watcher of this connection
)
landing = Asset(
    name="onedrive_landing_csv",
    uri="onedrive://onedrive_default@/landing",
    watchers=[AssetWatcher(name="onedrive_landing_csv_watcher", trigger=landing_csv)],
)
# [END howto_trigger_onedrive_change_watcher]

with DAG(
    dag_id="example_onedrive_watcher",
    schedule=[landing],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "onedrive"],
) as dag:
    # [START howto_trigger_onedrive_change_events]
    @task
    def arrived(triggering_asset_events=None, dag_run=None) -> list[dict]:
        """The changed files: from the asset events of this run (or a manual run's ``changes`` conf)."""
        events = (triggering_asset_events or {}).get(landing, [])
        changes = [event.extra["payload"] for event in events if "payload" in (event.extra or {})]
        if not changes and dag_run is not None:
            changes = (dag_run.conf or {}).get("changes", [])
        return [change for change in changes if change["kind"] in ("created", "modified")]

    # [END howto_trigger_onedrive_change_events]

    @task
    def summarise(change: dict) -> dict:
        """Count the rows of one delivered CSV, check it is the version the event announced, write a summary."""
        import csv
        import io
        import json
        import posixpath

        from airflow_provider_onedrive.hashing import quickxorhash
        from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

        client = OneDriveHook(onedrive_conn_id="onedrive_default").get_conn()
        data = client.download_bytes(change["path"])
        if change.get("quick_xor_hash") and quickxorhash(data) != change["quick_xor_hash"]:
            raise RuntimeError(f"{change['path']} changed again since the event; the next event will carry it")
        rows = max(0, len(list(csv.reader(io.StringIO(data.decode("utf-8"))))) - 1)
        summary = {"source": change["path"], "kind": change["kind"], "rows": rows, "bytes": len(data)}
        name = posixpath.splitext(posixpath.basename(change["path"]))[0]
        client.upload_bytes(json.dumps(summary).encode(), f"processed/{name}.json", conflict="replace")
        return summary

    summarise.expand(change=arrived())
