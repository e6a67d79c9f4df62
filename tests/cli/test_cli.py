"""The ``airflow-onedrive`` command against the emulator: file commands, tokens, tests, login, revoke, demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from airflow_provider_onedrive.cli import main
from airflow_provider_onedrive.commands.common import EXIT_AUTH, EXIT_NOT_FOUND, EXIT_USAGE
from airflow_provider_onedrive.hashing import quickxorhash

CLI = [sys.executable, "-m", "airflow_provider_onedrive.cli"]


@pytest.fixture
def conn_args(onedrive_emulator, monkeypatch):
    """Arguments that point a command at the emulator's app-only connection (no Airflow involved)."""
    monkeypatch.delenv("ONEDRIVE_CONNECTION", raising=False)
    return ["--connection", json.dumps(onedrive_emulator.connection("app"))]


def test_put_ls_get_rm_round_trip(onedrive_emulator, conn_args, tmp_path, capsys):
    data = os.urandom(700_000)  # above the 4 MiB threshold? no: a simple upload; sessions are covered elsewhere
    source = tmp_path / "q1 report.csv"
    source.write_bytes(data)

    assert main(["put", str(source), "reports/", *conn_args, "--no-progress"]) == 0
    assert onedrive_emulator.read_file("reports/q1 report.csv") == data
    assert "created reports/q1 report.csv" in capsys.readouterr().out

    assert main(["ls", "reports", "-l", *conn_args]) == 0
    listing = capsys.readouterr().out
    assert "reports/q1 report.csv" in listing and quickxorhash(data) in listing and "700000" in listing

    target = tmp_path / "copy.csv"
    assert main(["get", "reports/q1 report.csv", str(target), *conn_args, "--no-progress"]) == 0
    assert target.read_bytes() == data

    assert main(["rm", "reports", *conn_args]) == EXIT_USAGE  # a folder needs -r
    assert "use -r" in capsys.readouterr().err
    assert main(["rm", "-r", "reports", *conn_args]) == 0
    assert onedrive_emulator.item("reports") is None


def test_put_refuses_to_overwrite_unless_asked(onedrive_emulator, conn_args, tmp_path, capsys):
    onedrive_emulator.put_file("a.txt", b"old")
    source = tmp_path / "a.txt"
    source.write_bytes(b"new")
    assert main(["put", str(source), *conn_args, "--no-progress"]) == 1
    assert "already exists" in capsys.readouterr().err.lower() or onedrive_emulator.read_file("a.txt") == b"old"
    assert onedrive_emulator.read_file("a.txt") == b"old"
    assert main(["put", str(source), "--conflict", "replace", *conn_args, "--no-progress"]) == 0
    assert onedrive_emulator.read_file("a.txt") == b"new"


