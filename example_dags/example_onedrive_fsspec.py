"""Read and write OneDrive files with pandas and ObjectStoragePath through the ``onedrive://`` filesystem.

Uses the ``onedrive_default`` connection. ``onedrive://onedrive_default@/examples/fsspec`` is the folder
``examples/fsspec`` in that connection's drive (the empty host after ``@`` means "the connection's drive").
"""

from __future__ import annotations

import datetime

from airflow.sdk import ObjectStoragePath, dag, task

# [START howto_fsspec_objectstoragepath_base]
BASE = "onedrive://onedrive_default@/examples/fsspec"
# [END howto_fsspec_objectstoragepath_base]


@dag(
    dag_id="example_onedrive_fsspec",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "onedrive", "fsspec"],
)
def example_onedrive_fsspec() -> None:
    @task
    def write_reports() -> str:
        """Write a CSV with ObjectStoragePath and a Parquet file with pandas."""
        import pandas as pd

        sales = pd.DataFrame({"region": ["north", "south", "east"], "amount": [120.5, 98.0, 143.25]})
        # [START howto_fsspec_objectstoragepath_write]
        folder = ObjectStoragePath(BASE)
        folder.mkdir(parents=True, exist_ok=True)
        csv_path = folder / "sales.csv"
        with csv_path.open("w") as handle:
            sales.to_csv(handle, index=False)
        # [END howto_fsspec_objectstoragepath_write]
        # [START howto_fsspec_pandas_write]
        parquet_url = f"{BASE}/sales.parquet"
        sales.to_parquet(parquet_url, index=False)  # fsspec resolves the connection named in the URL
        # [END howto_fsspec_pandas_write]
        return parquet_url

    @task
    def summarise(parquet_url: str) -> dict[str, float]:
        """Read both files back, list the folder, and write a summary next to them."""
        import pandas as pd

        # [START howto_fsspec_pandas_read]
        from_parquet = pd.read_parquet(parquet_url)
        # [END howto_fsspec_pandas_read]
        # [START howto_fsspec_objectstoragepath_read]
        folder = ObjectStoragePath(BASE)
        names = sorted(child.name for child in folder.iterdir())
        with (folder / "sales.csv").open("r") as handle:
            from_csv = pd.read_csv(handle)
        # [END howto_fsspec_objectstoragepath_read]
        summary = {
            "files": float(len(names)),
            "csv_total": float(from_csv["amount"].sum()),
            "parquet_total": float(from_parquet["amount"].sum()),
        }
        (folder / "summary.txt").write_text(f"{names} {summary}\n")
        return summary

    summarise(write_reports())


example_onedrive_fsspec()
