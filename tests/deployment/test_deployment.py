"""The provider in a real distributed deployment: PostgreSQL, Redis, a scheduler, a dag-processor, a triggerer,
an api-server and two Celery workers (separate home, cache and temp folders), all started by tests/deployment.

DAG runs are created through the REST API and awaited there; what they did is checked in the emulated drive,
in the metadata DB and in the task logs the API server serves.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deployment.cluster import WORKERS, Deployment

pytestmark = [pytest.mark.deployment, pytest.mark.slow]

DS = "2024-03-15"
LOGICAL_DATE = f"{DS}T00:00:00Z"
EXAMPLES = [
    "example_onedrive_archive",
    "example_onedrive_fsspec",
    "example_onedrive_incoming",
    "example_onedrive_report",
    "example_onedrive_routing",
    "example_onedrive_share",
    "example_onedrive_watcher",
]
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def wait_until(condition: Callable[[], Any], timeout: float, what: str, deployment: Deployment) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached after {timeout:.0f} s")
        time.sleep(1)


def names(emulator: Any, folder: str) -> list[str]:
    item = emulator.item(folder)
    drive = emulator.drive()
    return sorted(drive.items[i].name for i in item.children.values()) if item is not None else []


def trigger(deployment: Deployment, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    body = {"logical_date": LOGICAL_DATE if dag_id in EXAMPLES else None, "conf": conf or {}}
    return str(deployment.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])


def secrets_of(emulator: Any) -> dict[str, str]:
    """Every credential the deployment's processes held: the app's secret and key, every refresh token."""
    found = {"client_secret": emulator.client_secret}
    found.update({f"refresh_token_{i}": t for i, t in enumerate(emulator.refresh_tokens_issued())})
    key = Path(emulator.app_certificate.private_key_path).read_text()
    found["certificate_key_body"] = "".join(key.strip().splitlines()[1:-1])[:64]
    return found


def assert_logs_clean(deployment: Deployment, emulator: Any, dag_id: str, run_id: str) -> str:
    """Fetch every try's log through the API server; no credential or pre-authenticated URL is in any."""
    logs = []
    for ti in deployment.task_instances(dag_id, run_id):
        for try_number in range(1, (ti["try_number"] or 0) + 1):
            logs.append(deployment.task_log(dag_id, run_id, ti["task_id"], try_number, ti["map_index"]))
    text = "\n".join(logs)
    assert text.strip(), f"no task log served for {dag_id}"
    for name, value in secrets_of(emulator).items():
        assert value not in text, f"{name} is in a task log of {dag_id}"
    assert not JWT.search(text), f"an access token is in a task log of {dag_id}"
    for marker in ("tempauth", "guid=", "download.aspx?", "PRIVATE KEY"):
        assert marker not in text, f"{marker!r} (a pre-authenticated URL or key) is in a task log of {dag_id}"
    return text


@pytest.fixture(scope="module")
def ready(deployment: Deployment) -> Deployment:
    suite = [
        "deploy_deferred_sensors",
        "deploy_probe",
        "deploy_delegated_fanout",
        "deploy_big_upload",
        "deploy_watcher",
    ]
    deployment.wait_for_dags([*EXAMPLES, *suite])
    return deployment


def test_every_example_dag_is_covered() -> None:
    from tests.conftest import EXAMPLE_DAGS

    assert sorted(p.stem for p in EXAMPLE_DAGS.glob("example_*.py")) == sorted(EXAMPLES)


