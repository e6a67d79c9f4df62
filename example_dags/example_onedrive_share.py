"""Deliver a daily report and share it: upload ``deliveries/<date>/report.csv``, then a link for it.

The link is an organization link (anyone signed in to the tenant, never anonymous) that stops working after
30 days. Reruns of a day replace the file and hand back the same link (Graph returns the existing link of the
same type and scope). The link URL is in the share task's XCom, which anyone who can see this DAG's runs can
read; the task log never shows it.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_onedrive.operators.onedrive import OneDriveShareOperator, OneDriveUploadOperator

with DAG(
    dag_id="example_onedrive_share",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "onedrive"],
) as dag:

    @task
    def build_report(ds: str | None = None) -> str:
        """The day's figures as CSV text (a stand-in for a real query)."""
        rows = [("north", 120, 1440.0), ("south", 95, 1187.5), ("east", 60, 780.0)]
        return "date,region,units,revenue\n" + "".join(f"{ds},{r},{u},{v}\n" for r, u, v in rows)

    upload = OneDriveUploadOperator(
        task_id="upload_report",
        data=build_report(),
        remote_path="deliveries/{{ ds }}/report.csv",
        conflict="replace",
    )

    # [START howto_operator_onedrive_share]
    share = OneDriveShareOperator(
        task_id="share_report",
        path="deliveries/{{ ds }}/report.csv",
        link_type="view",
        scope="organization",  # anyone signed in to the tenant; "anonymous" links are bearer credentials
        expires_in=timedelta(days=30),
    )
    # [END howto_operator_onedrive_share]

    @task
    def announce(link: dict) -> dict:
        """What a notification task would send (the URL goes to the recipients, not to the log)."""
        print(f"report shared: {link['type']} link {link['id']} ({link['scope']}), expires {link['expires']}")
        return {"permission": link["id"], "expires": link["expires"], "path": link["path"]}

    upload >> share
    announce(share.output)
