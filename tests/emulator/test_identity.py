"""Identity platform fidelity: real, unpatched MSAL against the emulator's discovery and token endpoints."""

from __future__ import annotations

import base64
import json
import threading
import time

import msal
import pytest

from airflow_provider_onedrive.testing import GraphEmulator
from tests.emulator.conftest import GRAPH_SCOPE, Graph

pytestmark = pytest.mark.timeout(60)


def confidential(emu: GraphEmulator, credential: object, **kwargs: object) -> msal.ConfidentialClientApplication:
    kwargs.setdefault("instance_discovery", False)
    return msal.ConfidentialClientApplication(
        emu.client_id, client_credential=credential, authority=emu.authority, http_client=emu.http_session(), **kwargs
    )


def public(emu: GraphEmulator, tenant: str | None = None) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(
        emu.client_id,
        authority=f"{emu.authority_host}/{tenant or emu.tenant_id}",
        http_client=emu.http_session(),
        instance_discovery=False,
    )


def aadsts_error(result: dict, error: str, code: int) -> None:
    assert result["error"] == error, result
    assert result["error_codes"] == [code]
    assert result["error_description"].startswith(f"AADSTS{code}: ")
    for part in ("Trace ID: ", "Correlation ID: ", "Timestamp: "):
        assert part in result["error_description"]
    assert result["trace_id"] and result["correlation_id"] and result["timestamp"]


def test_client_secret_token_works_on_graph_and_has_no_refresh_token(emu: GraphEmulator) -> None:
    result = confidential(emu, emu.client_secret).acquire_token_for_client([GRAPH_SCOPE])
    assert result["token_type"] == "Bearer"
    assert "refresh_token" not in result and "id_token" not in result
    assert 0 < result["expires_in"] <= 3600
    response = Graph(emu, result["access_token"]).get("root")
    assert response.status_code == 200 and "root" in response.json()


def test_wrong_secret_is_invalid_client_7000215(emu: GraphEmulator) -> None:
    result = confidential(emu, "not-the-secret").acquire_token_for_client([GRAPH_SCOPE])
    aadsts_error(result, "invalid_client", 7000215)
    assert "not-the-secret" not in json.dumps(result)


def test_unknown_client_is_700016(emu: GraphEmulator) -> None:
    app = msal.ConfidentialClientApplication(
        "11111111-2222-3333-4444-555555555555",
        client_credential="x",
        authority=emu.authority,
        http_client=emu.http_session(),
        instance_discovery=False,
    )
    aadsts_error(app.acquire_token_for_client([GRAPH_SCOPE]), "unauthorized_client", 700016)


