"""Process files as they arrive: wait for ``incoming/*.csv``, download, summarise, upload, archive.

The sensor is deferrable: after one poke it hands the wait to the triggerer and frees its worker slot.
Download, processing and upload share a working directory, so they need one machine (LocalExecutor) or a
volume every worker mounts: on Celery or Kubernetes, point ``ONEDRIVE_EXAMPLE_SHARED_DIR`` at it (the
deployment suite does), or do the three in a single ``@task`` with ``OneDriveHook`` (see the report example).
"""

from __future__ import annotations

import os
import tempfile

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_onedrive.operators.onedrive import (
    OneDriveDownloadOperator,
    OneDriveMoveOperator,
    OneDriveUploadOperator,
)
from airflow_provider_onedrive.sensors.onedrive import OneDriveFileSensor

SHARED_DIR = os.environ.get("ONEDRIVE_EXAMPLE_SHARED_DIR") or tempfile.gettempdir()
WORK_DIR = os.path.join(SHARED_DIR, "onedrive_incoming", "{{ dag_run.run_id | replace(':', '_') }}")

with DAG(
    dag_id="example_onedrive_incoming",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "onedrive"],
) as dag:
    # [START howto_sensor_onedrive_file_deferrable]
    wait_for_csv = OneDriveFileSensor(
        task_id="wait_for_csv",
        path="incoming/*.csv",
        min_size=1,  # an empty placeholder is not a delivery
        stable_for=30,  # ignore files changed in the last 30 s (still being written)
        deferrable=True,
        poke_interval=30,
        timeout=6 * 60 * 60,
    )
    # [END howto_sensor_onedrive_file_deferrable]

    # [START howto_operator_onedrive_download_mapped]
    download = OneDriveDownloadOperator.partial(
        task_id="download",
        local_path=WORK_DIR + "/in/",
    ).expand(remote_path=wait_for_csv.output.map(lambda match: match["path"]))
    # [END howto_operator_onedrive_download_mapped]

    @task
    def summarise(downloaded: list[list[str]], dag_run=None) -> dict:
        """Total the amount column of every delivered file into one summary CSV in the working directory."""
        import pandas as pd

        files = sorted(path for paths in downloaded for path in paths)
        frames = [pd.read_csv(path).assign(source=os.path.basename(path)) for path in files]
        summary = (
            pd.concat(frames).groupby("source", as_index=False).agg(rows=("amount", "size"), total=("amount", "sum"))
        )
        out_dir = os.path.join(os.path.dirname(os.path.dirname(files[0])), "out")
        os.makedirs(out_dir, exist_ok=True)
        summary.to_csv(os.path.join(out_dir, "summary.csv"), index=False)
        return {"files": len(files), "rows": int(summary["rows"].sum())}

    # [START howto_operator_onedrive_upload_glob]
    upload_result = OneDriveUploadOperator(
        task_id="upload_result",
        local_path=WORK_DIR + "/out/*.csv",
        remote_path="results/{{ ds }}/",
        conflict="replace",
    )
    # [END howto_operator_onedrive_upload_glob]

    # [START howto_operator_onedrive_move_mapped]
    move_to_processed = OneDriveMoveOperator.partial(
        task_id="move_to_processed",
        destination_path="processed/{{ ds }}/",
        conflict="rename",
    ).expand(source_path=wait_for_csv.output.map(lambda match: match["path"]))
    # [END howto_operator_onedrive_move_mapped]

    @task(trigger_rule="all_done")
    def clean_up(dag_run=None) -> None:
        import shutil

        shutil.rmtree(os.path.join(SHARED_DIR, "onedrive_incoming", dag_run.run_id.replace(":", "_")), True)

    summarise(download.output) >> upload_result >> move_to_processed >> clean_up()
