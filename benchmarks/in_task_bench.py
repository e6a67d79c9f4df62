"""Folder transfers inside real Airflow tasks against the same transfers through the plain client.

Each size N runs, against one Graph emulator in this process:
- the plain client, one fresh Python process per direction (no Airflow imported, each signing in cold as each task
  does): ``download_folder``, then ``upload_folder``;
- ``airflow tasks test`` of a DAG whose real ``OneDriveDownloadOperator`` / ``OneDriveUploadOperator`` move the
  same N files, on a migrated SQLite metadata DB, with Airflow's secrets masker live. The operator's own
  ``execute`` is timed (process start-up and DAG parsing are reported apart), and the number of secrets the
  task's masker holds is recorded.

    python benchmarks/in_task_bench.py                    # N = 100, 1,000, 5,000
    python benchmarks/in_task_bench.py --counts 100,500   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

DAG = """
import json
import time

import pendulum
from airflow.sdk import DAG

from airflow_provider_onedrive.operators.onedrive import OneDriveDownloadOperator, OneDriveUploadOperator


def patterns():
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    return len(_secrets_masker().patterns)


class Timed:
    def execute(self, context):
        started = time.perf_counter()
        result = super().execute(context)
        elapsed = time.perf_counter() - started
        with open({out!r} + "/" + self.task_id + ".json", "w") as handle:
            json.dump({{"seconds": elapsed, "files": len(result), "masker_patterns": patterns()}}, handle)
        return result


class TimedDownload(Timed, OneDriveDownloadOperator):
    pass


class TimedUpload(Timed, OneDriveUploadOperator):
    pass


with DAG(dag_id="in_task_bench", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    TimedDownload(task_id="download", remote_path={remote!r}, local_path={local_down!r})
    TimedUpload(task_id="upload", local_path={local_up!r}, remote_path={remote_up!r})
"""

# One process per direction, each cold like its task: sign-in and drive lookup are inside the timing.
PLAIN = """
import json, sys, time
from airflow_provider_onedrive.fs.connect import build_client

conn, direction, source, target = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
started = time.perf_counter()
client = build_client(credentials={"client_id": conn["login"], "client_secret": conn["password"], **conn["extra"]})
if direction == "download":
    done = client.download_folder(source, target)
else:
    done = client.upload_folder(source, target)
print(json.dumps({"seconds": time.perf_counter() - started, "files": len(done)}))
"""


def run_size(emu: Any, n: int, work: Path, env: dict[str, str]) -> dict[str, Any]:
    remote = f"bench{n}"
    for i in range(n):
        emu.put_file(f"{remote}/d{i % 20}/f{i:05d}.csv", os.urandom(1024).hex().encode())
    local_up = work / f"up{n}"
    for i in range(n):
        (local_up / f"d{i % 20}").mkdir(parents=True, exist_ok=True)
        (local_up / f"d{i % 20}" / f"u{i:05d}.csv").write_bytes(os.urandom(1024).hex().encode())
    conn = json.dumps(emu.connection("app"))
    plain_figures = {}
    for direction, source, target in (
        ("download", remote, str(work / f"plain-down{n}")),
        ("upload", str(local_up), f"plain-up{n}"),
    ):
        plain = subprocess.run(
            [sys.executable, "-c", PLAIN, conn, direction, source, target],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        figures = json.loads(plain.stdout.strip().splitlines()[-1])
        assert figures["files"] == n, figures
        plain_figures[direction] = figures["seconds"]

    dags = work / f"dags{n}"
    dags.mkdir()
    out = work / f"out{n}"
    out.mkdir()
    (dags / "bench_dag.py").write_text(
        textwrap.dedent(
            DAG.format(
                out=str(out),
                remote=remote,
                local_down=str(work / f"task-down{n}"),
                local_up=str(local_up),
                remote_up=f"task-up{n}",
            )
        )
    )
    task_env = dict(env, AIRFLOW__CORE__DAGS_FOLDER=str(dags), AIRFLOW_CONN_ONEDRIVE_DEFAULT=conn)
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "dags", "reserialize"], env=task_env, check=True, capture_output=True)
    walls = {}
    for task in ("download", "upload"):
        started = time.perf_counter()
        subprocess.run(
            [airflow, "tasks", "test", "in_task_bench", task, "2024-03-15"],
            env=task_env,
            check=True,
            capture_output=True,
        )
        walls[task] = time.perf_counter() - started
    rows = {}
    for task in ("download", "upload"):
        figures = json.loads((out / f"{task}.json").read_text())
        assert figures["files"] == n, figures
        rows[task] = {
            "task_s": round(figures["seconds"], 3),
            "plain_s": round(plain_figures[task], 3),
            "ratio": round(figures["seconds"] / plain_figures[task], 2),
            "task_ms_per_file": round(1000 * figures["seconds"] / n, 2),
            "process_wall_s": round(walls[task], 1),
            "masker_patterns": figures["masker_patterns"],
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="100,1000,5000", help="comma-separated file counts")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]

    work = Path(tempfile.mkdtemp(prefix="onedrive-in-task-bench-"))
    home = work / "airflow-home"
    env = dict(
        os.environ,
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)

    from airflow_provider_onedrive.testing import GraphEmulator

    results = []
    try:
        with GraphEmulator() as emu:
            for n in counts:
                rows = run_size(emu, n, work, env)
                for task, row in rows.items():
                    results.append({"files": n, "direction": task, **row})
                    print(json.dumps(results[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| files | direction | in task (s) | plain client (s) | ratio | ms per file in task | masker patterns |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['files']:,} | {r['direction']} | {r['task_s']} | {r['plain_s']} | {r['ratio']}x | "
            f"{r['task_ms_per_file']} | {r['masker_patterns']} |"
        )


if __name__ == "__main__":
    main()
