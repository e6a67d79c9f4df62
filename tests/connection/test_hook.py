"""OneDriveHook against the emulator: Test Connection messages, the seed surface, masking, Variable store."""

from __future__ import annotations

import json
import time

import pytest

from airflow_provider_onedrive import compat
from airflow_provider_onedrive.auth import clear_credential_cache
from airflow_provider_onedrive.hooks import onedrive as hook_module
from airflow_provider_onedrive.hooks.onedrive import OneDriveHook, VariableTokenStore, variable_name
from airflow_provider_onedrive.token_stores import StoredToken


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("app", "Connected with app-only (client_secret): drive 'OneDrive' (business) of "),
        ("app_cert", "Connected with app-only (certificate): drive 'OneDrive' (business)"),
        ("delegated", "Connected as adele@contoso.onmicrosoft.com with delegated sign-in: drive 'OneDrive'"),
        ("site", "drive 'Documents' (documentLibrary)"),
        ("drive", "drive 'OneDrive' (business)"),
        ("group", "drive 'Documents' (documentLibrary) of Marketing"),
    ],
)
def test_test_connection_success(emu, kind, expected):
    ok, message = OneDriveHook(f"od_{kind}", token_store="memory").test_connection()
    assert ok, message
    assert expected in message
    assert "used of 1.0 TB" in message


def set_conn(monkeypatch, conn_id: str, conn: dict) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def test_test_connection_wrong_secret(emu, monkeypatch):
    conn = emu.connection("app")
    conn["password"] = "wrong-secret-value"
    set_conn(monkeypatch, "od_bad", conn)
    ok, message = OneDriveHook("od_bad").test_connection()
    assert not ok
    assert message.startswith("Sign-in failed: this connection") and "od_bad" not in message
    assert "AADSTS7000215" in message and "Value (not its Secret ID)" in message
    assert "wrong-secret-value" not in message


def test_test_connection_unknown_user(emu, monkeypatch):
    conn = emu.connection("app")
    conn["extra"]["user_id"] = "nobody@contoso.onmicrosoft.com"
    set_conn(monkeypatch, "od_nobody", conn)
    ok, message = OneDriveHook("od_nobody").test_connection()
    assert not ok
    assert "Signed in, but drive_type user 'nobody@contoso.onmicrosoft.com' was not found" in message


def test_test_connection_without_permission(emu):
    emu.settings.app_allowed_drives = ("some-other-drive",)  # Sites.Selected without a grant on this drive
    ok, message = OneDriveHook("od_app").test_connection()
    assert not ok
    assert "(403)" in message and "Sites.Selected" in message


def test_test_connection_config_error_names_field(emu, monkeypatch):
    conn = emu.connection("app")
    del conn["extra"]["tenant_id"]
    set_conn(monkeypatch, "od_notenant", conn)
    ok, message = OneDriveHook("od_notenant").test_connection()
    assert not ok
    assert message.startswith("this connection: extra 'tenant_id' is required")


def test_test_connection_is_bounded_by_short_timeouts(emu, monkeypatch):
    monkeypatch.setattr(hook_module, "TEST_CONNECTION_TIMEOUT", (1.0, 1.0))
    emu.faults.add("latency", kind="graph", seconds=10)
    started = time.monotonic()
    ok, message = OneDriveHook("od_app").test_connection()
    assert not ok
    assert "Cannot reach Microsoft (reading the drive)" in message
    assert time.monotonic() - started < 8  # without the short timeouts the first answer alone takes 10 s


def test_every_token_is_masked(emu, monkeypatch):
    masked: list[str] = []
    monkeypatch.setattr(compat, "mask_secret", masked.append, raising=False)
    hook = OneDriveHook("od_delegated", token_store="memory")
    token = hook.get_token()
    assert token in masked
    assert any(s != token and s != emu.refresh_token for s in masked)  # the rotated refresh token


def test_seed_surface_list_download_get_request(emu):
    for i in range(2100):  # three pages of $top=1000
        emu.put_file(f"many/f{i:04d}.txt", b"x")
    emu.put_file("reports/q1 #1.csv", b"a,b\n1,2\n")
    hook = OneDriveHook("od_app")
    items = hook.list("many")
    assert len(items) == 2100 and {i["name"] for i in items} == {f"f{i:04d}.txt" for i in range(2100)}
    pages = [r for r in emu.requests if r.method == "GET" and "children" in r.path]
    assert len(pages) == 3
    assert hook.download("onedrive://reports/q1 #1.csv") == b"a,b\n1,2\n"
    base = hook.get_drive_base()
    assert hook.get(base)["name"] == "OneDrive"
    assert hook.get(f"{emu.graph_url}/{base}", params={"$select": "id"}).keys() >= {"id"}
    response = hook.request("GET", f"{base}/root:/reports")
    assert response.status_code == 200 and response.json()["folder"]["childCount"] == 1


def test_file_pass_throughs(emu, tmp_path):
    hook = OneDriveHook("od_app")
    local = tmp_path / "in.bin"
    local.write_bytes(b"payload" * 1000)
    hook.upload_file(str(local), "up/in.bin")
    assert hook.exists("up/in.bin") and not hook.exists("up/missing.bin")
    assert emu.read_file("up/in.bin") == local.read_bytes()
    hook.download_file("up/in.bin", str(tmp_path / "out.bin"))
    assert (tmp_path / "out.bin").read_bytes() == local.read_bytes()
    hook.mkdir("made/here")
    hook.delete("up/in.bin")
    assert not hook.exists("up/in.bin") and hook.exists("made/here")