def test_example_dags_succeed_through_the_rest_api(ready: Deployment, deploy_emulator: Any) -> None:
    # the watcher example's run by hand: its conf carries a change as its watcher would report it
    deploy_emulator.put_file("manual/orders.csv", b"id,amount\n1,2.5\n2,4\n")
    change = {"kind": "created", "path": "manual/orders.csv", "size": 20}
    conf = {"example_onedrive_watcher": {"changes": [change]}}
    runs = {dag_id: trigger(ready, dag_id, conf.get(dag_id)) for dag_id in EXAMPLES}
    states = {dag_id: ready.wait_for_run(dag_id, run_id, timeout=420) for dag_id, run_id in runs.items()}
    failed = {d: ready.task_states(d, runs[d]) for d, s in states.items() if s != "success"}
    assert not failed, failed

    emu = deploy_emulator
    # archive: the inbox's CSVs moved into the dated folder, with an audit file; the text file stays
    assert names(emu, "inbox") == ["readme.txt"]
    assert names(emu, f"archive/{DS}") == ["_audit.csv", "credit_notes.csv", "invoices_2024-05.csv"]
    audit = emu.read_file(f"archive/{DS}/_audit.csv").decode().splitlines()
    assert audit[0] == "date,source,destination,size,quick_xor_hash" and len(audit) == 3
    # incoming: downloaded on one worker, summarised and uploaded maybe on the other (shared volume), moved
    summary = emu.read_file(f"results/{DS}/summary.csv").decode().splitlines()
    assert summary == ["source,rows,total", "orders_eu.csv,2,15.0", "orders_us.csv,1,100.0"]
    assert names(emu, "incoming") == []
    assert emu.read_file(f"processed/{DS}/orders_us.csv") == b"id,amount\n3,100\n"
    # report: CSV, Parquet and summary of the day
    assert names(emu, f"reports/{DS}") == ["sales_by_region.csv", "sales_by_region.parquet", "summary.json"]
    assert json.loads(emu.read_file(f"reports/{DS}/summary.json"))["rows"] == 4
    # routing: one move per dropped file, by extension
    assert names(emu, "drop") == []
    assert emu.read_file("sorted/spreadsheets/q2 figures.xlsx") == b"PK\x03\x04 not really a spreadsheet"
    assert emu.read_file("sorted/documents/contract.pdf") == b"%PDF-1.7 demo"
    assert names(emu, "sorted/tables") == ["measurements.csv"]
    # share: the delivered report and one organization link to it
    assert names(emu, f"deliveries/{DS}") == ["report.csv"]
    assert len(emu.store.links) == 1 and next(iter(emu.store.links.values())).scope == "organization"
    # watcher (run by hand): the change it was given, summarised
    assert json.loads(emu.read_file("processed/orders.json")) == {
        "source": "manual/orders.csv",
        "kind": "created",
        "rows": 2,
        "bytes": 20,
    }
    # fsspec: pandas and ObjectStoragePath wrote through onedrive://
    assert names(emu, "examples/fsspec") == ["sales.csv", "sales.parquet", "summary.txt"]

    hosts = {ti["hostname"] for d, r in runs.items() for ti in ready.task_instances(d, r)}
    assert hosts <= set(WORKERS), hosts
    for dag_id, run_id in runs.items():
        assert_logs_clean(ready, emu, dag_id, run_id)


def test_fifty_deferred_sensors_hold_no_worker_slot(ready: Deployment, deploy_emulator: Any) -> None:
    """50 sensors defer to the real triggerer (8 worker slots in all); a probe still runs; files release them."""
    run_id = trigger(ready, "deploy_deferred_sensors")

    def all_deferred() -> bool:
        states = list(ready.task_states("deploy_deferred_sensors", run_id).values())
        return len(states) == 50 and all(s == "deferred" for s in states)

    wait_until(all_deferred, 300, "50 sensors deferred", ready)
    rows = ready.query(
        "SELECT t.classpath, count(*) FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
        "WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.state = 'deferred' GROUP BY t.classpath",
        "deploy_deferred_sensors",
        run_id,
    )
    assert rows == [("airflow_provider_onedrive.triggers.onedrive.OneDriveFileTrigger", 50)], rows
    # the triggerer process (not a worker) holds every trigger
    wait_until(
        lambda: ready.query("SELECT count(*) FROM trigger WHERE triggerer_id IS NOT NULL")[0][0] >= 50,
        60,
        "the triggerer picking up all 50 triggers",
        ready,
    )
    holders = ready.query("SELECT DISTINCT j.job_type, j.hostname FROM trigger t JOIN job j ON t.triggerer_id = j.id")
    assert len(holders) == 1 and holders[0][0] == "TriggererJob" and holders[0][1] not in WORKERS, holders

    # every worker slot is free: a probe task runs to completion while the 50 wait
    probe = trigger(ready, "deploy_probe")
    assert ready.wait_for_run("deploy_probe", probe, timeout=120) == "success"
    assert all_deferred()

    deploy_emulator.advance_time(-600)
    try:
        for i in range(50):
            deploy_emulator.put_file(f"arrivals/file-{i:02}.csv", f"id\n{i}\n".encode())
    finally:
        deploy_emulator.advance_time(600)
    assert ready.wait_for_run("deploy_deferred_sensors", run_id, timeout=300) == "success"
    tis = ready.task_instances("deploy_deferred_sensors", run_id)
    assert sorted(ti["state"] for ti in tis) == ["success"] * 50
    # the sensors' triggers are gone once they fired (the asset watchers' triggers stay)
    assert ready.query("SELECT count(*) FROM trigger WHERE classpath LIKE %s", "%OneDriveFileTrigger") == [(0,)]