def test_unknown_tenant_fails_discovery_with_90002(emu: GraphEmulator) -> None:
    response = emu.http_session().get(f"{emu.authority_host}/nosuchtenant/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]
    with pytest.raises(ValueError, match="double check your tenant"):
        msal.ConfidentialClientApplication(
            emu.client_id,
            client_credential=emu.client_secret,
            authority=f"{emu.authority_host}/nosuchtenant",
            http_client=emu.http_session(),
            instance_discovery=False,
        )


@pytest.mark.parametrize("tenant", ["common", "organizations", "consumers", "contoso.onmicrosoft.com"])
def test_tenant_aliases_and_domain_are_discoverable(emu: GraphEmulator, tenant: str) -> None:
    config = emu.http_session().get(f"{emu.authority_host}/{tenant}/v2.0/.well-known/openid-configuration").json()
    expected = tenant if tenant in ("common", "organizations", "consumers") else emu.tenant_id
    assert config["token_endpoint"] == f"{emu.authority_host}/{expected}/oauth2/v2.0/token"
    assert config["device_authorization_endpoint"].endswith("/oauth2/v2.0/devicecode")


def test_instance_discovery_endpoint_serves_msal_without_instance_discovery_false(emu: GraphEmulator) -> None:
    endpoint = f"{emu.authority_host}/common/discovery/instance"
    app = confidential(emu, emu.client_secret, instance_discovery=endpoint)
    assert "access_token" in app.acquire_token_for_client([GRAPH_SCOPE])
    discovery = [r for r in emu.requests if r.path.startswith("/common/discovery/instance")]
    assert discovery and discovery[0].status == 200 and "authorization_endpoint" in discovery[0].query


@pytest.mark.parametrize("style", ["thumbprint", "public_certificate"])
def test_certificate_assertion_is_verified(emu: GraphEmulator, style: str) -> None:
    cert = emu.app_certificate
    credential = {"private_key": cert.private_key_pem}
    if style == "thumbprint":
        credential["thumbprint"] = cert.thumbprint_sha1  # RS256 with x5t
    else:
        credential["public_certificate"] = cert.certificate_pem  # PS256 with x5t#S256
    result = confidential(emu, credential).acquire_token_for_client([GRAPH_SCOPE])
    assert "access_token" in result, result
    assert Graph(emu, result["access_token"]).get("root").status_code == 200


def test_assertion_signed_by_another_key_is_700027(emu: GraphEmulator, tmp_path: object) -> None:
    from airflow_provider_onedrive.testing.tls import make_app_certificate

    other = make_app_certificate(tmp_path, "other")  # type: ignore[arg-type]
    forged = {"private_key": other.private_key_pem, "thumbprint": emu.app_certificate.thumbprint_sha1}
    aadsts_error(confidential(emu, forged).acquire_token_for_client([GRAPH_SCOPE]), "invalid_client", 700027)
    unknown = {"private_key": other.private_key_pem, "thumbprint": other.thumbprint_sha1}
    aadsts_error(confidential(emu, unknown).acquire_token_for_client([GRAPH_SCOPE]), "invalid_client", 700027)


def test_refresh_token_redemption_through_msal(emu: GraphEmulator) -> None:
    """MSAL gets a new refresh token, client_info and an id_token; the old token keeps working (by default)."""
    app = public(emu)
    first = app.acquire_token_by_refresh_token(emu.refresh_token, ["Files.ReadWrite.All"])
    assert first["refresh_token"] != emu.refresh_token
    claims = json.loads(base64.urlsafe_b64decode(first["client_info"] + "=="))
    assert claims == {"uid": emu.user_id, "utid": emu.tenant_id}
    assert first["id_token_claims"]["preferred_username"] == emu.user_upn
    assert [a["username"] for a in app.get_accounts()] == [emu.user_upn]
    reused = app.acquire_token_by_refresh_token(emu.refresh_token, ["Files.ReadWrite.All"])
    assert "access_token" in reused and reused["refresh_token"] not in (first["refresh_token"], emu.refresh_token)
    second = app.acquire_token_by_refresh_token(first["refresh_token"], ["Files.ReadWrite.All"])
    assert "access_token" in second
    me = Graph(emu, second["access_token"]).get("/me/drive")
    assert me.status_code == 200 and me.json()["id"] == emu.drive_id


def test_single_use_rotation_is_opt_in_and_msal_sees_70000(make_emulator: object) -> None:
    emu = make_emulator(refresh_token_reuse="single_use")  # type: ignore[operator]
    app = public(emu)
    first = app.acquire_token_by_refresh_token(emu.refresh_token, ["Files.ReadWrite.All"])
    assert "access_token" in first
    aadsts_error(app.acquire_token_by_refresh_token(emu.refresh_token, ["Files.ReadWrite.All"]), "invalid_grant", 70000)
    assert "access_token" in app.acquire_token_by_refresh_token(first["refresh_token"], ["Files.ReadWrite.All"])


def test_single_use_reuse_grace_is_a_setting(make_emulator: object) -> None:
    emu = make_emulator(refresh_token_reuse="single_use", refresh_token_reuse_grace=60)  # type: ignore[operator]
    app = public(emu)
    assert "access_token" in app.acquire_token_by_refresh_token(emu.refresh_token, ["Files.ReadWrite.All"])
    assert "access_token" in app.acquire_token_by_refresh_token(emu.refresh_token, ["Files.ReadWrite.All"])
    emu.advance_time(61)
    aadsts_error(app.acquire_token_by_refresh_token(emu.refresh_token, ["Files.ReadWrite.All"]), "invalid_grant", 70000)


def test_refresh_token_lifetime_and_revocation(emu: GraphEmulator) -> None:
    emu.settings.refresh_token_lifetime = 100
    token = emu.issue_refresh_token()
    emu.advance_time(101)
    aadsts_error(public(emu).acquire_token_by_refresh_token(token, ["Files.ReadWrite.All"]), "invalid_grant", 700082)
    fresh = emu.issue_refresh_token()
    assert emu.revoke_refresh_tokens() >= 1
    aadsts_error(public(emu).acquire_token_by_refresh_token(fresh, ["Files.ReadWrite.All"]), "invalid_grant", 50173)


def test_device_code_flow_approved_from_another_thread(emu: GraphEmulator) -> None:
    emu.settings.device_code_interval = 1
    app = public(emu, "organizations")
    flow = app.initiate_device_flow(scopes=["Files.ReadWrite.All"])
    assert flow["user_code"] in flow["message"] and flow["interval"] == 1
    assert emu.pending_device_codes() == [flow["user_code"]]
    pending = app.acquire_token_by_device_flow(dict(flow), exit_condition=lambda f: True)
    aadsts_error(pending, "authorization_pending", 70016)

    def approve() -> None:
        time.sleep(0.3)
        emu.approve_device_code(flow["user_code"], user=emu.users[1])

    threading.Thread(target=approve, daemon=True).start()
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result and "refresh_token" in result
    assert [a["username"] for a in app.get_accounts()] == [emu.users[1]]
    drive = Graph(emu, result["access_token"]).get("/me/drive").json()
    assert drive["owner"]["user"]["email"] == emu.users[1]
    again = public(emu).acquire_token_by_device_flow(flow, exit_condition=lambda f: True)
    aadsts_error(again, "invalid_grant", 70000)


def test_device_code_approved_over_http_and_expiry(emu: GraphEmulator) -> None:
    session = emu.http_session()
    app = public(emu)
    flow = app.initiate_device_flow(scopes=["Files.ReadWrite.All"])
    approve_url = f"{emu.authority_host}/_emulator/device/approve"
    response = session.post(approve_url, data={"user_code": flow["user_code"]}, headers=emu.control_headers())
    assert response.status_code == 200 and response.json()["user"] == emu.user_upn
    assert "access_token" in app.acquire_token_by_device_flow(flow, exit_condition=lambda f: True)
    late = app.initiate_device_flow(scopes=["Files.ReadWrite.All"])
    emu.advance_time(emu.settings.device_code_lifetime + 1)
    aadsts_error(app.acquire_token_by_device_flow(late, exit_condition=lambda f: True), "expired_token", 70020)
    unknown = session.post(
        f"{emu.authority_host}/_emulator/device/approve", json={"user_code": "NOPE"}, headers=emu.control_headers()
    )
    assert unknown.status_code == 404


def test_client_credentials_needs_a_default_scope(emu: GraphEmulator) -> None:
    result = confidential(emu, emu.client_secret).acquire_token_for_client(["Files.ReadWrite.All"])
    aadsts_error(result, "invalid_scope", 1002012)
