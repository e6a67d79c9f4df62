"""DAGs of the deployment suite (tests/deployment): deferred sensors, a worker-slot probe, a delegated fan-out
across both workers, a large upload that a killed worker leaves half done, and a DAG scheduled by a change
watcher (a fast one: a 2 s poll, no settling time)."""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_onedrive.hooks.onedrive import OneDriveHook
from airflow_provider_onedrive.operators.onedrive import OneDriveUploadOperator
from airflow_provider_onedrive.sensors.onedrive import OneDriveFileSensor
from airflow_provider_onedrive.triggers.onedrive import OneDriveChangeTrigger

SENSORS = 50
FANOUT = 20


@dag(dag_id="deploy_deferred_sensors", schedule=None, catchup=False, max_active_tasks=64, tags=["deployment"])
def deferred_sensors():
    OneDriveFileSensor.partial(
        task_id="wait",
        deferrable=True,
        poke_interval=3,
        timeout=900,
        onedrive_conn_id="onedrive_default",
    ).expand(path=[f"arrivals/file-{i:02}.csv" for i in range(SENSORS)])


@dag(dag_id="deploy_probe", schedule=None, catchup=False, tags=["deployment"])
def probe():
    @task
    def where() -> str:
        return os.environ.get("ONEDRIVE_DEPLOY_WORKER", "?")

    where()


@dag(dag_id="deploy_delegated_fanout", schedule=None, catchup=False, max_active_tasks=64, tags=["deployment"])
def delegated_fanout():
    @task
    def upload(index: int) -> str:
        hook = OneDriveHook("onedrive_delegated")
        client = hook.get_conn()
        token = hook.get_token()
        print(f"careless debug output: access token {token}")  # the masker must hide it
        client.upload_bytes(f"written by task {index}\n".encode(), f"delegated/task-{index:02}.txt")
        return os.environ.get("ONEDRIVE_DEPLOY_WORKER", "?")

    upload.expand(index=list(range(FANOUT)))


@dag(dag_id="deploy_big_upload", schedule=None, catchup=False, tags=["deployment"])
def big_upload():
    OneDriveUploadOperator(
        task_id="upload",
        local_path="{{ dag_run.conf['source'] }}",
        remote_path="big/{{ dag_run.conf['name'] }}",
        onedrive_conn_id="onedrive_resume",
        retries=2,
        retry_delay=timedelta(seconds=1),
    )


WATCHED = Asset(
    name="deploy_watched_csv",
    uri="onedrive://onedrive_default@/watched",
    watchers=[
        AssetWatcher(
            name="deploy_watched_csv_watcher",
            trigger=OneDriveChangeTrigger(path="watched/*.csv", kinds=["created"], poll_interval=2),
        )
    ],
)


@dag(dag_id="deploy_watcher", schedule=[WATCHED], catchup=False, tags=["deployment"])
def watcher():
    @task
    def arrived(triggering_asset_events=None) -> list[str]:
        return sorted(event.extra["payload"]["path"] for event in (triggering_asset_events or {}).get(WATCHED, []))

    arrived()


deferred_sensors()
probe()
watcher()
delegated_fanout()
big_upload()
