"""OneDriveFileSensor: poke semantics against the emulator, and the deferral hand-off to the trigger."""

from __future__ import annotations

import datetime
import json
import time

import pytest
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, TaskDeferred

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.sensors.onedrive import OneDriveFileSensor, OneDriveSensorError
from airflow_provider_onedrive.triggers.onedrive import OneDriveFileTrigger
from tests.airflow.conftest import DS

pytestmark = pytest.mark.airflow


def poke(sensor, context=None):
    context = dict(context or {"ds": DS})
    sensor.render_template_fields(context)
    return sensor.poke(context)


def matched_paths(result) -> list[str]:
    assert isinstance(result, PokeReturnValue) and result.is_done
    assert json.loads(json.dumps(result.xcom_value)) == result.xcom_value
    return [m["path"] for m in result.xcom_value]


def test_missing_folder_is_not_yet_not_a_failure(drive):
    assert poke(OneDriveFileSensor(task_id="s", path="incoming/*.csv")) is False
    assert poke(OneDriveFileSensor(task_id="s", path="incoming/today.csv")) is False
    statuses = [r.status for r in drive.requests if r.kind == "graph"]
    assert statuses == [404, 404]


def test_glob_matches_files_case_insensitively_and_returns_them(drive):
    drive.put_file("incoming/B.CSV", b"b")
    drive.put_file("incoming/a.csv", b"aa")
    drive.put_file("incoming/sub.csv/x.txt", b"a folder named like a csv is not a match")
    result = poke(OneDriveFileSensor(task_id="s", path="incoming/*.Csv"))
    assert matched_paths(result) == ["incoming/a.csv", "incoming/B.CSV"]
    assert set(result.xcom_value[0]) == {"path", "name", "size", "modified", "is_folder", "id", "quick_xor_hash"}
    assert poke(OneDriveFileSensor(task_id="s", path="incoming/*.CSV", case_sensitive=True)).xcom_value[0]["name"] == (
        "B.CSV"
    )


def test_templated_path_min_size_and_modified_after(drive):
    drive.advance_time(-7200)
    drive.put_file(f"drop/{DS}/old.csv", b"old enough")
    drive.advance_time(7200)
    drive.put_file(f"drop/{DS}/empty.csv", b"")
    drive.put_file(f"drop/{DS}/new.csv", b"fresh data")
    since = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)).isoformat()
    sensor = OneDriveFileSensor(task_id="s", path="drop/{{ ds }}/*.csv", min_size=1, modified_after="{{ since }}")
    assert matched_paths(poke(sensor, {"ds": DS, "since": since})) == [f"drop/{DS}/new.csv"]


def test_a_file_still_being_written_is_not_picked_up(drive):
    drive.put_file("landing/big.csv", b"part 1")
    sensor = OneDriveFileSensor(task_id="s", path="landing/big.csv", stable_for=2)
    assert poke(sensor) is False  # just modified
    time.sleep(2.2)  # long enough to count as stable, had it not changed...
    drive.put_file("landing/big.csv", b"part 1, part 2")  # ...but it is still growing: the wait starts again
    assert poke(sensor) is False
    time.sleep(2.2)
    result = poke(sensor)
    assert matched_paths(result) == ["landing/big.csv"]
    assert result.xcom_value[0]["size"] == len(b"part 1, part 2")


def test_poke_mode_times_out_with_a_sensor_timeout(drive):
    sensor = OneDriveFileSensor(task_id="s", path="never/*.csv", poke_interval=0.2, timeout=0.5, mode="poke")
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute({"ds": DS})


def test_reschedule_mode_is_accepted():
    sensor = OneDriveFileSensor(task_id="s", path="x/*.csv", mode="reschedule", poke_interval=300)
    assert sensor.reschedule is True


def test_bad_arguments_fail_at_construction():
    for kwargs in ({"path": ""}, {"path": "in/*.csv", "min_size": -1}, {"path": "a", "modified_after": "soon"}):
        with pytest.raises(OneDriveValidationError):
            OneDriveFileSensor(task_id="s", **kwargs)
    assert OneDriveFileSensor.template_fields == ("onedrive_conn_id", "path", "modified_after")


def test_deferrable_sensor_pokes_once_then_defers_with_its_conditions(drive):
    sensor = OneDriveFileSensor(
        task_id="s",
        path="incoming/{{ ds }}/*.csv",
        min_size=10,
        modified_after="2024-03-15T00:00:00+00:00",
        stable_for=30,
        poke_interval=15,
        timeout=3600,
        deferrable=True,
        onedrive_conn_id="onedrive_default",
    )
    sensor.render_template_fields({"ds": DS})
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({"ds": DS})
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == datetime.timedelta(seconds=3600)
    assert isinstance(deferred.trigger, OneDriveFileTrigger)
    assert deferred.trigger.serialize() == (
        "airflow_provider_onedrive.triggers.onedrive.OneDriveFileTrigger",
        {
            "path": f"incoming/{DS}/*.csv",
            "onedrive_conn_id": "onedrive_default",
            "min_size": 10,
            "modified_after": "2024-03-15T00:00:00+00:00",
            "stable_for": 30.0,
            "case_sensitive": False,
            "poke_interval": 15.0,
        },
    )
    assert len([r for r in drive.requests if r.kind == "graph"]) == 1  # exactly one poke before deferring


def test_deferrable_sensor_does_not_defer_when_the_file_is_there(drive):
    drive.put_file("incoming/a.csv", b"a")
    sensor = OneDriveFileSensor(task_id="s", path="incoming/*.csv", deferrable=True)
    assert [m["path"] for m in sensor.execute({})] == ["incoming/a.csv"]


def test_execute_complete_returns_matches_or_fails_clearly():
    sensor = OneDriveFileSensor(task_id="s", path="incoming/*.csv", deferrable=True)
    matches = [{"path": "incoming/a.csv", "size": 1}]
    assert sensor.execute_complete({}, {"status": "success", "matches": matches}) == matches
    with pytest.raises(OneDriveSensorError, match=r"waiting for incoming/\*.csv failed: HTTP 403") as info:
        sensor.execute_complete({}, {"status": "error", "message": "HTTP 403 accessDenied"})
    assert isinstance(info.value, AirflowException)  # so soft_fail / never_fail apply
    with pytest.raises(OneDriveSensorError, match="without an event"):
        sensor.execute_complete({}, None)
