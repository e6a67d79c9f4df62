"""``airflow-onedrive emulator`` as a user runs it: a subprocess, its info file, MSAL + requests, then SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msal
import pytest
import requests

from airflow_provider_onedrive.cli import build_parser
from airflow_provider_onedrive.testing import command

pytestmark = pytest.mark.timeout(90)
COMMAND = Path(sys.executable).with_name("airflow-onedrive")


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the emulator did not write its info file"
        time.sleep(0.05)
    return json.loads(path.read_text())


def test_parser_registers_the_emulator_command() -> None:
    args = build_parser().parse_args(["emulator", "--port", "0", "--mode", "personal", "--set", "token_lifetime=60"])
    assert args.command == "emulator" and callable(args.func) and args.mode == "personal"


def test_command_serves_until_sigint(tmp_path: Path) -> None:
    info_file = tmp_path / "info.json"
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    (tmp_path / ".info.json.tmp").symlink_to(victim)  # the temp name older versions wrote through
    rules = tmp_path / "faults.json"
    rules.write_text(json.dumps([{"action": "status", "status": 503, "path": "/children$", "nth": 1}]))
    process = subprocess.Popen(
        [str(COMMAND), "emulator", "--info-file", str(info_file), "--faults", str(rules), "--set", "copy_delay=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = wait_for(info_file, process)
        assert oct(info_file.stat().st_mode & 0o777) == "0o600" and not info_file.is_symlink()
        assert victim.read_text() == "untouched"
        assert info["graph_url"].endswith("/v1.0") and "/" not in info["authority_host"].split("//")[1]
        assert set(info["connections"]) >= {"app", "app_cert", "delegated"}
        session = requests.Session()
        session.verify = info["ca_bundle"]
        session.trust_env = False
        app_conn = info["connections"]["app"]
        app = msal.ConfidentialClientApplication(
            app_conn["login"],
            client_credential=app_conn["password"],
            authority=f"{info['authority_host']}/{info['tenant_id']}",
            http_client=session,
            instance_discovery=False,
        )
        token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
        drive = f"{info['graph_url']}/users/{app_conn['extra']['user_id']}/drive"
        headers = {"Authorization": f"Bearer {token}"}
        put = session.put(f"{drive}/root:/cli/hello.txt:/content", data=b"hi from cli", headers=headers)
        assert put.status_code == 201
        assert session.get(f"{drive}/root:/cli:/children", headers=headers).status_code == 503  # the rules file
        listing = session.get(f"{drive}/root:/cli:/children", headers=headers).json()
        assert [i["name"] for i in listing["value"]] == ["hello.txt"]
        location = session.get(f"{drive}/root:/cli/hello.txt:/content", headers=headers, allow_redirects=False)
        assert session.get(location.headers["Location"]).content == b"hi from cli"
        delegated = info["connections"]["delegated"]["extra"]
        public = msal.PublicClientApplication(
            app_conn["login"],
            authority=f"{info['authority_host']}/organizations",
            http_client=session,
            instance_discovery=False,
        )
        flow = public.initiate_device_flow(scopes=["Files.ReadWrite.All"])
        form = {"user_code": flow["user_code"]}
        assert session.post(info["device_approve_url"], data=form).status_code == 401  # no control token
        token_header = {info["control_token_header"]: info["control_token"]}
        approve = session.post(info["device_approve_url"], data=form, headers=token_header)
        assert approve.status_code == 200
        served_info = session.get(f"{info['authority_host']}/_emulator/info", headers=token_header)
        assert served_info.json()["control_token"] == info["control_token"]
        assert "access_token" in public.acquire_token_by_device_flow(flow, exit_condition=lambda f: True)
        refreshed = public.acquire_token_by_refresh_token(delegated["refresh_token"], ["Files.ReadWrite.All"])
        assert "access_token" in refreshed
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert json.loads(stdout)["tenant_id"] == info["tenant_id"]
    assert "stopped" in stderr and not info_file.exists()
    assert not Path(info["ca_bundle"]).exists()


def test_command_rejects_bad_settings(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(COMMAND), "emulator", "--set", "no_such_setting=1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert result.returncode == 2 and "no_such_setting" in result.stderr


def test_info_file_does_not_follow_planted_symlinks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    info_file = tmp_path / "info.json"
    predictable = tmp_path / ".info.json.tmp"  # the name older versions used
    guessed = tmp_path / ".info.json.guessed.tmp"  # an attacker who guessed the random part
    predictable.symlink_to(victim)
    guessed.symlink_to(victim)
    suffixes = iter(["guessed", "fresh"])
    monkeypatch.setattr(command, "_temp_suffix", lambda: next(suffixes))
    command._write_private(info_file, '{"control_token": "t"}\n')
    assert victim.read_text() == "untouched"
    assert predictable.is_symlink() and guessed.is_symlink()  # left alone, not written through or replaced
    assert json.loads(info_file.read_text()) == {"control_token": "t"}
    assert not info_file.is_symlink() and oct(info_file.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".info.json.guessed.tmp",
        ".info.json.tmp",
        "info.json",
        "victim.txt",
    ]


def test_info_file_replaces_a_symlink_at_its_own_path(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    info_file = tmp_path / "deeper" / "info.json"
    info_file.parent.mkdir()
    info_file.symlink_to(victim)
    old_umask = os.umask(0)
    try:
        command._write_private(info_file, "{}\n")
    finally:
        os.umask(old_umask)
    assert victim.read_text() == "untouched"
    assert not info_file.is_symlink() and info_file.read_text() == "{}\n"
    assert oct(info_file.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in info_file.parent.iterdir()] == ["info.json"]


def test_info_file_gives_up_when_every_temp_name_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".info.json.taken.tmp").symlink_to(tmp_path / "victim.txt")
    monkeypatch.setattr(command, "_temp_suffix", lambda: "taken")
    with pytest.raises(FileExistsError, match="temporary file"):
        command._write_private(tmp_path / "info.json", "{}")
    assert not (tmp_path / "info.json").exists() and not (tmp_path / "victim.txt").exists()
