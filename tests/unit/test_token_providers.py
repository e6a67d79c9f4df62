"""Token providers through real MSAL against requests-mock'ed identity endpoints."""

from __future__ import annotations

import base64
import json
import threading
import time
from urllib.parse import parse_qs

import pytest

from airflow_provider_onedrive.auth import DeviceCodeFlow, MsalTokenProvider, build_token_provider
from airflow_provider_onedrive.config import ConnectionSettings
from airflow_provider_onedrive.errors import OneDriveAuthError
from airflow_provider_onedrive.token_stores import MemoryTokenStore, StoredToken
from tests.unit.unit_helpers import LOGIN, TENANT, TOKEN_URL

APP = {"tenant_id": TENANT, "drive_type": "user", "user_id": "adele@contoso.com"}
DELEGATED = {"tenant_id": TENANT, "auth_type": "refresh_token", "refresh_token": "rt-0"}


def app_settings(**extra) -> ConnectionSettings:
    return ConnectionSettings.from_connection_fields("od", "client-id", "s3cret", {**APP, **extra})


def delegated_settings(password=None, **extra) -> ConnectionSettings:
    return ConnectionSettings.from_connection_fields("od", "client-id", password, {**DELEGATED, **extra})


def form(request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.text).items()}


def token_posts(mock) -> list:
    return [r for r in mock.request_history if r.method == "POST" and r.url == TOKEN_URL]


def test_client_secret_token_cached_until_near_expiry(identity):
    identity.post(TOKEN_URL, [{"json": {"access_token": f"at-{i}", "expires_in": 3600}} for i in range(3)])
    seen: list[str] = []
    provider = build_token_provider(app_settings(), on_new_secret=seen.append)
    assert provider.get_token() == "at-0"
    assert provider.get_token() == "at-0"
    # A second provider for the same credential (e.g. a new hook in the same worker) shares the cache.
    assert build_token_provider(app_settings()).get_token() == "at-0"
    assert len(token_posts(identity)) == 1
    body = form(token_posts(identity)[0])
    assert body["grant_type"] == "client_credentials"
    assert body["client_secret"] == "s3cret"
    assert body["scope"] == "https://graph.microsoft.com/.default"
    assert token_posts(identity)[0].timeout == (10.0, 120.0)
    assert provider.get_token(force_refresh=True) == "at-1"
    assert seen == ["at-0", "at-1"]


def test_token_expiring_within_margin_is_renewed(identity):
    identity.post(TOKEN_URL, [{"json": {"access_token": f"at-{i}", "expires_in": 200}} for i in range(2)])
    provider = build_token_provider(app_settings())
    assert provider.get_token() == "at-0"
    assert provider.get_token() == "at-1"  # 200 s left is inside the 5-minute margin


def test_single_flight_eight_threads_one_request(identity):
    def slow(request, context):
        time.sleep(0.3)
        return {"access_token": "at-shared", "expires_in": 3600}

    identity.post(TOKEN_URL, json=slow)
    provider = build_token_provider(app_settings())
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(provider.get_token())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["at-shared"] * 8
    assert len(token_posts(identity)) == 1


def test_msal_error_becomes_auth_error_without_secret(identity):
    identity.post(
        TOKEN_URL,
        status_code=401,
        json={
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided (got s3cret).\r\nTrace ID: x",
            "error_codes": [7000215],
            "correlation_id": "corr-1",
        },
    )
    with pytest.raises(OneDriveAuthError) as info:
        build_token_provider(app_settings()).get_token()
    err = info.value
    assert err.code == "invalid_client"
    assert err.inner_code == "AADSTS7000215"
    assert err.request_id == "corr-1"
    assert "connection 'od'" in str(err) and "Value (not its Secret ID)" in str(err)
    assert "s3cret" not in str(err) and "Trace ID" not in str(err)
    assert isinstance(err, PermissionError)


def test_token_endpoint_5xx_is_auth_error(identity):
    identity.post(TOKEN_URL, status_code=503, text="down")
    with pytest.raises(OneDriveAuthError, match="did not answer"):
        build_token_provider(app_settings()).get_token()


def test_unreachable_discovery_is_auth_error(requests_mock):
    requests_mock.get(f"{LOGIN}/{TENANT}/v2.0/.well-known/openid-configuration", status_code=400, json={})
    with pytest.raises(OneDriveAuthError, match="cannot set up sign-in"):
        build_token_provider(app_settings()).get_token()


