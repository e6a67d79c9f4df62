"""Credentials -> Microsoft Graph access tokens through MSAL, with caching, single-flight and rotation.

No Airflow imports, and msal is imported only when the first token is needed. One :class:`_Credential` per
process and per distinct credential (keyed by a hash, never the secrets in clear) holds the MSAL application
and the current access token, so hooks built again and again in one worker reuse both, and threads asking at
once cause a single token request. Delegated refresh tokens rotate on every use: the newest one is persisted
to a :class:`~airflow_provider_onedrive.token_stores.RefreshTokenStore` so the next run (another process,
another worker) starts from it instead of the connection's original, which expires.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_onedrive.certificates import certificate_thumbprints
from airflow_provider_onedrive.config import RESERVED_SCOPES, ConnectionSettings
from airflow_provider_onedrive.errors import OneDriveAuthError
from airflow_provider_onedrive.graph import make_session, token_identity
from airflow_provider_onedrive.secretless import (
    FederatedTokenFile,
    managed_identity_client,
    managed_identity_endpoint,
    managed_identity_name,
)
from airflow_provider_onedrive.token_stores import NullTokenStore, RefreshTokenStore, StoredToken, token_fingerprint

__all__ = [
    "EXPIRY_MARGIN",
    "DeviceCodeFlow",
    "FederatedTokenFile",
    "MsalTokenProvider",
    "build_token_provider",
    "clear_credential_cache",
]

log = logging.getLogger(__name__)

#: Tokens are renewed this many seconds before they expire (MSAL's own margin).
EXPIRY_MARGIN = 300.0
#: A worker whose refresh token was refused waits for another worker's newer token: at most this many seconds
#: in all, and no longer than :data:`QUIET_WINDOW` seconds after the store last changed.
CONTENTION_WINDOW = 30.0
QUIET_WINDOW = 5.0
#: AADSTS codes that mean the refresh token itself is dead (revoked, expired, needs consent or MFA), so no
#: other worker can be about to save a newer one: waiting would only delay the error.
_DEAD_GRANT_CODES = frozenset({50076, 50079, 50173, 65001, 70008, 700082, 700084})
_MICROSOFT_AUTHORITY_HOSTS = {
    "login.microsoftonline.com",
    "login.microsoft.com",
    "login.windows.net",
    "sts.windows.net",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
}
_HINTS = {
    "AADSTS7000215": "the client secret is wrong: use the secret's Value (not its Secret ID) from Certificates & "
    "secrets",
    "AADSTS7000222": "the client secret has expired: create a new one and update the connection's password",
    "AADSTS700016": "no application with this client id exists in the tenant: check the Application (client) ID "
    "and tenant_id",
    "AADSTS90002": "the tenant was not found: check tenant_id (Directory (tenant) ID) and the cloud",
    "AADSTS700027": "the certificate is not registered on the application: upload the public certificate under "
    "Certificates & secrets",
    "AADSTS70008": "the refresh token has expired: sign in again (`airflow-onedrive login`) and update the "
    "connection's refresh_token",
    "AADSTS700082": "the refresh token has expired from inactivity: sign in again and update the connection's "
    "refresh_token",
    "AADSTS700084": "the refresh token has expired: sign in again and update the connection's refresh_token",
    "AADSTS50173": "the refresh token was revoked (password change?): sign in again",
    "AADSTS65001": "the application has no consent for these permissions: grant admin consent in Entra ID",
    "AADSTS70011": "a requested scope is invalid: check extra 'scopes'",
    "AADSTS70021": "no federated identity credential on the application matches the token's issuer, subject and "
    "audience: add one (Certificates & secrets -> Federated credentials) with the cluster's OIDC issuer URL, subject "
    "system:serviceaccount:<namespace>:<service account> and audience api://AzureADTokenExchange",
    "AADSTS700211": "no federated identity credential matches the token's issuer: check the cluster's OIDC issuer URL "
    "in the application's federated credential",
    "AADSTS700212": "no federated identity credential matches the token's audience: use api://AzureADTokenExchange",
    "AADSTS700213": "no federated identity credential matches the token's subject: check the namespace and service "
    "account name in the application's federated credential",
    "AADSTS700024": "the federated token has expired: the kubelet renews the projected token file; check that the "
    "volume is projected and the file is not a stale copy",
    "AADSTS50013": "the federated token's signature does not verify with the issuer's published keys: check the "
    "issuer URL and that the cluster's OIDC issuer is enabled and reachable by Entra ID",
    "AADSTS1002012": "a requested scope is invalid: check extra 'scopes'",
}


class _TimeoutHttpClient:
    """MSAL's http_client: our pinned session (so the CA bundle wins) with a default timeout on every call."""

    def __init__(self, settings: ConnectionSettings, *, local: bool = False) -> None:
        # A managed identity endpoint is link-local (IMDS) or on localhost (App Service): never through a proxy.
        proxies = {} if local else settings.proxies_dict
        self.session = make_session(verify=settings.verify, proxies=proxies, pool_maxsize=4)
        if local:
            self.session.trust_env = False
        self.timeout = settings.timeout

    def post(self, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.post(url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.get(url, **kwargs)

    def close(self) -> None:
        self.session.close()


class _Credential:
    """Per-process state of one credential: the lazily built MSAL app, the current token, a lock."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self.assertions = (
            FederatedTokenFile(settings.federated_token_file, settings.conn_id)
            if settings.federated_token_file
            else None
        )
        self.announced_assertion: str | None = None
        self.app: Any = None
        self.access_token: str | None = None
        self.expires_at = 0.0
        self.refresh_token: StoredToken | None = None  # the newest one this process has seen
        self.identity: str | None = None  # tenant/object id of who the tokens are for

    def get_app(self) -> Any:
        if self.app is None:
            self.app = _build_app(self.settings, self.assertions)
        return self.app


_credentials: dict[str, _Credential] = {}
_credentials_lock = threading.Lock()


def _credential_for(settings: ConnectionSettings) -> _Credential:
    key = settings.credential_key()
    with _credentials_lock:
        credential = _credentials.get(key)
        if credential is None:
            credential = _credentials[key] = _Credential(settings)
        return credential


def clear_credential_cache() -> None:
    """Forget every cached MSAL application and token in this process (tests, or after rotating secrets)."""
    with _credentials_lock:
        _credentials.clear()


def _is_microsoft_host(authority_host: str) -> bool:
    return (urlsplit(authority_host).hostname or "").lower() in _MICROSOFT_AUTHORITY_HOSTS


def _build_app(settings: ConnectionSettings, assertions: FederatedTokenFile | None = None) -> Any:
    """Build the MSAL application (this does network I/O: tenant discovery; a managed-identity client does none)."""
    import msal

    if settings.auth_type == "managed_identity":
        return managed_identity_client(settings, _TimeoutHttpClient(settings, local=True))
    kwargs: dict[str, Any] = {
        "authority": settings.authority,
        "http_client": _TimeoutHttpClient(settings),
        "instance_discovery": None if _is_microsoft_host(settings.authority_host) else False,
    }
    try:
        if settings.auth_type == "workload_identity":
            if assertions is None:
                assertions = FederatedTokenFile(str(settings.federated_token_file), settings.conn_id)
            return msal.ConfidentialClientApplication(
                settings.client_id, client_credential={"client_assertion": assertions}, **kwargs
            )
        if settings.auth_type == "certificate":
            credential = {
                "private_key": settings.private_key_pem,
                "public_certificate": settings.certificate_pem,  # sends x5c; MSAL derives the SHA-256 thumbprint
            }
            if settings.private_key_passphrase:
                credential["passphrase"] = settings.private_key_passphrase
            return msal.ConfidentialClientApplication(settings.client_id, client_credential=credential, **kwargs)
        if settings.client_secret:
            return msal.ConfidentialClientApplication(
                settings.client_id, client_credential=settings.client_secret, **kwargs
            )
        return msal.PublicClientApplication(settings.client_id, **kwargs)
    except Exception as exc:  # network failures and MSAL's ValueErrors for an unusable authority
        raise OneDriveAuthError(
            f"connection {settings.conn_id!r}: cannot set up sign-in with {settings.authority} "
            f"({type(exc).__name__}: {_scrub(str(exc), settings)[:300]}); check tenant_id, the cloud or "
            "authority_host, network access and the CA bundle"
        ) from None


def _scrub(text: str, settings: ConnectionSettings, extra: tuple[str | None, ...] = ()) -> str:
    for secret in (*settings.secrets(), *extra):
        if secret:
            text = text.replace(secret, "***")
    return text


_MANAGED_IDENTITY_HINTS = {
    "identity not found": "no managed identity with that id is assigned to this VM, node pool or app: check "
    "managed_identity_client_id (or the object / resource id), or assign the identity to the resource",
    "required metadata header not specified": "the request did not reach the Instance Metadata Service as sent: "
    "check that nothing on this machine intercepts requests to 169.254.169.254",
}


def auth_error(
    settings: ConnectionSettings, result: dict[str, Any], doing: str, *, secrets: tuple[str | None, ...] = ()
) -> OneDriveAuthError:
    """Turn an MSAL error dict into OneDriveAuthError (keeps the error code and the AADSTS description).

    The one place MSAL results become our error: every connection secret, and ``secrets`` (e.g. the federated
    assertion just sent), is scrubbed from the text.
    """
    code = str(result.get("error") or "unknown_error")
    description = _scrub(str(result.get("error_description") or ""), settings, secrets)
    first_line = description.strip().splitlines()[0] if description.strip() else code
    first_line = first_line.split(" Trace ID:", 1)[0].strip()  # the rest is per-request noise
    message = f"connection {settings.conn_id!r}: {doing} failed: {first_line}"
    aadsts = first_line.split(":", 1)[0].strip()
    if not aadsts.startswith("AADSTS"):
        aadsts = ""
    hint = _HINTS.get(aadsts)
    if not hint and settings.auth_type == "managed_identity":
        hint = next((h for text, h in _MANAGED_IDENTITY_HINTS.items() if text in first_line.lower()), None)
    if hint:
        message += f"; {hint}"
    return OneDriveAuthError(message, code=code, request_id=result.get("correlation_id"), inner_code=aadsts or None)


def _graph_scopes(settings: ConnectionSettings) -> list[str]:
    """Scopes as MSAL wants them: without the reserved ones it adds itself."""
    return [s for s in settings.scopes if s not in RESERVED_SCOPES]


def _identity(settings: ConnectionSettings, result: dict[str, Any]) -> str:
    """Who a token result is for: the id token's ``tid``/``oid`` (delegated), else the access token's claims,
    else the tenant and client id (app-only tokens that are not JWTs)."""
    claims = result.get("id_token_claims") or {}
    if isinstance(claims, dict) and claims.get("oid"):
        return f"{claims.get('tid') or settings.tenant_id}/{claims['oid']}"
    from_token = token_identity(str(result.get("access_token") or ""))
    if from_token:
        return from_token
    if settings.is_delegated:
        # an opaque delegated token and no id token: name the refresh-token lineage, never the token itself
        return f"{settings.tenant_id}/user:{_token_fingerprint(settings.refresh_token)}"
    if settings.auth_type == "managed_identity":
        return f"{settings.tenant_id}/managed_identity:{settings.managed_identity_id or 'system'}"
    return f"{settings.tenant_id}/app:{settings.client_id}"


def _token_fingerprint(token: str | None) -> str:
    return token_fingerprint(token)


def _contended(result: dict[str, Any]) -> bool:
    """A refusal that another worker redeeming the same refresh token can explain (not a dead grant)."""
    if result.get("error") != "invalid_grant":
        return False
    codes = set(result.get("error_codes") or ())
    codes.update(int(code) for code in re.findall(r"AADSTS(\d+)", str(result.get("error_description") or "")))
    return not _DEAD_GRANT_CODES.intersection(codes)


def _claims_of(identity: str) -> dict[str, str]:
    """``tid``/``oid`` claims for an identity string ``tenant/object`` saved by another worker."""
    tenant, _, oid = identity.partition("/")
    return {"tid": tenant, "oid": oid}


class MsalTokenProvider:
    """Serves Graph access tokens for one connection (client secret, certificate or delegated refresh token).

    Tokens are served from a per-process cache until :data:`EXPIRY_MARGIN` seconds before they expire;
    concurrent callers wait for a single request.

    :param settings: the validated connection settings.
    :param store: where rotated refresh tokens persist (delegated only); by default only this process remembers.
    :param on_new_secret: called with every access token and refresh token obtained (e.g. Airflow's
        ``mask_secret``), before it is used anywhere.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        store: RefreshTokenStore | None = None,
        on_new_secret: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store: RefreshTokenStore = store if store is not None else NullTokenStore()
        self.on_new_secret = on_new_secret
        self._credential = _credential_for(settings)

    @property
    def thumbprints(self) -> tuple[str, str] | None:
        """``(sha1, sha256)`` of the certificate (auth_type certificate), to compare with Entra ID's display."""
        if not self.settings.certificate_pem:
            return None
        return certificate_thumbprints(self.settings.certificate_pem)

    def get_token(self, *, force_refresh: bool = False) -> str:
        """A valid access token; ``force_refresh`` asks the identity platform even if the cached one looks fine."""
        credential = self._credential
        seen = credential.access_token
        if not force_refresh and seen and time.time() < credential.expires_at - EXPIRY_MARGIN:
            return seen
        with credential.lock:
            current = credential.access_token
            fresh = time.time() < credential.expires_at - EXPIRY_MARGIN
            if current and fresh and (not force_refresh or current != seen):
                return current  # another thread just renewed it
            result = self._acquire(credential, force_refresh)
            token = result["access_token"]
            self._announce(token)
            credential.identity = _identity(self.settings, result)
            credential.access_token = token
            credential.expires_at = time.time() + float(result.get("expires_in") or 3600)
            return token

    def identity(self) -> str:
        """``tenant/object id`` of the account the tokens act for: the signed-in user (delegated) or the
        application's service principal (app-only); resumable upload state is kept apart by it."""
        if self._credential.identity is None:
            self.get_token()
        return self._credential.identity or f"{self.settings.tenant_id}/app:{self.settings.client_id}"

    def _announce(self, secret: str | None) -> None:
        if secret and self.on_new_secret is not None:
            self.on_new_secret(secret)

    def _acquire(self, credential: _Credential, force_refresh: bool) -> dict[str, Any]:
        if self.settings.is_delegated:
            return self._acquire_by_refresh_token(credential)
        if self.settings.auth_type == "managed_identity":
            return self._acquire_for_managed_identity(credential, force_refresh)
        assertions = credential.assertions
        if assertions is not None:
            # Read (or re-read, if the kubelet rotated it) before MSAL sends it, so it is masked before any use.
            assertion = assertions.read()
            if assertion != credential.announced_assertion:
                self._announce(assertion)
                credential.announced_assertion = assertion
        app = credential.get_app()
        if force_refresh:
            app.remove_tokens_for_client()
        result = self._call(app.acquire_token_for_client, _graph_scopes(self.settings))
        if "access_token" not in result:
            secrets = (assertions.current,) if assertions is not None else ()
            raise auth_error(self.settings, result, "getting an app-only token", secrets=secrets)
        return result

    def _acquire_for_managed_identity(self, credential: _Credential, force_refresh: bool) -> dict[str, Any]:
        app = credential.get_app()
        if force_refresh:  # a new client has an empty token cache, so MSAL asks the endpoint again
            app = credential.app = managed_identity_client(self.settings, app.onedrive_http_client)
        resource = self.settings.managed_identity_resource
        result = self._call(lambda: app.acquire_token_for_client(resource=resource), where=managed_identity_endpoint())
        if "access_token" not in result:
            raise auth_error(
                self.settings, result, f"getting a managed identity token ({managed_identity_name(self.settings)})"
            )
        return result

    def _call(self, method: Callable[..., Any], *args: Any, where: str | None = None) -> dict[str, Any]:
        try:
            return method(*args)
        except OneDriveAuthError:
            raise  # e.g. the federated token file could not be read
        except Exception as exc:  # MSAL raises on 5xx and transport failures
            place = where or f"the identity platform at {self.settings.authority_host}"
            extra = (self._credential.assertions.current,) if self._credential.assertions is not None else ()
            raise OneDriveAuthError(
                f"connection {self.settings.conn_id!r}: {place} did not answer "
                f"({type(exc).__name__}: {_scrub(str(exc), self.settings, extra)[:200]}); retry later or "
                "check network access"
            ) from None

    # -- delegated: refresh-token rotation ---------------------------------------------------------------
    def _acquire_by_refresh_token(self, credential: _Credential) -> dict[str, Any]:
        """An access token for the signed-in user, redeeming the refresh token only when no worker has one.

        Workers share one store without a lock (Airflow Variables offer none). A worker that finds a valid
        access token in the store uses it; otherwise it redeems the newest refresh token and saves both. When
        several redeem the same refresh token at once and the identity platform refuses the late ones, each
        refused worker waits (jittered backoff, while the store keeps changing; see :data:`QUIET_WINDOW`) for
        what the winner saves, and uses it: only the winner writes, so the store always ends with the newest token.
        """
        with self._store_lock():
            record = self._load_record()  # one read decides both: use its access token, or redeem its token
            shared = self._shared_access(credential, record)
            if shared is not None:
                return shared
            refresh_token = self._newest_refresh_token(credential, record)
            result = self._redeem(credential, refresh_token)
            started = quiet_since = time.monotonic()
            last_seen = record
            attempt = 0
            while _contended(result):
                now = time.monotonic()
                if now - started > CONTENTION_WINDOW or now - quiet_since > QUIET_WINDOW:
                    break  # nobody is saving newer tokens: the refusal is about this token itself
                time.sleep(min(1.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))
                attempt += 1
                record = self._load_record()
                if record != last_seen:
                    last_seen, quiet_since = record, time.monotonic()
                shared = self._shared_access(credential, record)
                if shared is not None:
                    return shared
                newer = self._newest_refresh_token(credential, record)
                if newer != refresh_token:
                    refresh_token, result = newer, self._redeem(credential, newer)
            own = self.settings.refresh_token
            if result.get("error") == "invalid_grant" and own and refresh_token != own:
                # The stored token is dead (revoked, expired, or from another sign-in): the connection's own
                # token may still be valid, since the identity platform does not revoke used refresh tokens.
                log.warning(
                    "connection %r: the stored refresh token was refused; trying the connection's own",
                    self.settings.conn_id,
                )
                refresh_token, result = own, self._redeem(credential, own)
            if "access_token" not in result:
                raise auth_error(self.settings, result, "redeeming the refresh token")
            rotated = result.get("refresh_token") or refresh_token
            self._announce(rotated)
            record = StoredToken(
                rotated,
                origin=_token_fingerprint(self.settings.refresh_token),
                access_token=result["access_token"],
                expires_at=time.time() + float(result.get("expires_in") or 3600),
                identity=_identity(self.settings, result),
            )
            credential.refresh_token = record
            self._save(record)
            return result

    def _shared_access(self, credential: _Credential, record: StoredToken | None) -> dict[str, Any] | None:
        """A token result built from the store's access token when another worker saved one still valid."""
        if record is None or not self._descends(record) or record.access_token == credential.access_token:
            return None
        valid_for = record.access_valid_for()
        if valid_for <= EXPIRY_MARGIN:
            return None
        self._announce(record.access_token)
        self._announce(record.token)
        if credential.refresh_token is None or record.saved_at > credential.refresh_token.saved_at:
            credential.refresh_token = record
        result: dict[str, Any] = {"access_token": record.access_token, "expires_in": valid_for}
        if record.identity:
            result["id_token_claims"] = _claims_of(record.identity)
        return result

    def _redeem(self, credential: _Credential, refresh_token: str) -> dict[str, Any]:
        app = credential.get_app()
        return self._call(app.acquire_token_by_refresh_token, refresh_token, _graph_scopes(self.settings))

    def _load_record(self) -> StoredToken | None:
        try:
            return StoredToken.decode(self.store.load())
        except Exception as exc:
            log.warning("connection %r: cannot read the refresh-token store (%s)", self.settings.conn_id, exc)
            return None

    def _descends(self, record: StoredToken) -> bool:
        origin = _token_fingerprint(self.settings.refresh_token)
        return record.origin is None or not self.settings.refresh_token or record.origin == origin

    def _newest_refresh_token(self, credential: _Credential, stored: StoredToken | None) -> str:
        """The newest refresh token descending from the connection's: store, this process, or the original."""
        candidates = [credential.refresh_token, stored]
        usable = [c for c in candidates if c is not None and self._descends(c)]
        if usable:
            newest = max(usable, key=lambda c: c.saved_at)
            self._announce(newest.token)
            return newest.token
        if not self.settings.refresh_token:
            raise OneDriveAuthError(
                f"connection {self.settings.conn_id!r}: no refresh token in the connection or its token store; "
                "sign in with `airflow-onedrive login` and put the refresh token in extra 'refresh_token'"
            )
        return self.settings.refresh_token

    def _save(self, record: StoredToken) -> None:
        try:
            self.store.save(record.encode())
        except Exception as exc:
            log.warning(
                "connection %r: the rotated refresh token could not be persisted (%s); this process keeps "
                "using it, but the next run will start from an older one",
                self.settings.conn_id,
                exc,
            )

    @contextlib.contextmanager
    def _store_lock(self) -> Iterator[None]:
        lock = getattr(self.store, "lock", None)
        if lock is None:
            yield
        else:
            with lock():
                yield


def build_token_provider(
    settings: ConnectionSettings,
    *,
    store: RefreshTokenStore | None = None,
    on_new_secret: Callable[[str], None] | None = None,
) -> MsalTokenProvider:
    """The token provider for a connection; ``store`` is used only by delegated (refresh_token) credentials."""
    if not settings.is_delegated:
        store = NullTokenStore()
    return MsalTokenProvider(settings, store=store, on_new_secret=on_new_secret)


class DeviceCodeFlow:
    """Delegated sign-in on another device (for ``airflow-onedrive login``): yields a refresh token.

    ``flow = DeviceCodeFlow(settings); info = flow.initiate(); print(info["message"]); result = flow.poll()``.
    """

    def __init__(self, settings: ConnectionSettings, *, on_new_secret: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.on_new_secret = on_new_secret
        self._app: Any = None
        self._flow: dict[str, Any] | None = None

    def initiate(self) -> dict[str, Any]:
        """Start the flow; the result has ``user_code``, ``verification_uri`` and a ready-to-print ``message``."""
        if self._app is None:
            self._app = _build_app(self.settings)
        flow = self._app.initiate_device_flow(scopes=_graph_scopes(self.settings))
        if "user_code" not in flow:
            raise auth_error(self.settings, flow, "starting the device-code sign-in")
        self._flow = flow
        return flow

    def poll(self, timeout: float = 300.0) -> dict[str, Any]:
        """Wait (at most ``timeout`` seconds) for the user to sign in; returns MSAL's token result."""
        if self._flow is None:
            raise OneDriveAuthError("DeviceCodeFlow.poll() called before initiate()")
        flow = dict(self._flow)
        flow["expires_at"] = min(float(flow.get("expires_at") or time.time() + timeout), time.time() + timeout)
        result = self._app.acquire_token_by_device_flow(flow)
        if "access_token" not in result:
            if result.get("error") in ("authorization_pending", "expired_token", "slow_down"):
                result = {**result, "error_description": f"nobody signed in within {timeout:.0f} s"}
            raise auth_error(self.settings, result, "device-code sign-in")
        for key in ("access_token", "refresh_token"):
            if result.get(key) and self.on_new_secret is not None:
                self.on_new_secret(result[key])
        return result
