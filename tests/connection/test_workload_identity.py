"""auth_type workload_identity through real MSAL against the emulator: a projected service-account token exchanged
as a federated client assertion (jwt-bearer) for a Graph token.

Microsoft's references: workload identity federation,
learn.microsoft.com/entra/workload-id/workload-identity-federation; the request,
learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
#third-case-access-token-request-with-a-federated-credential;
AKS's variables (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST),
learn.microsoft.com/azure/aks/workload-identity-overview; AADSTS70021 as Entra answers it,
github.com/Azure/azure-workload-identity docs/book/src/troubleshooting.md.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from airflow_provider_onedrive import compat
from airflow_provider_onedrive.auth import FederatedTokenFile, build_token_provider
from airflow_provider_onedrive.clients import drive_client
from airflow_provider_onedrive.config import ConnectionSettings
from airflow_provider_onedrive.errors import OneDriveAuthError, OneDriveConfigError
from airflow_provider_onedrive.hooks.onedrive import OneDriveHook
from airflow_provider_onedrive.testing.federation import TrustedIssuer
from tests.connection.helpers import token_requests

AKS_VARIABLES = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")


@pytest.fixture(autouse=True)
def _no_ambient_aks_variables(monkeypatch):
    for name in AKS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def wi_settings(emu, conn_id: str = "od_wi", **extra: object) -> ConnectionSettings:
    conn = emu.connection("workload_identity")
    fields = {**conn["extra"], **extra}
    return ConnectionSettings.from_connection_fields(
        conn_id, fields.pop("login", conn["login"]), fields.pop("password", None), fields
    )


def test_hook_reads_the_drive_with_a_federated_token(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_OD_WI", json.dumps(emu.connection("workload_identity")))
    emu.put_file("reports/q1.csv", b"a,b\n")
    hook = OneDriveHook("od_wi")
    assert [item["name"] for item in hook.list("reports")] == ["q1.csv"]
    assert hook.download("reports/q1.csv") == b"a,b\n"
    assert len(token_requests(emu)) == 1
    assert [subject for subject, _ in emu.federation.accepted] == [emu.settings.federated_subject]
    ok, message = hook.test_connection()
    assert ok, message
    assert "app-only (workload_identity)" in message


def test_aks_variables_fill_empty_fields(emu, monkeypatch):
    """A connection that names only the auth type and the drive works inside an AKS pod."""
    for name, value in emu.workload_identity_env().items():
        monkeypatch.setenv(name, value)
    assert os.environ["AZURE_AUTHORITY_HOST"].endswith("/")  # AKS sets it with a trailing slash
    extra = {
        "auth_type": "workload_identity",
        "drive_type": "user",
        "user_id": emu.user_upn,
        "graph_url": emu.graph_url,
        "ca_bundle": emu.ca_bundle,
    }
    settings = ConnectionSettings.from_connection_fields("od_aks", None, None, extra)
    assert (settings.client_id, settings.tenant_id) == (emu.client_id, emu.tenant_id)
    assert settings.federated_token_file == os.environ["AZURE_FEDERATED_TOKEN_FILE"]
    assert settings.authority_host == emu.authority_host
    assert drive_client(settings).info("").is_folder


def test_connection_fields_win_over_aks_variables(emu, monkeypatch, tmp_path):
    other = emu.write_federated_token(tmp_path / "other-token")
    monkeypatch.setenv("AZURE_CLIENT_ID", "11111111-1111-1111-1111-111111111111")
    monkeypatch.setenv("AZURE_TENANT_ID", "fabrikam.onmicrosoft.com")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "absent"))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/")
    settings = wi_settings(emu, federated_token_file=str(other))
    assert (settings.client_id, settings.tenant_id) == (emu.client_id, emu.tenant_id)
    assert (settings.federated_token_file, settings.authority_host) == (str(other), emu.authority_host)
    assert build_token_provider(settings).get_token()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"login": None}, r"application \(client\) id: put it in the login field, or set the AZURE_CLIENT_ID"),
        ({"tenant_id": None}, r"extra 'tenant_id' is required for auth_type workload_identity.*AZURE_TENANT_ID"),
        ({"federated_token_file": None}, r"'federated_token_file' or the AZURE_FEDERATED_TOKEN_FILE environment"),
        ({"federated_token_file": "/nonexistent/azure-identity-token"}, r"does not exist on this machine"),
        ({"federated_token_file": "relative/token"}, r"must be an absolute path"),
        ({"password": "a-secret"}, r"workload_identity uses no secret, but the password \(client secret\) is set"),
        ({"managed_identity_client_id": "x"}, r"only used by auth_type managed_identity"),
        ({"drive_type": "me"}, r"drive_type 'me' needs a signed-in user"),
    ],
)
def test_missing_or_conflicting_fields_fail_before_any_request(emu, change, expected):
    emu.clear_requests()
    with pytest.raises(OneDriveConfigError, match=expected) as caught:
        wi_settings(emu, **change)
    assert str(caught.value).startswith("connection 'od_wi': ")
    assert emu.requests == []


def test_missing_file_named_by_the_variable(emu, monkeypatch, tmp_path):
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "gone"))
    with pytest.raises(OneDriveConfigError, match=r"from the AZURE_FEDERATED_TOKEN_FILE environment variable"):
        wi_settings(emu, federated_token_file=None)


def test_rotated_file_is_read_at_the_next_token_request(emu):
    settings = wi_settings(emu)
    provider = build_token_provider(settings)
    first = provider.get_token()
    assert provider.get_token() == first  # served from the cache: the file is not even read
    # The kubelet rotates the projected token (atomically, a new file): this one is for another registered
    # service account, so the emulator shows which file content was sent.
    emu.add_federated_credential("system:serviceaccount:airflow:rotated")
    emu.write_federated_token(settings.federated_token_file, "system:serviceaccount:airflow:rotated")
    second = provider.get_token(force_refresh=True)
    assert second != first
    assert [subject for subject, _ in emu.federation.accepted] == [
        emu.settings.federated_subject,
        "system:serviceaccount:airflow:rotated",
    ]


def test_rotation_to_an_unregistered_subject_is_refused_then_recovers(emu):
    settings = wi_settings(emu)
    provider = build_token_provider(settings)
    provider.get_token()
    emu.write_federated_token(settings.federated_token_file, "system:serviceaccount:other:intruder")
    with pytest.raises(OneDriveAuthError, match="AADSTS70021") as caught:
        provider.get_token(force_refresh=True)
    assert caught.value.inner_code == "AADSTS70021"
    emu.write_federated_token(settings.federated_token_file)
    assert provider.get_token(force_refresh=True)


def test_unchanged_file_is_reused_only_until_the_assertion_nearly_expires(emu, tmp_path):
    """Re-read on mtime/size/inode change, and past the cached assertion's own expiry (never reused past it)."""
    path = tmp_path / "token"
    issuer = emu.trusted_issuer
    now = time.time()
    first = issuer.token(lifetime=3600, now=now)
    second = issuer.token(lifetime=3600, now=now)
    assert len(first) == len(second) and first != second
    path.write_text(first)
    reader = FederatedTokenFile(str(path), "od_wi")
    assert reader() == first
    stamp = path.stat()
    with open(path, "r+", encoding="ascii") as handle:  # same inode, same size, same mtime: looks unchanged
        handle.write(second)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert reader() == first
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
    assert reader() == second

    expiring = issuer.token(lifetime=30, now=now)  # within FederatedTokenFile.EXPIRY_MARGIN of its exp
    replacement = issuer.token(lifetime=30, now=now)
    path.write_text(expiring)
    reader = FederatedTokenFile(str(path), "od_wi")
    assert reader() == expiring
    stamp = path.stat()
    with open(path, "r+", encoding="ascii") as handle:
        handle.write(replacement)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert reader() == replacement


