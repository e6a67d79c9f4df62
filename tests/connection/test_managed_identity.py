"""auth_type managed_identity through MSAL's ManagedIdentityClient against the emulator's identity endpoints.

Microsoft's references: the Instance Metadata Service token endpoint (VMs, scale sets, AKS nodes),
learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token#get-a-token-using-http;
App Service and Functions, learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference.
MSAL reads IDENTITY_ENDPOINT + IDENTITY_HEADER for App Service, and AZURE_POD_IDENTITY_AUTHORITY_HOST in place of
http://169.254.169.254 for IMDS, which is how these tests point it at the emulator.
"""

from __future__ import annotations

import json
import logging
import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_onedrive import compat
from airflow_provider_onedrive.auth import build_token_provider
from airflow_provider_onedrive.clients import drive_client
from airflow_provider_onedrive.config import ConnectionSettings
from airflow_provider_onedrive.errors import OneDriveAuthError, OneDriveConfigError
from airflow_provider_onedrive.graph import token_identity
from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

ENDPOINT_VARIABLES = ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT")


@pytest.fixture(autouse=True)
def _no_ambient_endpoints(monkeypatch):
    for name in ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["vm", "app_service"])
def host(request, emu, monkeypatch) -> str:
    """Run on an emulated VM (IMDS) and on an emulated App Service (IDENTITY_ENDPOINT)."""
    for name, value in emu.managed_identity_env(request.param).items():
        monkeypatch.setenv(name, value)
    return request.param


def mi_settings(emu, conn_id: str = "od_mi", login: str | None = None, **extra: object) -> ConnectionSettings:
    return ConnectionSettings.from_connection_fields(
        conn_id, login, extra.pop("password", None), {**emu.connection("managed_identity")["extra"], **extra}
    )


def identity_requests(emu) -> list:
    return [r for r in emu.requests if r.path.startswith(("/metadata/identity/oauth2/token", "/msi/token"))]


