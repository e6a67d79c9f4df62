"""Archive the inbox: move ``inbox/*.csv`` to ``archive/<date>/`` and leave an audit CSV of what moved.

An empty inbox is a normal day: nothing moves, and the audit file says so (it has only its header).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_onedrive.operators.onedrive import (
    OneDriveListOperator,
    OneDriveMoveOperator,
    OneDriveUploadOperator,
)

with DAG(
    dag_id="example_onedrive_archive",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "onedrive"],
) as dag:
    # [START howto_operator_onedrive_list]
    list_inbox = OneDriveListOperator(
        task_id="list_inbox",
        folder="inbox",
        pattern="*.csv",
        files_only=True,
        missing_ok=True,  # no inbox folder yet: nothing to archive today
    )
    # [END howto_operator_onedrive_list]

    # [START howto_operator_onedrive_move_glob]
    archive = OneDriveMoveOperator(
        task_id="archive_inbox",
        source_path="inbox/*.csv",
        destination_path="archive/{{ ds }}/",
        conflict="rename",  # a second file with the same name that day is kept as "name 1.csv"
    )
    # [END howto_operator_onedrive_move_glob]

    @task
    def build_audit(listed: list[dict], moved: list[dict], ds: str | None = None) -> str:
        """One CSV row per archived file: where it was, where it went, its size and hash."""
        import csv
        import io

        hashes = {item["path"]: item["quick_xor_hash"] for item in listed}
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["date", "source", "destination", "size", "quick_xor_hash"])
        for row in moved:
            writer.writerow([ds, row["source"], row["destination"], row["size"], hashes.get(row["source"], "")])
        return out.getvalue()

    # [START howto_operator_onedrive_upload_xcom]
    upload_audit = OneDriveUploadOperator(
        task_id="upload_audit",
        data=build_audit(list_inbox.output, archive.output),
        remote_path="archive/{{ ds }}/_audit.csv",
        conflict="replace",
    )
    # [END howto_operator_onedrive_upload_xcom]

    list_inbox >> archive
