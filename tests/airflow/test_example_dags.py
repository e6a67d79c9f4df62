"""Every example DAG runs with dag.test() on the migrated SQLite DB against the emulated drive.

Each test checks what landed in the drive (bytes and quickXorHash), not just the run state.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time

import pytest

from airflow_provider_onedrive.hashing import quickxorhash
from tests.airflow.conftest import DS

pytestmark = pytest.mark.airflow


def seed_old(drive, path: str, data: bytes, age: float = 600) -> None:
    """Seed a file the drive last modified ``age`` seconds ago (so ``stable_for`` is already satisfied)."""
    drive.advance_time(-age)
    try:
        drive.put_file(path, data)
    finally:
        drive.advance_time(age)


def names(client, folder: str) -> list[str]:
    return sorted(item.name for item in client.ls(folder)) if client.exists(folder) else []


def assert_stored(drive, client, path: str, data: bytes) -> None:
    """Bytes in the drive equal ``data`` and Graph reports the matching quickXorHash."""
    assert drive.read_file(path) == data
    assert client.info(path).quick_xor_hash == quickxorhash(data)


def raw_sales(ds: str) -> list[dict]:
    """The DAG's input rows (its stand-in for a database query), loaded from the DAG file itself."""
    import importlib.util

    from tests.conftest import EXAMPLE_DAGS

    spec = importlib.util.spec_from_file_location("report_dag", EXAMPLE_DAGS / "example_onedrive_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.daily_sales(ds).to_dict("records")


def test_report_dag_writes_csv_parquet_and_summary(run_dag, drive, client):
    import pandas as pd

    result = run_dag("example_onedrive_report")
    assert result["state"] == "success", result

    # the expected report, aggregated here by hand from the raw rows (not with the DAG's pandas code)
    totals: dict[str, list[float]] = {}
    for row in raw_sales(DS):
        units, revenue = totals.setdefault(row["region"], [0, 0.0])
        totals[row["region"]] = [units + int(row["units"]), revenue + int(row["units"]) * float(row["unit_price"])]
    csv_bytes = drive.read_file(f"reports/{DS}/sales_by_region.csv")
    assert client.info(f"reports/{DS}/sales_by_region.csv").quick_xor_hash == quickxorhash(csv_bytes)
    rows = list(csv.DictReader(io.StringIO(csv_bytes.decode())))
    assert [r["region"] for r in rows] == sorted(totals) == ["east", "north", "south", "west"]
    for r in rows:
        assert int(r["units"]) == totals[r["region"]][0]
        assert float(r["revenue"]) == pytest.approx(totals[r["region"]][1])
    parquet = drive.read_file(f"reports/{DS}/sales_by_region.parquet")
    assert client.info(f"reports/{DS}/sales_by_region.parquet").quick_xor_hash == quickxorhash(parquet)
    frame = pd.read_parquet(io.BytesIO(parquet))
    assert frame["region"].tolist() == [r["region"] for r in rows]
    assert frame["units"].tolist() == [int(r["units"]) for r in rows]
    summary = json.loads(drive.read_file(f"reports/{DS}/summary.json"))
    assert summary == {
        "rows": 4,
        "revenue": pytest.approx(sum(revenue for _, revenue in totals.values())),
        "files": [f"reports/{DS}/sales_by_region.csv", f"reports/{DS}/sales_by_region.parquet"],
    }


def test_archive_dag_moves_inbox_and_writes_audit(run_dag, drive, client):
    drive.put_file("inbox/a.csv", b"id,amount\n1,10\n")
    drive.put_file("inbox/B.CSV", b"id,amount\n2,20\n")
    drive.put_file("inbox/notes.txt", b"not a csv")
    drive.put_file(f"archive/{DS}/a.csv", b"archived earlier the same day")

    result = run_dag("example_onedrive_archive")
    assert result["state"] == "success", result

    assert names(client, "inbox") == ["notes.txt"]
    assert names(client, f"archive/{DS}") == sorted(["B.CSV", "_audit.csv", "a 1.csv", "a.csv"])
    assert_stored(drive, client, f"archive/{DS}/a 1.csv", b"id,amount\n1,10\n")  # conflict="rename"
    assert_stored(drive, client, f"archive/{DS}/a.csv", b"archived earlier the same day")
    assert_stored(drive, client, f"archive/{DS}/B.CSV", b"id,amount\n2,20\n")
    audit = list(csv.DictReader(io.StringIO(drive.read_file(f"archive/{DS}/_audit.csv").decode())))
    assert sorted(audit, key=lambda row: row["source"].lower()) == [
        {
            "date": DS,
            "source": "inbox/a.csv",
            "destination": f"archive/{DS}/a 1.csv",
            "size": "15",
            "quick_xor_hash": quickxorhash(b"id,amount\n1,10\n"),
        },
        {
            "date": DS,
            "source": "inbox/B.CSV",
            "destination": f"archive/{DS}/B.CSV",
            "size": "15",
            "quick_xor_hash": quickxorhash(b"id,amount\n2,20\n"),
        },
    ]


def test_archive_dag_with_an_empty_inbox_succeeds_and_says_so(run_dag, drive):
    result = run_dag("example_onedrive_archive")
    assert result["state"] == "success", result
    assert drive.read_file(f"archive/{DS}/_audit.csv") == b"date,source,destination,size,quick_xor_hash\n"


INCOMING = {
    "incoming/orders_eu.csv": b"id,amount\n1,10.5\n2,4.5\n",
    "incoming/orders_us.csv": b"id,amount\n3,100\n",
}
SUMMARY = b"source,rows,total\norders_eu.csv,2,15.0\norders_us.csv,1,100.0\n"


def test_incoming_dag_with_files_already_there(run_dag, drive, client):
    for path, data in INCOMING.items():
        seed_old(drive, path, data)
    drive.put_file("incoming/readme.txt", b"ignored: not a csv")

    result = run_dag("example_onedrive_incoming")
    assert result["state"] == "success", result
    assert result["tasks"]["download"] == ["success", "success"]  # one mapped download per matched file
    assert_stored(drive, client, f"results/{DS}/summary.csv", SUMMARY)
    assert names(client, "incoming") == ["readme.txt"]
    for path, data in INCOMING.items():
        assert_stored(drive, client, path.replace("incoming/", f"processed/{DS}/"), data)


def test_incoming_dag_defers_until_a_file_arrives(run_dag, drive, client):
    """The sensor pokes once, defers, and the trigger (run inline by dag.test) sees the file appear."""
    drive.put_file("incoming/early.csv", b"")  # below min_size=1: not a delivery

    def prepare(dag) -> None:
        sensor = dag.get_task("wait_for_csv")
        original = (sensor.poke_interval, sensor.stable_for)
        sensor.poke_interval, sensor.stable_for = 0.5, 1
        restore.append(
            lambda: (setattr(sensor, "poke_interval", original[0]), setattr(sensor, "stable_for", original[1]))
        )

        def deliver() -> None:
            time.sleep(3)
            drive.put_file("incoming/late.csv", b"id,amount\n9,1.25\n")

        threading.Thread(target=deliver, daemon=True).start()

    restore: list = []
    try:
        started = time.monotonic()
        result = run_dag("example_onedrive_incoming", prepare=prepare)
    finally:
        for undo in restore:
            undo()
    assert result["state"] == "success", result
    assert time.monotonic() - started > 3
    assert_stored(drive, client, f"results/{DS}/summary.csv", b"source,rows,total\nlate.csv,1,1.25\n")
    assert_stored(drive, client, f"processed/{DS}/late.csv", b"id,amount\n9,1.25\n")
    assert names(client, "incoming") == ["early.csv"]
    polls = [r for r in drive.requests if r.method == "GET" and "incoming:/children" in r.path]
    assert len(polls) >= 3  # the first poke, then the trigger's polls until the file arrived


def test_routing_dag_maps_one_move_per_file(run_dag, drive, client):
    files = {
        "drop/q1.csv": b"a,b\n",
        "drop/contract.PDF": b"%PDF-1.4 fake",
        "drop/budget.xlsx": b"PK fake",
        "drop/README": b"no extension",
    }
    for path, data in files.items():
        drive.put_file(path, data)

    result = run_dag("example_onedrive_routing")
    assert result["state"] == "success", result
    assert sorted(result["tasks"]["route"]) == ["success"] * 4
    assert names(client, "drop") == []
    assert_stored(drive, client, "sorted/tables/q1.csv", b"a,b\n")
    assert_stored(drive, client, "sorted/documents/contract.PDF", b"%PDF-1.4 fake")
    assert_stored(drive, client, "sorted/spreadsheets/budget.xlsx", b"PK fake")
    assert_stored(drive, client, "sorted/other/README", b"no extension")


def test_share_dag_uploads_the_report_and_shares_it(run_dag, drive, client):
    from datetime import UTC, datetime, timedelta

    first = run_dag("example_onedrive_share")
    assert first["state"] == "success", first
    path = f"deliveries/{DS}/report.csv"
    report = drive.read_file(path)
    assert report.decode().splitlines()[0] == "date,region,units,revenue"
    assert report.decode().splitlines()[1] == f"{DS},north,120,1440.0"
    assert_stored(drive, client, path, report)
    links = [p for p in client.permissions(path) if "link" in p]
    assert len(links) == 1 and links[0]["link"]["scope"] == "organization" and links[0]["roles"] == ["read"]
    expires = datetime.fromisoformat(links[0]["expirationDateTime"].replace("Z", "+00:00"))
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    # the link opens the delivered bytes
    (link,) = drive.store.links.values()
    assert client.for_share(link.web_url).download_bytes("") == report


def test_watcher_dag_processes_the_files_its_change_watcher_reports(dagbag, drive):
    """The asset-scheduled DAG's own watcher, driven against the drive; its events feed a run of the DAG."""
    from airflow_provider_onedrive.commands.demo_runner import change_watchers, drive_change_watchers

    dag = dagbag.get_dag("example_onedrive_watcher")
    [trigger] = change_watchers(dag)
    assert trigger.serialize()[1] | {"stable_for": 30.0, "poll_interval": 60.0} == trigger.serialize()[1]
    seed_old(drive, "landing/before.csv", b"id\n0\n")  # there before the watcher started: not a change

    def arrive() -> None:
        drive.put_file("landing/orders.csv", b"id,amount\n1,2.5\n2,4\n")
        drive.put_file("landing/readme.txt", b"not a csv")
        drive.put_file("elsewhere/orders.csv", b"id\n9\n")

    changes = drive_change_watchers(dag, arrive)
    assert [(c["kind"], c["path"], c["size"]) for c in changes] == [("created", "landing/orders.csv", 20)]
    assert changes[0]["quick_xor_hash"] == quickxorhash(b"id,amount\n1,2.5\n2,4\n")

    run = dag.test(run_conf={"changes": changes})
    assert str(run.state) == "success"
    summary = json.loads(drive.read_file("processed/orders.json"))
    assert summary == {"source": "landing/orders.csv", "kind": "created", "rows": 2, "bytes": 20}
    assert drive.item("processed/before.json") is None and drive.item("processed/readme.json") is None
