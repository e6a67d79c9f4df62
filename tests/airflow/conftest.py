"""Fixtures for running the example DAGs and the operators in real Airflow against the Graph emulator."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import EXAMPLE_DAGS

pytestmark = pytest.mark.airflow

LOGICAL_DATE = datetime.datetime(2024, 3, 15, tzinfo=datetime.UTC)
DS = "2024-03-15"


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    """The example DAGs folder, parsed once (the same folder the DAG processor would read)."""
    from airflow.models import DagBag

    bag = DagBag(str(EXAMPLE_DAGS))
    ours = {f for f in bag.import_errors if "example_onedrive_" in f and "fsspec" not in f}
    assert not ours, bag.import_errors
    return bag


@pytest.fixture
def drive(onedrive_emulator, onedrive_emulator_connection):
    """The emulator with ``AIRFLOW_CONN_ONEDRIVE_DEFAULT`` pointing at it (reset for every test)."""
    return onedrive_emulator


@pytest.fixture
def client(drive):
    """A fresh OneDriveClient for the default connection (to check what landed, bytes and hashes)."""
    from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

    return OneDriveHook(onedrive_conn_id="onedrive_default").get_conn()


@pytest.fixture
def run_dag(dagbag, drive) -> Callable[..., dict[str, Any]]:
    """Run an example DAG with ``dag.test()``; returns ``{"state": ..., "tasks": {task_id: [states]}}``."""

    def run(dag_id: str, *, prepare: Callable[[Any], None] | None = None) -> dict[str, Any]:
        dag = dagbag.get_dag(dag_id)
        assert dag is not None, f"{dag_id} not found in {EXAMPLE_DAGS}"
        if prepare is not None:
            prepare(dag)
        dag_run = dag.test(logical_date=LOGICAL_DATE)
        tasks: dict[str, list[str]] = {}
        for ti in dag_run.get_task_instances():
            tasks.setdefault(ti.task_id, []).append(str(ti.state))
        return {"state": str(dag_run.state), "tasks": tasks, "run_id": dag_run.run_id}

    return run
