"""A real task run (``airflow tasks test`` in a subprocess, with Airflow's log masking on, unlike dag.test)
leaks no client secret, refresh token, access token, federated assertion or upload URL into its output.

The DAG uploads a file big enough for an upload session, and a deliberately careless task prints the secrets
it can reach; Airflow must have been told about every one of them (connection fields by name, tokens by the
provider as soon as they exist), so the output shows ``***`` instead. Pre-authenticated URLs are NOT handed to
Airflow's masker (it recompiles one regex of every secret on each registration, so per-URL registration made
folder transfers quadratic): they never reach a log line in the first place, and the number of secrets the
masker holds after a 1,000-file folder transfer in a real task stays bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(240)]

DAG_ID = "onedrive_masking_check"

DAG_TEMPLATE = """
from __future__ import annotations

import json

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_onedrive.operators.onedrive import (
    OneDriveDownloadOperator,
    OneDriveShareOperator,
    OneDriveUploadOperator,
)


def masker_patterns():
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    return len(_secrets_masker().patterns)


class Counting:
    # records how many secrets the task's masker holds before and after the real operator runs

    def execute(self, context):
        before = masker_patterns()
        result = super().execute(context)
        with open({side_file!r} + "." + self.task_id, "w") as handle:
            json.dump({{"before": before, "after": masker_patterns(), "files": len(result)}}, handle)
        return result


class CountingDownload(Counting, OneDriveDownloadOperator):
    pass


class CountingUpload(Counting, OneDriveUploadOperator):
    pass


class LoudShare(OneDriveShareOperator):
    # prints the link it was asked for, as a careless task might

    def execute(self, context):
        result = super().execute(context)
        print("link = " + result["url"])
        return result


