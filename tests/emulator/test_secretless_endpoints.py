"""Fidelity of the emulator's secretless endpoints, in raw HTTP, against Microsoft's documentation.

- Federated credential exchange: learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
  #third-case-access-token-request-with-a-federated-credential (``client_assertion_type`` jwt-bearer, the external
  token as ``client_assertion``); federated identity credentials (issuer, subject, audience
  ``api://AzureADTokenExchange``): learn.microsoft.com/graph/api/resources/federatedidentitycredential; the
  AADSTS70021 text: github.com/Azure/azure-workload-identity docs/book/src/troubleshooting.md.
- IMDS: learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token
  #get-a-token-using-http (``Metadata: true``, ``api-version=2018-02-01``, ``resource``, ``client_id`` /
  ``object_id`` / ``msi_res_id``; the sample response's ``expires_in`` / ``expires_on`` are strings; "Error
  handling": 400 ``bad_request_102`` "Required metadata header not specified").
- App Service / Functions: learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference
  (``X-IDENTITY-HEADER``, ``api-version=2019-08-01``, ``client_id`` / ``principal_id`` / ``mi_res_id``;
  ``expires_on`` as a string of epoch seconds).
"""

from __future__ import annotations

import time

import msal
import pytest

from airflow_provider_onedrive.testing import GraphEmulator
from airflow_provider_onedrive.testing.federation import FEDERATION_AUDIENCE, JWT_BEARER
from tests.emulator.conftest import GRAPH_SCOPE

pytestmark = pytest.mark.timeout(60)


def exchange(emu: GraphEmulator, assertion: str, **form: str):
    data = {
        "grant_type": "client_credentials",
        "client_id": emu.client_id,
        "scope": GRAPH_SCOPE,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
        **form,
    }
    return emu.http_session().post(f"{emu.authority}/oauth2/v2.0/token", data=data)


def graph_drive(emu: GraphEmulator, token: str) -> int:
    response = emu.http_session().get(
        f"{emu.graph_url}/users/{emu.user_upn}/drive", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code


def test_federated_assertion_exchanged_for_a_graph_token(onedrive_emulator: GraphEmulator):
    emu = onedrive_emulator
    assertion = emu.trusted_issuer.token(emu.settings.federated_subject)
    response = exchange(emu, assertion)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and isinstance(body["expires_in"], int) and "refresh_token" not in body
    assert graph_drive(emu, body["access_token"]) == 200
    assert emu.federated_credentials[0].audiences == (FEDERATION_AUDIENCE,)


def test_real_msal_with_an_assertion_callable(onedrive_emulator: GraphEmulator):
    emu = onedrive_emulator
    calls: list[int] = []

    def assertion() -> str:
        calls.append(1)
        return emu.trusted_issuer.token(emu.settings.federated_subject)

    app = msal.ConfidentialClientApplication(
        emu.client_id,
        client_credential={"client_assertion": assertion},
        authority=emu.authority,
        http_client=emu.http_session(),
        instance_discovery=False,
    )
    assert "access_token" in app.acquire_token_for_client([GRAPH_SCOPE])
    assert "access_token" in app.acquire_token_for_client([GRAPH_SCOPE])  # MSAL's cache: no second call
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("claims", "status", "error", "code"),
    [
        ({"issuer": "https://token.actions.githubusercontent.com"}, 400, "invalid_request", 70021),
        ({"subject": "system:serviceaccount:default:default"}, 400, "invalid_request", 70021),
        ({"audience": "api://AzureADTokenExchange/other"}, 400, "invalid_request", 70021),
        ({"lifetime": -1}, 401, "invalid_client", 700024),
    ],
    ids=["issuer", "subject", "audience", "expired"],
)
def test_federated_assertions_refused_with_entra_codes(onedrive_emulator: GraphEmulator, claims, status, error, code):
    emu = onedrive_emulator
    subject = claims.pop("subject", emu.settings.federated_subject)
    response = exchange(emu, emu.trusted_issuer.token(subject, **claims))
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["error"], body["error_codes"]) == (error, [code])
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    if code == 70021:
        assert (
            "No matching federated identity record found for presented assertion. Assertion Issuer: '"
            in (body["error_description"])
        )
    else:
        assert "Client assertion is not within its valid time range. Current time: " in body["error_description"]