def stored_refresh_token(deployment: Deployment, conn_id: str) -> dict[str, Any]:
    """The provider's record in the connection's Variable, decrypted with the deployment's Fernet key."""
    from cryptography.fernet import Fernet

    rows = deployment.query(
        "SELECT val, is_encrypted FROM variable WHERE key = %s", f"onedrive_refresh_token__{conn_id}"
    )
    assert rows, "no refresh-token Variable was written"
    value, encrypted = rows[0]
    assert encrypted, "the Variable holding refresh tokens is not encrypted although a Fernet key is set"
    text = Fernet(deployment.fernet_key.encode()).decrypt(value.encode()).decode()
    return dict(json.loads(text.split("|", 1)[1]))


def test_delegated_connection_across_both_workers(ready: Deployment, deploy_emulator: Any) -> None:
    """20 concurrent tasks on both workers share one delegated connection whose refresh tokens are single-use."""
    run_id = trigger(ready, "deploy_delegated_fanout")
    state = ready.wait_for_run("deploy_delegated_fanout", run_id, timeout=300)
    assert state == "success", ready.task_states("deploy_delegated_fanout", run_id)
    tis = ready.task_instances("deploy_delegated_fanout", run_id)
    assert len(tis) == 20 and all(ti["try_number"] == 1 for ti in tis)  # no retry hid an invalid_grant
    assert {ti["hostname"] for ti in tis} == set(WORKERS)
    for i in range(20):
        assert deploy_emulator.read_file(f"delegated/task-{i:02}.txt") == f"written by task {i}\n".encode()

    # one redemption served all twenty: the winner saved its access token, the others used it
    assert len(deploy_emulator.refresh_tokens_issued()) == 2  # the sign-in's token and the one redemption's
    record = stored_refresh_token(ready, "onedrive_delegated")
    assert record["token"] == deploy_emulator.refresh_tokens_issued()[-1]  # the newest is the one persisted
    text = assert_logs_clean(ready, deploy_emulator, "deploy_delegated_fanout", run_id)
    assert text.count("careless debug output: access token") == 20  # printed, and masked (no JWT above)
    assert "invalid_grant" not in text


def test_a_killed_worker_upload_resumes_on_the_other(ready: Deployment, deploy_emulator: Any) -> None:
    """SIGKILL the worker (and its task) mid-upload; the retry on the other worker resumes the same session."""
    emu = deploy_emulator
    size = 6 * 10 * 1024 * 1024 + 5  # six 10 MiB fragments and a tail
    fragment = 10 * 1024 * 1024
    source = ready.root / "shared" / "big.bin"
    data = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    source.write_bytes(data)
    emu.clear_requests()
    emu.faults.add("latency", kind="upload", method="PUT", seconds=1.0)

    def fragments() -> list[Any]:
        return [r for r in emu.requests if r.kind == "upload" and r.method == "PUT" and r.status == 202]

    run_id = trigger(ready, "deploy_big_upload", {"source": str(source), "name": "big.bin"})
    try:
        wait_until(lambda: len(fragments()) >= 2, 180, "two fragments acknowledged", ready)
        first = ready.task_instances("deploy_big_upload", run_id)[0]
        victim = first["hostname"]
        assert victim in WORKERS
        ready.services[victim].kill()
        ready.services[victim].process.wait(30)  # type: ignore[union-attr]
        acknowledged_by_first = sum(r.bytes_in for r in fragments())
        seen = len(emu.requests)
        emu.faults.clear()
        state = ready.wait_for_run("deploy_big_upload", run_id, timeout=300)
    finally:
        emu.faults.clear()
    tis = ready.task_instances("deploy_big_upload", run_id)
    assert state == "success", tis
    survivor = next(w for w in WORKERS if w != victim)
    assert tis[0]["hostname"] == survivor and tis[0]["try_number"] >= 2
    assert emu.read_file("big/big.bin") == data
    later = emu.requests[seen:]
    sent_by_retry = sum(r.bytes_in for r in later if r.kind == "upload" and r.method == "PUT")
    assert acknowledged_by_first + sent_by_retry <= size + fragment
    assert not [r for r in later if r.path.endswith("createUploadSession")]  # the same session, resumed
    assert_logs_clean(ready, emu, "deploy_big_upload", run_id)

    # the killed machine comes back, as a restarted node would, for whatever runs next
    ready.start_worker(victim)
    wait_until(lambda: ready.worker_ready(victim), 120, f"{victim} ready again", ready)


def watcher_runs(deployment: Deployment) -> list[list[str]]:
    """What each finished run of ``deploy_watcher`` was started with (the paths of its asset events)."""
    runs = deployment.api("GET", "/dags/deploy_watcher/dagRuns", params={"order_by": "run_after"})["dag_runs"]
    paths = []
    for run in runs:
        if run["state"] in ("queued", "running"):
            deployment.wait_for_run("deploy_watcher", run["dag_run_id"], timeout=120)
        entry = deployment.api(
            "GET", f"/dags/deploy_watcher/dagRuns/{run['dag_run_id']}/taskInstances/arrived/xcomEntries/return_value"
        )
        paths.append(entry["value"] if isinstance(entry["value"], list) else json.loads(entry["value"]))
    return paths