def test_unreadable_or_empty_file_is_a_clear_auth_error(emu):
    settings = wi_settings(emu)
    provider = build_token_provider(settings)
    open(settings.federated_token_file, "w").close()
    with pytest.raises(OneDriveAuthError, match=r"federated token file .* is empty"):
        provider.get_token()
    os.unlink(settings.federated_token_file)
    with pytest.raises(OneDriveAuthError, match=r"cannot read the federated token file .*No such file"):
        provider.get_token()
    assert token_requests(emu) == []


@pytest.mark.parametrize(
    ("mint", "code"),
    [
        (lambda emu, path: emu.write_federated_token(path, issuer="https://oidc.example.invalid/evil/"), "AADSTS70021"),
        (lambda emu, path: emu.write_federated_token(path, audience="api://SomethingElse"), "AADSTS70021"),
        (lambda emu, path: emu.write_federated_token(path, "system:serviceaccount:airflow:x"), "AADSTS70021"),
        (lambda emu, path: emu.write_federated_token(path, lifetime=-60), "AADSTS700024"),
        (lambda emu, path: TrustedIssuer(emu.trusted_issuer.issuer).mint(path), "AADSTS50013"),
    ],
    ids=["wrong-issuer", "wrong-audience", "wrong-subject", "expired", "signed-by-another-key"],
)
def test_assertions_entra_would_refuse(emu, mint, code):
    settings = wi_settings(emu)
    mint(emu, settings.federated_token_file)
    assertion = Path(settings.federated_token_file).read_text()
    with pytest.raises(OneDriveAuthError) as caught:
        build_token_provider(settings).get_token()
    assert caught.value.inner_code == code
    message = str(caught.value)
    assert message.startswith(f"connection 'od_wi': getting an app-only token failed: {code}: ")
    assert assertion not in message and assertion.split(".")[1] not in message
    assert emu.federation.accepted == []


def test_no_assertion_or_token_reaches_logs_and_both_are_masked_first(emu, monkeypatch, caplog):
    masked: list[str] = []
    monkeypatch.setattr(compat, "mask_secret", masked.append, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_OD_WI", json.dumps(emu.connection("workload_identity")))
    caplog.set_level(logging.DEBUG)
    hook = OneDriveHook("od_wi")
    token = hook.get_token()
    hook.list("")
    settings = hook.get_settings()
    assertion = Path(settings.federated_token_file).read_text()
    assert masked.index(assertion) < masked.index(token)  # the assertion is masked before it is sent
    # A refused rotated assertion: its error, logged, holds neither.
    emu.write_federated_token(settings.federated_token_file, issuer="https://oidc.example.invalid/evil/")
    refused = Path(settings.federated_token_file).read_text()
    with pytest.raises(OneDriveAuthError) as caught:
        hook.get_token_provider().get_token(force_refresh=True)
    logging.getLogger("test").error("token failure: %s", caught.value)
    assert refused in masked
    for secret in (assertion, token, refused):
        assert secret not in caplog.text
        assert secret.split(".")[1] not in caplog.text


def test_fsspec_storage_options_from_aks_variables(emu, monkeypatch):
    from airflow_provider_onedrive.fs.onedrive import OneDriveFileSystem

    for name, value in emu.workload_identity_env().items():
        monkeypatch.setenv(name, value)
    emu.put_file("data/y.csv", b"3,4\n")
    fs = OneDriveFileSystem(
        skip_instance_cache=True,
        auth_type="workload_identity",
        drive_type="user",
        user_id=emu.user_upn,
        graph_url=emu.graph_url,
        ca_bundle=emu.ca_bundle,
    )
    assert fs.cat_file("data/y.csv") == b"3,4\n"