def test_malformed_assertion_and_unknown_key(onedrive_emulator: GraphEmulator):
    from airflow_provider_onedrive.testing.federation import TrustedIssuer

    emu = onedrive_emulator
    impostor = TrustedIssuer(emu.trusted_issuer.issuer).token(emu.settings.federated_subject)
    assert exchange(emu, impostor).json()["error_codes"] == [50013]
    tampered = emu.trusted_issuer.token(emu.settings.federated_subject).rsplit(".", 1)[0] + ".AAAA"
    assert exchange(emu, tampered).json()["error_codes"] == [50013]


def test_another_registered_subject_is_accepted(onedrive_emulator: GraphEmulator):
    emu = onedrive_emulator
    emu.add_federated_credential("system:serviceaccount:etl:uploader")
    assert exchange(emu, emu.trusted_issuer.token("system:serviceaccount:etl:uploader")).status_code == 200
    emu.reset()
    assert exchange(emu, emu.trusted_issuer.token("system:serviceaccount:etl:uploader")).status_code == 400


# -- IMDS --------------------------------------------------------------------------------------------------
def imds(emu: GraphEmulator, headers: dict[str, str] | None = None, **params: str):
    query = {"api-version": "2018-02-01", "resource": "https://graph.microsoft.com", **params}
    query = {k: v for k, v in query.items() if v is not None}
    return emu.http_session().get(
        f"{emu.authority_host}/metadata/identity/oauth2/token",
        params=query,
        headers={"Metadata": "true"} if headers is None else headers,
    )


def test_imds_token_shaped_as_documented(onedrive_emulator: GraphEmulator):
    emu = onedrive_emulator
    before = int(time.time())
    response = imds(emu)
    assert response.status_code == 200, response.text
    body = response.json()
    for name in ("expires_in", "expires_on", "not_before"):
        assert isinstance(body[name], str) and body[name].isdigit(), name
    assert int(body["expires_on"]) - before in range(3590, 3610)
    assert (body["resource"], body["token_type"]) == ("https://graph.microsoft.com", "Bearer")
    assert body["client_id"] == emu.managed_identities[0].client_id
    assert graph_drive(emu, body["access_token"]) == 200


@pytest.mark.parametrize(
    ("headers", "params", "error"),
    [
        ({}, {}, "bad_request_102"),
        ({"Metadata": "True"}, {}, "bad_request_102"),
        (None, {"api-version": None}, "invalid_request"),
        (None, {"resource": None}, "invalid_request"),
        (None, {"client_id": "00000000-0000-0000-0000-000000000001"}, "invalid_request"),
        (None, {"resource": "https://vault.azure.net"}, "invalid_resource"),
    ],
    ids=["no-metadata-header", "metadata-not-lowercase", "no-api-version", "no-resource", "unknown-id", "resource"],
)
def test_imds_errors(onedrive_emulator: GraphEmulator, headers, params, error):
    response = imds(onedrive_emulator, headers, **params)
    assert response.status_code == 400
    assert response.json()["error"] == error


@pytest.mark.parametrize("selector", ["client_id", "object_id", "msi_res_id"])
def test_imds_user_assigned_selection(onedrive_emulator: GraphEmulator, selector):
    emu = onedrive_emulator
    chosen = emu.managed_identities[1]
    value = {"client_id": chosen.client_id, "object_id": chosen.object_id, "msi_res_id": chosen.resource_id}
    body = imds(emu, **{selector: value[selector]}).json()
    assert body["client_id"] == chosen.client_id


# -- App Service -------------------------------------------------------------------------------------------
def app_service(emu: GraphEmulator, header: str | None, **params: str):
    env = emu.managed_identity_env("app_service")
    query = {"api-version": "2019-08-01", "resource": "https://graph.microsoft.com", **params}
    headers = {} if header is None else {"X-IDENTITY-HEADER": header}
    return emu.http_session().get(env["IDENTITY_ENDPOINT"], params=query, headers=headers)


def test_app_service_token_shaped_as_documented(onedrive_emulator: GraphEmulator):
    emu = onedrive_emulator
    header = emu.managed_identity_env("app_service")["IDENTITY_HEADER"]
    body = app_service(emu, header).json()
    assert isinstance(body["expires_on"], str) and body["expires_on"].isdigit()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert graph_drive(emu, body["access_token"]) == 200
    chosen = emu.managed_identities[1]
    assert app_service(emu, header, principal_id=chosen.object_id).json()["client_id"] == chosen.client_id
    assert app_service(emu, header, mi_res_id=chosen.resource_id).json()["client_id"] == chosen.client_id


def test_app_service_needs_its_identity_header(onedrive_emulator: GraphEmulator):
    assert app_service(onedrive_emulator, None).status_code == 401
    assert app_service(onedrive_emulator, "wrong").status_code == 401