def test_folder_put_get_and_glob_listing(onedrive_emulator, conn_args, tmp_path, capsys):
    local = tmp_path / "batch"
    (local / "sub").mkdir(parents=True)
    (local / "a.csv").write_bytes(b"a")
    (local / "sub" / "b.CSV").write_bytes(b"bb")
    (local / "c.txt").write_bytes(b"ccc")
    assert main(["put", "-r", str(local), "in", *conn_args, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["ls", "in/**/*.csv", *conn_args]) == 0
    assert capsys.readouterr().out.split() == ["in/a.csv", "in/sub/b.CSV"]  # case-insensitive glob
    out = tmp_path / "back"
    assert main(["get", "-r", "in", str(out), *conn_args, "--no-progress"]) == 0
    assert (out / "sub" / "b.CSV").read_bytes() == b"bb" and (out / "c.txt").read_bytes() == b"ccc"


def test_mkdir_and_missing_paths(onedrive_emulator, conn_args, capsys):
    assert main(["mkdir", "x/y/z", *conn_args]) == 0
    assert onedrive_emulator.item("x/y/z") is not None
    assert main(["rm", "nope.txt", *conn_args]) == EXIT_NOT_FOUND
    assert main(["rm", "nope.txt", "--missing-ok", *conn_args]) == 0
    assert main(["get", "nope.txt", *conn_args]) == EXIT_NOT_FOUND


def test_bad_input_is_refused_before_any_request(onedrive_emulator, conn_args, capsys):
    onedrive_emulator.clear_requests()
    assert main(["mkdir", "bad:name", *conn_args]) == EXIT_USAGE
    assert "':'" in capsys.readouterr().err
    assert main(["ls", "--connection", "{not json"]) == EXIT_USAGE
    assert [r for r in onedrive_emulator.requests if "/v1.0/" in r.path] == []


def test_token_warns_and_test_reports_the_drive(onedrive_emulator, conn_args, capsys):
    assert main(["token", *conn_args]) == 0
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert "treat it like a password" in captured.err
    response = onedrive_emulator.http_session().get(
        f"{onedrive_emulator.graph_url}/users/{onedrive_emulator.user_upn}/drive",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200

    assert main(["test", *conn_args]) == 0
    assert "connected to drive" in capsys.readouterr().out


def test_wrong_secret_exits_with_the_auth_code(onedrive_emulator, capsys):
    connection = onedrive_emulator.connection("app")
    connection["password"] = "wrong-secret"
    code = main(["token", "--connection", json.dumps(connection)])
    captured = capsys.readouterr()
    assert code == EXIT_AUTH
    assert "AADSTS7000215" in captured.err and "wrong-secret" not in captured.err + captured.out


def test_emulator_info_file_connections(onedrive_emulator, tmp_path, capsys):
    info = tmp_path / "emu.json"
    info.write_text(json.dumps(onedrive_emulator.info()))
    onedrive_emulator.put_file("hello.txt", b"hi")
    for kind in ("app", "app_cert", "delegated"):
        assert main(["ls", "--emulator-info", str(info), "--emulator-connection", kind]) == 0
        assert "hello.txt" in capsys.readouterr().out
    assert main(["ls", "--emulator-info", str(info), "--emulator-connection", "nope"]) == EXIT_USAGE


def test_conn_id_through_airflow_environment(onedrive_emulator_connection, monkeypatch, capsys):
    monkeypatch.delenv("ONEDRIVE_CONNECTION", raising=False)
    onedrive_emulator_connection.put_file("via-airflow.txt", b"x")
    assert main(["ls", "--conn-id", "onedrive_default"]) == 0
    assert "via-airflow.txt" in capsys.readouterr().out
    assert main(["ls", "--conn-id", "no_such_connection"]) == EXIT_USAGE
    assert "not defined" in capsys.readouterr().err


def test_login_with_device_code_prints_a_working_connection(onedrive_emulator, tmp_path):
    """The device-code flow end to end: the command prints a code, the emulator approves it, a connection results."""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "no-airflow-db")}
    command = [
        *CLI,
        "login",
        "--client-id",
        onedrive_emulator.client_id,
        "--tenant",
        onedrive_emulator.tenant_id,
        "--authority-host",
        onedrive_emulator.authority_host,
        "--graph-url",
        onedrive_emulator.graph_url,
        "--ca-bundle",
        onedrive_emulator.ca_bundle,
        "--output",
        "json",
        "--timeout",
        "60",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []

    def approve() -> None:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("user code: "):
                onedrive_emulator.approve_device_code(line.split(": ", 1)[1].strip())

    reader = threading.Thread(target=approve)
    reader.start()
    proc.wait(timeout=90)
    reader.join(timeout=10)
    assert proc.returncode == 0, proc.stderr.read()
    printed = [line for line in lines if line.startswith("AIRFLOW_CONN_ONEDRIVE_DEFAULT=")]
    assert len(printed) == 1
    connection = json.loads(printed[0].split("=", 1)[1].strip().strip("'"))
    assert connection["extra"]["auth_type"] == "refresh_token" and connection["extra"]["drive_type"] == "me"
    onedrive_emulator.put_file("mine.txt", b"delegated")
    result = subprocess.run(
        [*CLI, "ls", "--connection", json.dumps(connection)], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "mine.txt" in result.stdout


def test_login_stores_in_db_and_revoke_forgets(onedrive_emulator, airflow_db, monkeypatch, capsys):
    """``--output db`` writes the connection to the metadata DB; ``revoke`` deletes stored tokens and it."""
    from airflow.models import Connection, Variable
    from airflow.utils.session import create_session

    from airflow_provider_onedrive.hooks.onedrive import variable_name

    class Flow:
        def __init__(self, settings):
            self.settings = settings

        def initiate(self):
            return {"message": "sign in", "user_code": "CODE"}

        def poll(self, timeout):
            return {"refresh_token": onedrive_emulator.issue_refresh_token(), "id_token_claims": {"name": "Adele"}}

    monkeypatch.setattr("airflow_provider_onedrive.auth.DeviceCodeFlow", Flow)
    args = ["--client-id", onedrive_emulator.client_id, "--tenant", onedrive_emulator.tenant_id]
    args += ["--authority-host", onedrive_emulator.authority_host, "--graph-url", onedrive_emulator.graph_url]
    args += ["--ca-bundle", onedrive_emulator.ca_bundle, "--conn-id", "od_cli_login", "--output", "db"]
    assert main(["login", *args]) == 0
    assert "saved in the Airflow metadata DB" in capsys.readouterr().out
    with create_session() as session:
        stored = session.query(Connection).filter(Connection.conn_id == "od_cli_login").one()
        assert stored.conn_type == "onedrive" and stored.extra_dejson["auth_type"] == "refresh_token"

    Variable.set(variable_name("od_cli_login"), "rotated-token")
    assert main(["revoke", "--conn-id", "od_cli_login", "--delete-connection"]) == 0
    out = capsys.readouterr().out
    assert f"Airflow Variable {variable_name('od_cli_login')}" in out and "connection od_cli_login" in out
    assert "myaccount.microsoft.com" in out
    assert Variable.get(variable_name("od_cli_login"), default_var=None) is None
    with create_session() as session:
        assert session.query(Connection).filter(Connection.conn_id == "od_cli_login").count() == 0


def test_help_reads_well_for_every_command():
    result = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    commands = [
        "ls",
        "get",
        "put",
        "rm",
        "mkdir",
        "share",
        "shared",
        "login",
        "token",
        "test",
        "revoke",
        "demo",
        "emulator",
    ]
    for command in commands:
        assert command in result.stdout
        sub = subprocess.run([*CLI, command, "--help"], capture_output=True, text=True, timeout=60)
        assert sub.returncode == 0 and "usage: airflow-onedrive" in sub.stdout, command


@pytest.mark.airflow
def test_demo_runs_a_dag_and_prints_the_tree(tmp_path):
    result = subprocess.run(
        [*CLI, "demo", "--dag", "example_onedrive_routing", "--airflow-home", str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "example_onedrive_routing         success" in result.stdout
    assert "What landed in the emulated OneDrive" in result.stdout
    assert "  tables/\n    measurements.csv" in result.stdout


def test_get_takes_a_number_of_streams(onedrive_emulator, conn_args, tmp_path, capsys):
    onedrive_emulator.put_file("s/a.bin", b"abc")
    assert main(["get", "s/a.bin", str(tmp_path / "a.bin"), "--streams", "2", *conn_args, "--no-progress"]) == 0
    assert (tmp_path / "a.bin").read_bytes() == b"abc"
    onedrive_emulator.clear_requests()
    assert main(["get", "s/a.bin", str(tmp_path / "b.bin"), "--streams", "0", *conn_args]) == EXIT_USAGE
    assert "streams" in capsys.readouterr().err
    assert [r for r in onedrive_emulator.requests if r.kind != "identity"] == []  # refused before any Graph call
