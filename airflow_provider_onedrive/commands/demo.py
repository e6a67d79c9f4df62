"""``airflow-onedrive demo``: the example DAGs in real Airflow against the local Graph emulator.

Starts the emulator, seeds the folders the DAGs read (``inbox/``, ``incoming/``, ``drop/``), migrates a private
SQLite metadata DB, runs every example DAG with ``dag.test()`` in a child process (Airflow reads its
configuration at import, so it gets its own environment), then prints what landed in the emulated OneDrive.
A DAG scheduled on a drive's changes gets the events its change watcher fires for files that arrive meanwhile
(see :mod:`.demo_runner`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from airflow_provider_onedrive.commands.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE

__all__ = ["find_dags_folder", "print_links", "register", "seed_demo_drive"]

#: Files the example DAGs act on: an inbox to archive, deliveries for the sensor, drops to route.
DEMO_FILES: dict[str, bytes] = {
    "inbox/invoices_2024-05.csv": b"invoice,amount\nINV-1,120.00\nINV-2,75.50\n",
    "inbox/credit_notes.csv": b"note,amount\nCN-1,-20.00\n",
    "inbox/readme.txt": b"Only CSV files are archived.\n",
    "incoming/orders_eu.csv": b"id,amount\n1,10.5\n2,4.5\n",
    "incoming/orders_us.csv": b"id,amount\n3,100\n",
    "drop/q2 figures.xlsx": b"PK\x03\x04 not really a spreadsheet",
    "drop/contract.pdf": b"%PDF-1.7 demo",
    "drop/measurements.csv": b"station,temp\nA,21.5\nB,19.0\n",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the example DAGs in Airflow against the local emulator and show what landed",
        description="Start the local Microsoft Graph emulator, run every example DAG with dag.test() on a "
        "private SQLite metadata DB, and print the emulated drive as a tree with sizes and quickXorHash. "
        "Nothing leaves this machine.",
    )
    parser.add_argument("--dags-folder", type=Path, help="folder of example DAGs (default: ./example_dags)")
    parser.add_argument("--dag", action="append", dest="dags", metavar="DAG_ID", help="run only this DAG")
    parser.add_argument("--airflow-home", type=Path, help="AIRFLOW_HOME to use (default: a temporary folder)")
    parser.set_defaults(func=run)


def find_dags_folder(given: Path | None) -> Path | None:
    """The example DAGs: the given folder, ./example_dags, or the one beside the package in a source checkout."""
    candidates = (
        [given] if given else [Path.cwd() / "example_dags", Path(__file__).resolve().parents[2] / "example_dags"]
    )
    for candidate in candidates:
        if candidate is not None and candidate.is_dir() and any(candidate.glob("*.py")):
            return candidate.resolve()
    return None


def seed_demo_drive(emulator: Any) -> None:
    """Put the demo's input files in the emulated drive; deliveries are dated ten minutes back (settled)."""
    emulator.advance_time(-600)
    try:
        for path, data in DEMO_FILES.items():
            emulator.put_file(path, data)
    finally:
        emulator.advance_time(600)


def _dag_ids(folder: Path) -> list[str]:
    ids = []
    for path in sorted(folder.glob("*.py")):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("dag_id="):
                ids.append(stripped.split("=", 1)[1].strip().strip(",").strip("\"'"))
    return ids


def _airflow_env(home: Path, dags: Path, connection: dict[str, Any]) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW_CONN_ONEDRIVE_DEFAULT": json.dumps(connection),
        }
    )
    return env


def run(args: argparse.Namespace) -> int:
    from airflow_provider_onedrive.testing import GraphEmulator

    dags = find_dags_folder(args.dags_folder)
    if dags is None:
        print("error: no example DAGs found; run from a source checkout or pass --dags-folder", file=sys.stderr)
        return EXIT_USAGE
    dag_ids = args.dags or _dag_ids(dags)
    home = args.airflow_home or Path(tempfile.mkdtemp(prefix="onedrive-demo-"))
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    with GraphEmulator() as emulator:
        seed_demo_drive(emulator)
        env = _airflow_env(home, dags, emulator.connection("app"))
        print(f"emulator: Graph at {emulator.graph_url}; Airflow home {home}")
        print("migrating the Airflow metadata DB (SQLite)...", flush=True)
        subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
        log_path = home / "demo-dag-runs.log"
        with open(log_path, "w") as log:
            runner = [sys.executable, "-m", "airflow_provider_onedrive.commands.demo_runner", str(dags), *dag_ids]
            print(f"running {len(dag_ids)} example DAGs with dag.test() (log: {log_path})...", flush=True)
            result = subprocess.run(runner, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        for line in result.stdout.splitlines():
            if line.startswith("WATCH "):
                print(f"  {line[len('WATCH ') :]}")
        states = _parse_states(result.stdout)
        for dag_id in dag_ids:
            print(f"  {dag_id:32} {states.get(dag_id, 'did not run')}")
        print()
        print_tree(emulator.connection("app"))
        print_links(emulator)
    failed = [d for d in dag_ids if states.get(d) != "success"]
    if failed or result.returncode:
        print(f"\n{len(failed)} DAG(s) did not succeed; see {log_path}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _parse_states(stdout: str) -> dict[str, str]:
    states = {}
    for line in stdout.splitlines():
        if line.startswith("DAG "):
            _, dag_id, state = line.split(" ", 2)
            states[dag_id] = state
    return states


def print_links(emulator: Any, stream: Any = None) -> None:
    """Print the sharing links the DAGs created (item, type, scope, expiry; never the URL, a credential)."""
    from airflow_provider_onedrive.testing.wire import iso_time

    out = stream or sys.stdout
    store = emulator.store
    links = list(store.links.values())
    if not links:
        return
    print("Sharing links created (their URLs are in the share tasks' XCom, not printed here):", file=out)
    for link in links:
        drive = store.drives[link.drive_id]
        item = drive.items.get(link.item_id)
        where = "/".join(store.names(drive, item)) if item is not None else "(deleted item)"
        expiry = f"expires {iso_time(link.expires)}" if link.expires else "no expiry"
        print(f"  {where}: {link.type} link, scope {link.scope}, {expiry}", file=out)


def print_tree(connection: dict[str, Any], stream: Any = None) -> None:
    """Print every folder and file of the connection's drive, depth first, with sizes and quickXorHash."""
    from airflow_provider_onedrive.commands.common import _from_fields

    out = stream or sys.stdout
    client = _from_fields("demo", connection).client()
    items = sorted(client.ls("", recursive=True), key=lambda i: [part.lower() for part in i.path.split("/")])
    print("What landed in the emulated OneDrive (size, quickXorHash):", file=out)
    for item in items:
        indent = "  " * item.path.count("/")
        if item.is_folder:
            print(f"{indent}{item.name}/", file=out)
        else:
            print(f"{indent}{item.name:{max(1, 44 - len(indent))}} {item.size:>9} B  {item.quick_xor_hash}", file=out)
    files = [i for i in items if not i.is_folder]
    print(f"{len(files)} files in {len(items) - len(files)} folders, {sum(i.size for i in files)} bytes", file=out)
