"""The README's examples run: its first DAG with dag.test() against the emulator, and its pandas snippet."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.mark.airflow
def test_first_dag_in_the_readme_runs(airflow_db, onedrive_emulator_connection, tmp_path, monkeypatch):
    import json

    from airflow.models import DagBag

    emu = onedrive_emulator_connection
    (dag_source,) = [block for block in python_blocks() if "with DAG(" in block]
    (tmp_path / "onedrive_hello.py").write_text(dag_source)
    bundle = {"name": "readme", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle"}
    bundle["kwargs"] = {"path": str(tmp_path), "refresh_interval": 0}
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([bundle]))
    emu.advance_time(-600)  # a delivery that arrived ten minutes ago: stable for longer than 60 s
    try:
        emu.put_file("incoming/orders.csv", b"id\n1\n")
    finally:
        emu.advance_time(600)

    bag = DagBag(str(tmp_path))
    assert not bag.import_errors
    run = bag.get_dag("onedrive_hello").test()
    assert str(run.state) == "success"
    ds = run.logical_date.strftime("%Y-%m-%d")
    assert emu.read_file(f"reports/{ds}.csv") == f"day,{ds}".encode()
    assert emu.read_file(f"archive/{ds}/orders.csv") == b"id\n1\n"
    assert emu.item("incoming/orders.csv") is None


def test_pandas_snippet_in_the_readme_runs(onedrive_emulator_connection):
    pytest.importorskip("pyarrow")
    emu = onedrive_emulator_connection
    emu.put_file("data/measurements.csv", b"station,temp\nA,21.5\nB,19.0\n")
    (snippet,) = [block for block in python_blocks() if "read_csv" in block]
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    import io

    import pandas as pd

    written = pd.read_parquet(io.BytesIO(emu.read_file("exports/measurements.parquet")))
    pd.testing.assert_frame_equal(written, namespace["df"])
