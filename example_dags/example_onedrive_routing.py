"""Route files dropped in ``drop/`` into ``sorted/<kind>/`` by extension, one mapped move per file.

The List operator's output is a compact list of dicts (never file contents), made for dynamic task mapping.
An empty ``drop/`` folder maps to zero moves and the run still succeeds.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_onedrive.operators.onedrive import OneDriveListOperator, OneDriveMoveOperator

KINDS = {"csv": "tables", "parquet": "tables", "xlsx": "spreadsheets", "pdf": "documents", "docx": "documents"}

with DAG(
    dag_id="example_onedrive_routing",
    schedule="@hourly",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "onedrive"],
) as dag:
    # [START howto_operator_onedrive_list_expand_kwargs]
    listed = OneDriveListOperator(task_id="list_drop", folder="drop", files_only=True, max_items=500)

    @task
    def plan_moves(items: list[dict]) -> list[dict]:
        """One set of Move operator arguments per file: its path and the folder its extension belongs in."""
        moves = []
        for item in items:
            extension = item["name"].rsplit(".", 1)[-1].lower() if "." in item["name"] else ""
            moves.append({"source_path": item["path"], "destination_path": f"sorted/{KINDS.get(extension, 'other')}/"})
        return moves

    OneDriveMoveOperator.partial(task_id="route", conflict="rename").expand_kwargs(plan_moves(listed.output))
    # [END howto_operator_onedrive_list_expand_kwargs]