with DAG(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
    OneDriveUploadOperator(task_id="upload_big", local_path={big!r}, remote_path="masking/big.bin", conflict="replace")
    CountingDownload(task_id="download_many", remote_path="many", local_path={many_out!r})
    CountingUpload(task_id="upload_many", local_path={many_in!r}, remote_path="many_up")
    LoudShare(task_id="share_anonymous", path="masking/report.csv", scope="anonymous")

    @task
    def careless():
        from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

        app = OneDriveHook(onedrive_conn_id="onedrive_default")
        user = OneDriveHook(onedrive_conn_id="onedrive_delegated")
        federated = OneDriveHook(onedrive_conn_id="onedrive_federated")
        secrets = {{
            "app_access_token": app.get_token(),
            "user_access_token": user.get_token(),
            "client_secret": app.get_settings().client_secret,
            "refresh_token": user.get_settings().refresh_token,
            "federated_access_token": federated.get_token(),
        }}
        with open(federated.get_settings().federated_token_file) as handle:
            secrets["federated_assertion"] = handle.read().strip()
        with open({side_file!r}, "w") as handle:
            json.dump(secrets, handle)
        for name, value in secrets.items():
            print(f"{{name}} = {{value}}")

    careless()
"""


@pytest.fixture
def masking_env(drive, tmp_path, airflow_db) -> dict[str, str]:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 * 1024 * 1024))  # above the 4 MiB simple-upload threshold: an upload session
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "masking_dag.py").write_text(
        textwrap.dedent(
            DAG_TEMPLATE.format(
                dag_id=DAG_ID,
                big=str(big),
                side_file=str(tmp_path / "secrets.json"),
                many_out=str(tmp_path / "many_out"),
                many_in=str(tmp_path / "many_in"),
            )
        )
    )
    delegated = drive.connection("delegated")
    delegated["extra"]["token_store"] = "memory"
    env = dict(os.environ)
    env.update(
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW_CONN_ONEDRIVE_DEFAULT=json.dumps(drive.connection("app")),
        AIRFLOW_CONN_ONEDRIVE_DELEGATED=json.dumps(delegated),
        AIRFLOW_CONN_ONEDRIVE_FEDERATED=json.dumps(drive.connection("workload_identity")),
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=120)
    env["_AIRFLOW"] = airflow
    env["_SIDE_FILE"] = str(tmp_path / "secrets.json")
    return env


def run_task(env: dict[str, str], task_id: str) -> str:
    result = subprocess.run(
        [env["_AIRFLOW"], "tasks", "test", DAG_ID, task_id, "2024-03-15"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def test_real_task_logs_mask_every_secret(drive, masking_env):
    upload_log = run_task(masking_env, "upload_big")
    careless_log = run_task(masking_env, "careless")
    output = upload_log + careless_log

    assert "masking/big.bin: created" in upload_log
    sessions = [r for r in drive.requests if r.kind == "upload"]
    assert sessions, "the big file should have gone through an upload session"
    assert len(drive.read_file("masking/big.bin")) == 6 * 1024 * 1024

    secrets = json.loads(Path(masking_env["_SIDE_FILE"]).read_text())
    assert all(len(value) > 16 for value in secrets.values())
    for name, value in secrets.items():
        assert value not in output, f"{name} leaked into the task output"
        assert f"{name} = ***" in careless_log
    # the upload URL is a credential: no piece of its query (session guid, tempauth) appears
    assert "tempauth" not in output and "guid=" not in output


def test_an_anonymous_link_does_not_reach_the_task_log(drive, masking_env):
    """The share operator never logs the link, and registers it with the masker: even a task that prints it
    shows ``***``. The link is a bearer credential (anyone with the URL gets the file)."""
    drive.put_file("masking/report.csv", b"total\n42\n")
    output = run_task(masking_env, "share_anonymous")
    links = [link for link in drive.store.links.values() if link.scope == "anonymous"]
    assert len(links) == 1 and links[0].web_url.startswith("https://")
    assert "Shared masking/report.csv: view link, scope anonymous" in output
    assert "link = ***" in output
    assert links[0].web_url not in output and links[0].web_url.rsplit("/", 1)[-1] not in output


def test_masker_stays_bounded_over_a_thousand_file_folder_in_a_real_task(drive, masking_env, tmp_path):
    """1,000 downloads and 1,000 uploads in real task runs: the masker gains no secret per file (each
    registration recompiles one regex of all of them), and every file arrives."""
    many = 1000
    for i in range(many):
        drive.put_file(f"many/sub{i % 10}/f{i:04d}.txt", f"row {i}\n".encode())
    local = tmp_path / "many_in"
    for i in range(many):
        (local / f"d{i % 10}").mkdir(parents=True, exist_ok=True)
        (local / f"d{i % 10}" / f"u{i:04d}.txt").write_text(f"up {i}\n")

    logs = run_task(masking_env, "download_many") + run_task(masking_env, "upload_many")

    side = masking_env["_SIDE_FILE"]
    download = json.loads(Path(f"{side}.download_many").read_text())
    upload = json.loads(Path(f"{side}.upload_many").read_text())
    assert download["files"] == many and upload["files"] == many
    assert len(list((tmp_path / "many_out").rglob("*.txt"))) == many
    assert drive.read_file("many_up/d7/u0997.txt") == b"up 997\n"
    # the connection's secret and one access token (with the masker's adaptations of each), never one per file
    for counts in (download, upload):
        assert counts["after"] - counts["before"] <= 8, counts
        assert counts["after"] <= 40, counts
    assert "tempauth" not in logs and "download.aspx?" not in logs


def test_preauthenticated_urls_are_not_registered_and_never_logged(drive):
    """Pre-authenticated URLs are not handed to Airflow's masker (no per-URL registrations), and urllib3's
    DEBUG request lines (path and query, no host) never carry their credential in the first place."""
    import logging

    from airflow.sdk._shared.secrets_masker import _secrets_masker

    from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    urllib3_log = logging.getLogger("urllib3.connectionpool")
    collect, level = Collect(), urllib3_log.level
    urllib3_log.addHandler(collect)
    urllib3_log.setLevel(logging.DEBUG)
    client = OneDriveHook(onedrive_conn_id="onedrive_default").get_conn()
    client.graph.token_provider.get_token()  # the token's registration happens before we count
    masker = _secrets_masker()
    before = set(masker.patterns)
    urls: list[str] = []
    send = client.graph.session.request

    def spy(method, url, *args, **kwargs):
        if "Authorization" not in (kwargs.get("headers") or {}):
            urls.append(url)
        return send(method, url, *args, **kwargs)

    client.graph.session.request = spy
    try:
        client.upload_bytes(os.urandom(5 * 1024 * 1024), "masking/session.bin")
        client.download_bytes("masking/session.bin")
    finally:
        urllib3_log.removeHandler(collect)
        urllib3_log.setLevel(level)
    assert any("uploadSession" in url for url in urls) and any("download.aspx" in url for url in urls)
    assert set(masker.patterns) == before  # nothing registered per URL
    assert any(" /<redacted>?<redacted> " in line for line in collect.lines)  # urllib3 logs the requests...
    assert not [line for line in collect.lines if "tempauth" in line or "download.aspx" in line]  # ...redacted
    assert any("/v1.0/" in line for line in collect.lines)  # Graph API paths stay readable