@pytest.fixture
def token_variables(airflow_db):
    """No refresh-token Variables left by earlier tests (their tokens belong to an emulator state since reset)."""
    from airflow_provider_onedrive.compat import delete_variable, variable_keys

    for key in variable_keys("onedrive_refresh_token__"):
        delete_variable(key)
    return airflow_db


def test_default_variable_store_rotates_across_runs(emu, token_variables):
    emu.settings.refresh_token_lifetime = 60
    original = emu.connection("delegated")["extra"]["refresh_token"]
    for _run in range(3):
        clear_credential_cache()
        hook = OneDriveHook("od_delegated")  # default store: the Airflow Variable
        assert hook.get(hook.get_drive_base())["name"] == "OneDrive"
        emu.advance_time(45)
    stored = StoredToken.decode(VariableTokenStore(variable_name("od_delegated")).load())
    assert stored is not None and stored.token != original
    assert variable_name("od_delegated") == "onedrive_refresh_token__od_delegated"


def test_delegated_test_connection_writes_no_variable(emu, token_variables, monkeypatch):
    saved: list[str] = []
    monkeypatch.setattr(VariableTokenStore, "save", lambda self, token: saved.append(self.key))
    assert OneDriveHook("od_delegated").test_connection()[0]
    assert saved == []


def test_upload_state_comes_from_the_extra_then_the_provider_config(emu, monkeypatch, tmp_path):
    from airflow_provider_onedrive.hooks.upload_state import VariableStateStore
    from airflow_provider_onedrive.transfers.state import FsspecStateStore, UploadStateStore

    assert isinstance(OneDriveHook(onedrive_conn_id="od_app").get_conn().state_store, UploadStateStore)
    monkeypatch.setenv("AIRFLOW__ONEDRIVE__UPLOAD_STATE", "airflow")
    assert isinstance(OneDriveHook(onedrive_conn_id="od_app").get_conn().state_store, VariableStateStore)
    conn = emu.connection("app")
    conn["extra"]["upload_state"] = (tmp_path / "shared").as_uri()  # the connection's own choice wins
    monkeypatch.setenv("AIRFLOW_CONN_OD_SHARED", json.dumps(conn))
    store = OneDriveHook(onedrive_conn_id="od_shared").get_conn().state_store
    assert isinstance(store, FsspecStateStore) and store.url == (tmp_path / "shared").as_uri()


def expire_shared_access_token(conn_id: str) -> None:
    """Drop the access token saved beside the refresh token, as if it had expired: the next run redeems."""
    import dataclasses

    from airflow_provider_onedrive.compat import get_variable, set_variable

    record = StoredToken.decode(get_variable(variable_name(conn_id)))
    assert record is not None and record.access_token
    set_variable(variable_name(conn_id), dataclasses.replace(record, access_token=None, expires_at=0.0).encode())


def test_test_connection_keeps_the_newest_token_in_the_real_connections_variable(emu, token_variables, monkeypatch):
    """Airflow tests a copy of the connection under a random id; the rotated token goes to the Variable of the
    connection whose stored token descends from this one's (found by its origin fingerprint), not to junk."""
    from airflow_provider_onedrive.compat import get_variable, variable_keys

    clear_credential_cache()
    hook = OneDriveHook("od_delegated")  # a task run: the connection's Variable now holds a rotated token
    assert hook.get(hook.get_drive_base())["name"] == "OneDrive"
    before = StoredToken.decode(get_variable(variable_name("od_delegated")))
    assert before is not None
    expire_shared_access_token("od_delegated")
    monkeypatch.setenv("AIRFLOW_CONN_TRANSIENTX1", json.dumps(emu.connection("delegated")))  # as the api-server does
    clear_credential_cache()
    emu.advance_time(10)
    ok, message = OneDriveHook("transientx1").test_connection()
    assert ok, message
    after = StoredToken.decode(get_variable(variable_name("od_delegated")))
    assert after is not None and after.token != before.token and after.origin == before.origin
    assert variable_name("transientx1") not in variable_keys("onedrive_refresh_token__")


def test_cli_connection_json_keeps_the_newest_token_where_airflow_keeps_it(emu, token_variables, monkeypatch):
    from airflow_provider_onedrive.commands.common import _from_fields
    from airflow_provider_onedrive.compat import get_variable

    clear_credential_cache()
    hook = OneDriveHook("od_delegated")
    assert hook.get(hook.get_drive_base())["name"] == "OneDrive"
    before = StoredToken.decode(get_variable(variable_name("od_delegated")))
    expire_shared_access_token("od_delegated")
    clear_credential_cache()
    emu.advance_time(10)
    resolved = _from_fields("from-json", emu.connection("delegated"))
    assert resolved.token_factory()
    after = StoredToken.decode(get_variable(variable_name("od_delegated")))
    assert after is not None and before is not None and after.token != before.token


def test_hook_shares_and_reaches_shared_items(emu):
    emu.put_file("out/report.csv", b"r\n")
    hook = OneDriveHook("od_app", token_store="memory")
    link = hook.create_link("out", type="edit", scope="organization")
    assert link.created and hook.create_link("out", type="edit", scope="organization").id == link.id
    assert [p["id"] for p in hook.permissions("out") if "link" in p] == [link.id]
    assert hook.resolve_share(link.url).item_id == link.item_id
    shared = hook.get_shared_client(link.url)
    assert shared.download_bytes("report.csv") == b"r\n"
    shared.upload_bytes(b"n\n", "new.csv")
    assert emu.read_file("out/new.csv") == b"n\n"
    assert OneDriveHook("od_delegated", token_store="memory").shared_with_me() == []  # adele owns what is shared
