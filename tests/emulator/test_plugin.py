"""The pytest plugin's fixtures: one server per session, reset per test, and the Airflow connection env var."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow_provider_onedrive.testing import GraphEmulator

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(120)


def test_first_test_changes_state(onedrive_emulator: GraphEmulator) -> None:
    onedrive_emulator.put_file("leftover.txt", b"x")
    onedrive_emulator.faults.add("status", status=503)
    onedrive_emulator.settings.page_size = 7
    onedrive_emulator.advance_time(10_000)
    assert onedrive_emulator.item("leftover.txt") is not None


def test_next_test_gets_a_clean_emulator(
    onedrive_emulator: GraphEmulator, onedrive_emulator_server: GraphEmulator
) -> None:
    assert onedrive_emulator is onedrive_emulator_server
    assert onedrive_emulator.item("leftover.txt") is None
    assert onedrive_emulator.faults.rules == [] and onedrive_emulator.requests == []
    assert onedrive_emulator.settings.page_size == 200 and onedrive_emulator.clock.offset == 0
    response = onedrive_emulator.http_session().get(f"{onedrive_emulator.authority_host}/_emulator/health")
    assert response.json() == {"status": "ok"}


def test_connection_fixture_sets_airflow_env(onedrive_emulator_connection: GraphEmulator) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_ONEDRIVE_DEFAULT"])
    assert conn == onedrive_emulator_connection.connection("app")
    assert conn["conn_type"] == "onedrive" and conn["login"] == onedrive_emulator_connection.client_id
    extra = conn["extra"]
    assert extra["auth_type"] == "client_secret" and extra["drive_type"] == "user"
    assert extra["user_id"] == onedrive_emulator_connection.user_upn
    assert extra["graph_url"].endswith("/v1.0") and extra["authority_host"].startswith("https://")
    assert os.path.exists(extra["ca_bundle"])


def test_connection_kinds(onedrive_emulator: GraphEmulator) -> None:
    cert = onedrive_emulator.connection("app_cert")
    assert "password" not in cert and cert["extra"]["auth_type"] == "certificate"
    assert Path(cert["extra"]["certificate_path"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in Path(cert["extra"]["private_key_path"]).read_text()
    delegated = onedrive_emulator.connection("delegated")
    assert delegated["extra"]["auth_type"] == "refresh_token" and delegated["extra"]["drive_type"] == "me"
    assert delegated["extra"]["refresh_token"] == onedrive_emulator.refresh_token
    assert delegated["extra"]["scopes"] == "Files.ReadWrite.All offline_access User.Read"
    assert onedrive_emulator.connection("site")["extra"]["site"] == onedrive_emulator.site_url
    assert onedrive_emulator.connection("drive")["extra"]["drive_id"] == onedrive_emulator.drive_id
    assert onedrive_emulator.connection("group")["extra"]["group_id"] == onedrive_emulator.group_id
    with pytest.raises(ValueError, match="unknown connection kind"):
        onedrive_emulator.connection("nope")


def test_settings_fixture_can_be_overridden(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import pytest

@pytest.fixture(scope="session")
def onedrive_emulator_settings():
    return {"mode": "personal", "tenant": "fabrikam"}
"""
    )
    pytester.makepyfile(
        """
def test_personal(onedrive_emulator):
    assert onedrive_emulator.settings.mode == "personal"
    assert onedrive_emulator.user_upn == "adele@fabrikam.onmicrosoft.com"
    assert onedrive_emulator.drive().drive_type == "personal"
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_workload_identity_fixture(onedrive_workload_identity: GraphEmulator) -> None:
    from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

    emu = onedrive_workload_identity
    conn = json.loads(os.environ["AIRFLOW_CONN_ONEDRIVE_DEFAULT"])
    assert "login" not in conn and "tenant_id" not in conn["extra"]
    assert os.environ["AZURE_CLIENT_ID"] == emu.client_id
    token_file = Path(os.environ["AZURE_FEDERATED_TOKEN_FILE"])
    assert token_file.stat().st_mode & 0o777 == 0o600
    emu.put_file("x.txt", b"x")
    assert OneDriveHook().download("x.txt") == b"x"
    assert emu.federation.accepted[0][0] == emu.settings.federated_subject


@pytest.mark.parametrize("onedrive_managed_identity", ["vm", "app_service"], indirect=True)
def test_managed_identity_fixture(onedrive_managed_identity: GraphEmulator) -> None:
    from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

    onedrive_managed_identity.put_file("y.txt", b"y")
    assert OneDriveHook().download("y.txt") == b"y"