def test_system_assigned_identity_reads_the_drive(emu, host, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_OD_MI", json.dumps(emu.connection("managed_identity")))
    emu.put_file("in/a.txt", b"hello")
    hook = OneDriveHook("od_mi")
    assert hook.download("in/a.txt") == b"hello"
    system = emu.managed_identities[0]
    assert token_identity(hook.get_token()) == f"{emu.tenant_id}/{system.object_id}"
    (request,) = identity_requests(emu)
    assert request.method == "GET"
    assert request.path.startswith("/metadata/" if host == "vm" else "/msi/token")
    query = parse_qs(urlsplit(request.path).query)
    assert query["resource"] == ["https://graph.microsoft.com"]
    assert query["api-version"] == ["2018-02-01" if host == "vm" else "2019-08-01"]
    assert ("metadata" if host == "vm" else "x-identity-header") in request.headers
    ok, message = hook.test_connection()
    assert ok and "app-only (managed_identity)" in message, message


@pytest.mark.parametrize("selector", ["login", "managed_identity_client_id", "object_id", "resource_id"])
def test_user_assigned_identity_is_selected(emu, host, selector):
    chosen = emu.managed_identities[1]
    if selector == "login":
        settings = mi_settings(emu, login=chosen.client_id)
    elif selector == "managed_identity_client_id":
        settings = mi_settings(emu, managed_identity_client_id=chosen.client_id)
    elif selector == "object_id":
        settings = mi_settings(emu, managed_identity_object_id=chosen.object_id)
    else:
        settings = mi_settings(emu, managed_identity_resource_id=chosen.resource_id)
    provider = build_token_provider(settings)
    assert token_identity(provider.get_token()) == f"{emu.tenant_id}/{chosen.object_id}"
    assert provider.identity() == f"{emu.tenant_id}/{chosen.object_id}"
    assert drive_client(settings, provider).info("").is_folder
    query = parse_qs(urlsplit(identity_requests(emu)[0].path).query)
    names = {"vm": "msi_res_id", "app_service": "mi_res_id"}
    expected = {
        "login": "client_id",
        "managed_identity_client_id": "client_id",
        "object_id": "object_id",
        "resource_id": names[host],
    }[selector]
    assert expected in query


def test_unknown_user_assigned_identity_names_the_fix(emu, host):
    settings = mi_settings(emu, managed_identity_client_id="99999999-9999-9999-9999-999999999999")
    with pytest.raises(OneDriveAuthError) as caught:
        build_token_provider(settings).get_token()
    message = str(caught.value)
    assert message.startswith("connection 'od_mi': getting a managed identity token (user-assigned, client_id ")
    if host == "vm":
        assert "Identity not found" in message and "check managed_identity_client_id" in message


@pytest.mark.parametrize(
    ("login", "extra", "expected"),
    [
        (None, {"password": "x"}, r"managed_identity uses no secret, but the password \(client secret\) is set"),
        (None, {"refresh_token": "x"}, r"but extra 'refresh_token' is set"),
        (None, {"managed_identity_client_id": "a", "managed_identity_object_id": "b"}, r"are all set"),
        ("a", {"managed_identity_client_id": "b"}, r"name different managed identities"),
        (None, {"managed_identity_resource_id": "airflow-onedrive"}, r"is not an Azure resource id"),
        (None, {"drive_type": "me"}, r"drive_type 'me' needs a signed-in user"),
        (None, {"scopes": "Files.Read.All User.Read"}, r"must be a single '<resource>/.default'"),
        (None, {"federated_token_file": "/x"}, r"only used by auth_type workload_identity"),
    ],
)
def test_conflicting_fields_fail_before_any_request(emu, login, extra, expected):
    emu.clear_requests()
    with pytest.raises(OneDriveConfigError, match=expected):
        mi_settings(emu, login=login, **extra)
    assert emu.requests == []


def test_tenant_is_optional_and_the_cloud_picks_the_resource(emu):
    settings = mi_settings(emu, cloud="us_gov")
    assert settings.tenant_id == ""
    assert settings.managed_identity_resource == "https://graph.microsoft.us"


def test_no_identity_endpoint_is_a_clear_error(emu, monkeypatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", f"http://127.0.0.1:{port}")
    with pytest.raises(OneDriveAuthError, match=r"the Instance Metadata Service at http://127\.0\.0\.1:\d+ \(is this"):
        build_token_provider(mi_settings(emu)).get_token()


def test_graph_401_asks_the_endpoint_again(emu, host):
    settings = mi_settings(emu)
    provider = build_token_provider(settings)
    client = drive_client(settings, provider)
    client.info("")
    emu.advance_time(2)
    emu.expire_tokens()
    client.info("")
    assert len(identity_requests(emu)) == 2


def test_tokens_are_masked_and_never_logged(emu, host, monkeypatch, caplog):
    masked: list[str] = []
    monkeypatch.setattr(compat, "mask_secret", masked.append, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_OD_MI", json.dumps(emu.connection("managed_identity")))
    caplog.set_level(logging.DEBUG)
    hook = OneDriveHook("od_mi")
    hook.list("")
    token = hook.get_token()
    assert token in masked
    assert token not in caplog.text and token.split(".")[1] not in caplog.text
    if host == "app_service":
        assert emu.managed_identity_env("app_service")["IDENTITY_HEADER"] not in caplog.text


def test_fsspec_storage_options_need_no_client_id(emu, host):
    from airflow_provider_onedrive.fs.onedrive import OneDriveFileSystem

    emu.put_file("data/x.csv", b"1,2\n")
    options = {k: v for k, v in emu.connection("managed_identity")["extra"].items()}
    fs = OneDriveFileSystem(skip_instance_cache=True, **options)
    assert fs.cat_file("data/x.csv") == b"1,2\n"


def test_identity_endpoint_bypasses_proxies(emu, host, monkeypatch):
    """IMDS is link-local and App Service's endpoint is local: neither the connection's nor the environment's
    proxy may carry the request (a dead proxy here would fail every token request)."""
    dead_proxy = "http://127.0.0.1:9"
    monkeypatch.setenv("HTTPS_PROXY", dead_proxy)
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    settings = mi_settings(emu, proxies=dead_proxy)
    provider = build_token_provider(settings)
    assert provider.get_token()
    assert len(identity_requests(emu)) == 1