def test_a_change_watcher_in_the_real_triggerer_schedules_runs(ready: Deployment, deploy_emulator: Any) -> None:
    """The asset watchers run in the triggerer: a new file starts a run; restarting the triggerer neither
    replays a change already reported nor misses one made while it was down (the asset state store). The
    example watcher DAG (60 s polls, 30 s settling) processes a delivery to ``landing/`` meanwhile."""
    emu = deploy_emulator
    # asset-triggered runs are created by the scheduling loop that also creates interval runs: pause the
    # examples with intervals (they would start runs of their own) and turn that loop on
    for dag_id in EXAMPLES:
        if dag_id != "example_onedrive_watcher":
            ready.api("PATCH", f"/dags/{dag_id}", json={"is_paused": True})
    ready.restart("scheduler", AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="True")

    def polls() -> list[Any]:
        return [r for r in emu.requests if r.method == "GET" and r.path.split("?")[0].endswith("/delta")]

    emu.clear_requests()
    wait_until(lambda: len(polls()) >= 2, 120, "the watcher polling the delta feed", ready)
    emu.advance_time(-600)
    try:  # a delivery already settled (written ten minutes ago by the drive's clock): no 30 s wait
        emu.put_file("landing/delivery.csv", b"id,amount\n1,2.5\n2,4\n3,1\n")
    finally:
        emu.advance_time(600)
    started = time.time()
    emu.put_file("watched/first.csv", b"id\n1\n")
    emu.put_file("watched/notes.txt", b"not a csv")  # outside the glob: no run
    wait_until(
        lambda: ready.query("SELECT count(*) FROM dag_run WHERE dag_id = 'deploy_watcher'")[0][0] >= 1,
        120,
        "a run of deploy_watcher",
        ready,
    )
    (queued,) = ready.query("SELECT min(queued_at) FROM dag_run WHERE dag_id = 'deploy_watcher'")[0]
    print(f"change watcher: file written -> DAG run queued in {queued.timestamp() - started:.2f} s (2 s poll)")
    assert watcher_runs(ready) == [["watched/first.csv"]]

    # the stored position moves once Airflow confirmed the event stored; stop only after a later save
    (seen,) = ready.query("SELECT now()")[0]
    saved = (
        "SELECT max(s.updated_at) FROM asset_state_store s JOIN asset a ON s.asset_id = a.id "
        "WHERE a.name = 'deploy_watched_csv'"
    )
    wait_until(lambda: (ready.query(saved)[0][0] or seen) > seen, 60, "the watcher saving its position", ready)
    ready.services["triggerer"].stop()
    emu.put_file("watched/while-down.csv", b"id\n2\n")
    ready.restart("triggerer")
    wait_until(
        lambda: ready.query("SELECT count(*) FROM dag_run WHERE dag_id = 'deploy_watcher'")[0][0] >= 2,
        180,
        "a run for the change made while the triggerer was down",
        ready,
    )
    emu.put_file("watched/after.csv", b"id\n3\n")
    wait_until(
        lambda: ready.query("SELECT count(*) FROM dag_run WHERE dag_id = 'deploy_watcher'")[0][0] >= 3,
        120,
        "a run for a change after the restart",
        ready,
    )
    assert watcher_runs(ready) == [["watched/first.csv"], ["watched/while-down.csv"], ["watched/after.csv"]]
    events = ready.query(
        "SELECT count(*) FROM asset_event e JOIN asset a ON e.asset_id = a.id WHERE a.name = 'deploy_watched_csv'"
    )
    assert events == [(3,)]  # one event per change: nothing replayed after the restart

    # the example's own watcher (in the same triggerer, through its restart) reported the delivery once
    wait_until(lambda: emu.item("processed/delivery.json") is not None, 300, "the example watcher's run", ready)
    summary = json.loads(emu.read_file("processed/delivery.json"))
    assert summary.pop("kind") in ("created", "modified")  # Graph tells the two apart only by createdDateTime
    assert summary == {"source": "landing/delivery.csv", "rows": 3, "bytes": 24}
    runs = ready.api("GET", "/dags/example_onedrive_watcher/dagRuns")["dag_runs"]
    # at least once: if the triggerer stopped between the event and its confirmation, it fires again
    assert "asset_triggered" in {r["run_type"] for r in runs}, runs