def test_non_microsoft_authority_skips_instance_discovery(requests_mock):
    host = "https://login.emulator.test"
    requests_mock.get(
        f"{host}/{TENANT}/v2.0/.well-known/openid-configuration",
        json={
            "authorization_endpoint": f"{host}/{TENANT}/oauth2/v2.0/authorize",
            "token_endpoint": f"{host}/{TENANT}/oauth2/v2.0/token",
            "issuer": f"{host}/{TENANT}/v2.0",
        },
    )
    requests_mock.post(f"{host}/{TENANT}/oauth2/v2.0/token", json={"access_token": "at", "expires_in": 3600})
    assert build_token_provider(app_settings(authority_host=host)).get_token() == "at"
    assert {r.hostname for r in requests_mock.request_history} == {"login.emulator.test"}


def test_certificate_assertion_carries_x5c_and_sha256_thumbprint(identity, pem):
    identity.post(TOKEN_URL, json={"access_token": "at-cert", "expires_in": 3600})
    settings = ConnectionSettings.from_connection_fields(
        "od",
        "client-id",
        None,
        {**APP, "certificate": pem.cert, "private_key": pem.encrypted_key, "private_key_passphrase": pem.passphrase},
    )
    provider = build_token_provider(settings)
    assert provider.get_token() == "at-cert"
    body = form(token_posts(identity)[0])
    assert body["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    header = json.loads(base64.urlsafe_b64decode(body["client_assertion"].split(".")[0] + "=="))
    _sha1, sha256 = provider.thumbprints
    assert base64.urlsafe_b64decode(header["x5t#S256"] + "==").hex().upper() == sha256
    assert header["x5c"] and header["alg"] == "PS256"
    assert "client_secret" not in body


def rotating(identity, *, start: int = 1):
    """Token endpoint that rotates: each redeemed refresh token gets rt-<n+1>."""
    counter = {"n": start}

    def respond(request, context):
        body = form(request)
        n = counter["n"]
        counter["n"] += 1
        return {"access_token": f"at-{n}", "refresh_token": f"rt-{n}", "expires_in": 3600, "redeemed": body}

    identity.post(TOKEN_URL, json=respond)


def test_refresh_token_rotation_persists_to_store(identity):
    rotating(identity)
    store = MemoryTokenStore()
    seen: list[str] = []
    provider = build_token_provider(delegated_settings(), store=store, on_new_secret=seen.append)
    assert provider.get_token() == "at-1"
    body = form(token_posts(identity)[0])
    assert body["grant_type"] == "refresh_token" and body["refresh_token"] == "rt-0"
    assert set(body["scope"].split()) >= {"Files.ReadWrite.All", "User.Read", "offline_access"}
    assert StoredToken.decode(store.load()).token == "rt-1"
    assert "rt-1" in seen and "at-1" in seen
    # A later run (new process: no in-memory state) starts from the stored token, not the original.
    from airflow_provider_onedrive.auth import clear_credential_cache

    clear_credential_cache()
    # ...and uses the access token saved beside it while that is valid: no second redemption
    assert build_token_provider(delegated_settings(), store=store).get_token() == "at-1"
    assert len(token_posts(identity)) == 1
    import dataclasses

    stored = StoredToken.decode(store.load())
    store.save(dataclasses.replace(stored, expires_at=time.time() + 60).encode())  # inside the expiry margin
    clear_credential_cache()
    assert build_token_provider(delegated_settings(), store=store).get_token() == "at-2"
    assert form(token_posts(identity)[1])["refresh_token"] == "rt-1"
    assert StoredToken.decode(store.load()).token == "rt-2"


def test_stored_token_from_an_older_connection_token_is_ignored(identity):
    rotating(identity)
    old = StoredToken("rt-from-old-login", origin="0123456789abcdef", saved_at=time.time())
    store = MemoryTokenStore(old.encode())
    build_token_provider(delegated_settings(), store=store).get_token()
    assert form(token_posts(identity)[0])["refresh_token"] == "rt-0"


def test_bare_token_seeded_in_store_is_used(identity):
    rotating(identity)
    store = MemoryTokenStore("rt-seeded")
    build_token_provider(delegated_settings(), store=store).get_token()
    assert form(token_posts(identity)[0])["refresh_token"] == "rt-seeded"


def test_invalid_grant_retries_once_with_token_another_worker_saved(identity):
    store = MemoryTokenStore()

    class RacingStore:
        """Like a Variable: another worker saves rt-other right after we read."""

        def __init__(self):
            self.loads = 0

        def load(self):
            self.loads += 1
            return store.load() if self.loads > 1 else None

        def save(self, token):
            store.save(token)

    def respond(request, context):
        if form(request)["refresh_token"] == "rt-0":
            store.save(StoredToken("rt-other", origin=None).encode())
            context.status_code = 400
            return {"error": "invalid_grant", "error_description": "AADSTS70000: already redeemed"}
        return {"access_token": "at-ok", "refresh_token": "rt-next", "expires_in": 3600}

    identity.post(TOKEN_URL, json=respond)
    assert build_token_provider(delegated_settings(), store=RacingStore()).get_token() == "at-ok"
    assert [form(r)["refresh_token"] for r in token_posts(identity)] == ["rt-0", "rt-other"]
    assert StoredToken.decode(store.load()).token == "rt-next"


def test_a_dead_stored_token_falls_back_to_the_connections_own(identity):
    """A stored token descending from the connection's but refused (revoked, or from an earlier sign-in state):
    the connection's own token is tried once, since used refresh tokens are not revoked."""
    from airflow_provider_onedrive.token_stores import token_fingerprint

    store = MemoryTokenStore(StoredToken("rt-dead", origin=token_fingerprint("rt-0"), saved_at=time.time()).encode())

    def respond(request, context):
        if form(request)["refresh_token"] == "rt-dead":
            context.status_code = 400
            return {"error": "invalid_grant", "error_description": "AADSTS50173: The provided grant was revoked."}
        return {"access_token": "at-ok", "refresh_token": "rt-next", "expires_in": 3600}

    identity.post(TOKEN_URL, json=respond)
    assert build_token_provider(delegated_settings(), store=store).get_token() == "at-ok"
    assert [form(r)["refresh_token"] for r in token_posts(identity)] == ["rt-dead", "rt-0"]
    assert StoredToken.decode(store.load()).token == "rt-next"


def test_expired_refresh_token_error_names_the_fix(identity):
    identity.post(
        TOKEN_URL,
        status_code=400,
        json={"error": "invalid_grant", "error_description": "AADSTS700082: The refresh token has expired."},
    )
    with pytest.raises(OneDriveAuthError) as info:
        build_token_provider(delegated_settings()).get_token()
    assert info.value.code == "invalid_grant"
    assert "sign in again" in str(info.value)
    assert "rt-0" not in str(info.value)


def test_confidential_delegated_sends_client_secret(identity):
    rotating(identity)
    build_token_provider(delegated_settings(password="web-secret")).get_token()
    assert form(token_posts(identity)[0])["client_secret"] == "web-secret"


def test_no_refresh_token_anywhere(identity):
    settings = ConnectionSettings.from_connection_fields(
        "od", "client-id", None, {"tenant_id": TENANT, "auth_type": "refresh_token", "token_store": "memory"}
    )
    with pytest.raises(OneDriveAuthError, match="no refresh token in the connection or its token store"):
        MsalTokenProvider(settings, store=MemoryTokenStore()).get_token()


def test_device_code_flow(identity):
    identity.post(
        f"{LOGIN}/{TENANT}/oauth2/v2.0/devicecode",
        json={
            "device_code": "dc",
            "user_code": "ABCD-EFGH",
            "verification_uri": "https://microsoft.com/devicelogin",
            "interval": 1,
            "expires_in": 900,
            "message": "To sign in, use a web browser...",
        },
    )
    identity.post(
        TOKEN_URL,
        [
            {"status_code": 400, "json": {"error": "authorization_pending", "error_description": "AADSTS70016"}},
            {"json": {"access_token": "at-dc", "refresh_token": "rt-dc", "expires_in": 3600}},
        ],
    )
    seen: list[str] = []
    flow = DeviceCodeFlow(delegated_settings(), on_new_secret=seen.append)
    info = flow.initiate()
    assert info["user_code"] == "ABCD-EFGH"
    result = flow.poll(timeout=10)
    assert result["refresh_token"] == "rt-dc"
    assert seen == ["at-dc", "rt-dc"]


def test_device_code_flow_times_out(identity):
    identity.post(
        f"{LOGIN}/{TENANT}/oauth2/v2.0/devicecode",
        json={"device_code": "dc", "user_code": "U", "verification_uri": "v", "interval": 1, "expires_in": 900},
    )
    identity.post(
        TOKEN_URL, status_code=400, json={"error": "authorization_pending", "error_description": "AADSTS70016"}
    )
    flow = DeviceCodeFlow(delegated_settings())
    flow.initiate()
    started = time.monotonic()
    with pytest.raises(OneDriveAuthError, match="nobody signed in within 1 s"):
        flow.poll(timeout=1)
    assert time.monotonic() - started < 5
