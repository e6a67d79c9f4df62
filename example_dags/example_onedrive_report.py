"""Daily sales report: pandas builds it, OneDrive keeps it as CSV and Parquet under ``reports/<date>/``.

Reruns of a day replace that day's files (``conflict="replace"``); everything else in the drive is untouched.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_onedrive.operators.onedrive import OneDriveCreateFolderOperator, OneDriveUploadOperator


def daily_sales(ds: str):
    """The day's raw sales (a stand-in for a database query): 500 rows of region, units and unit price."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(int(ds.replace("-", "")))
    return pd.DataFrame(
        {
            "region": rng.choice(["north", "south", "east", "west"], size=500),
            "units": rng.integers(1, 20, size=500),
            "unit_price": rng.choice([9.5, 12.0, 30.0], size=500),
        }
    )


with DAG(
    dag_id="example_onedrive_report",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "onedrive"],
) as dag:
    # [START howto_operator_onedrive_create_folder]
    create_folder = OneDriveCreateFolderOperator(
        task_id="create_report_folder",
        folder_path="reports/{{ ds }}",
        onedrive_conn_id="onedrive_default",
    )
    # [END howto_operator_onedrive_create_folder]

    # [START howto_hook_onedrive_upload_dataframe]
    @task
    def build_report(ds: str | None = None) -> dict:
        """Aggregate the day's sales with pandas and write CSV and Parquet straight to OneDrive."""
        import io

        from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

        sales = daily_sales(ds)
        sales["revenue"] = sales["units"] * sales["unit_price"]
        report = sales.groupby("region", as_index=False)[["units", "revenue"]].sum().sort_values("region")

        client = OneDriveHook(onedrive_conn_id="onedrive_default").get_conn()
        csv = client.upload_bytes(
            report.to_csv(index=False).encode(), f"reports/{ds}/sales_by_region.csv", conflict="replace"
        )
        parquet_buffer = io.BytesIO()
        report.to_parquet(parquet_buffer, index=False)
        parquet = client.upload_bytes(
            parquet_buffer.getvalue(), f"reports/{ds}/sales_by_region.parquet", conflict="replace"
        )
        # Only a small summary goes to XCom, never the data itself.
        return {"rows": len(report), "revenue": float(report["revenue"].sum()), "files": [csv.path, parquet.path]}

    # [END howto_hook_onedrive_upload_dataframe]

    # [START howto_operator_onedrive_upload_data]
    upload_summary = OneDriveUploadOperator(
        task_id="upload_summary",
        data="{{ ti.xcom_pull(task_ids='build_report') | tojson }}",
        remote_path="reports/{{ ds }}/summary.json",
        conflict="replace",
    )
    # [END howto_operator_onedrive_upload_data]

    create_folder >> build_report() >> upload_summary
