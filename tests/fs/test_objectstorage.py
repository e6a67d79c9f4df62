"""Airflow's ObjectStoragePath on onedrive:// URLs, and the fsspec example DAG run for real with dag.test()."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_provider_onedrive.fs import OneDriveFileSystem

pytestmark = pytest.mark.airflow
EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def test_objectstoragepath_reads_and_writes(onedrive_emulator_connection: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    for url in ("onedrive://onedrive_default@/osp/q1.csv", "onedrive+graph://onedrive_default@/osp/q2.csv"):
        path = ObjectStoragePath(url)
        assert isinstance(path.fs, OneDriveFileSystem)
        assert path.conn_id == "onedrive_default"
        path.write_text("a,b\n1,2\n")
        assert path.exists() and path.read_text() == "a,b\n1,2\n"
    emulator = onedrive_emulator_connection
    assert emulator.read_file("osp/q1.csv") == b"a,b\n1,2\n"
    folder = ObjectStoragePath("onedrive://onedrive_default@/osp")
    assert sorted(child.name for child in folder.iterdir()) == ["q1.csv", "q2.csv"]
    assert folder.joinpath("q1.csv").stat()["size"] == 8


def test_onedrive_urls_have_a_registered_upath_class_and_no_fallback_warning(
    onedrive_emulator_connection: Any,
) -> None:
    import warnings

    from airflow.sdk import ObjectStoragePath
    from upath import UPath

    from airflow_provider_onedrive.fs.path import OneDrivePath

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = [ObjectStoragePath("onedrive://onedrive_default@/osp/a.csv"), UPath("onedrive+graph://osp/b.csv")]
    assert not [w for w in caught if "not explicitly implemented" in str(w.message)]
    assert isinstance(paths[0].__wrapped__, OneDrivePath) and isinstance(paths[1], OneDrivePath)
    assert (paths[0].name, str(paths[0].parent.path), str(paths[1].parent)) == ("a.csv", "osp", "onedrive+graph://osp")


def test_example_dag_runs(airflow_db: Any, onedrive_emulator_connection: Any) -> None:
    from airflow.models import DagBag

    dag = DagBag(str(EXAMPLE_DAGS)).get_dag("example_onedrive_fsspec")
    run = dag.test()
    assert run.state == "success"
    emulator = onedrive_emulator_connection
    from_csv = pd.read_csv(io.BytesIO(emulator.read_file("examples/fsspec/sales.csv")))
    from_parquet = pd.read_parquet(io.BytesIO(emulator.read_file("examples/fsspec/sales.parquet")))
    assert from_csv["amount"].sum() == from_parquet["amount"].sum() == pytest.approx(361.75)
    summary = emulator.read_file("examples/fsspec/summary.txt").decode()
    assert "['sales.csv', 'sales.parquet']" in summary and "'csv_total': 361.75" in summary
