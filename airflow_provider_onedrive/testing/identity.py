"""The identity-platform side: discovery documents and the v2.0 token and device-code endpoints.

Access tokens are JWTs signed with a per-emulator HMAC key; Graph accepts only unexpired ones for its own
audience. Refresh tokens are opaque; every redemption returns a fresh one and, as Microsoft documents ("Refresh
tokens in the Microsoft identity platform", learn.microsoft.com/entra/identity-platform/refresh-tokens: it "doesn't
revoke old refresh tokens when used to fetch new access tokens"), the old one stays valid until it expires (90 days
after it was issued, AADSTS700082) or is revoked (AADSTS50173). Strict single-use rotation is an opt-in setting.
Errors carry Entra ID's AADSTS codes in its JSON format.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from airflow_provider_onedrive.testing.federation import JWT_BEARER, Federation, ManagedIdentity
from airflow_provider_onedrive.testing.settings import Clock, EmulatorSettings
from airflow_provider_onedrive.testing.tls import AppCertificate
from airflow_provider_onedrive.testing.wire import GraphError, IdentityError, Request, Response, json_response

__all__ = ["AppRegistration", "DirectoryUser", "Identity", "Principal", "b64url", "b64url_decode"]

GRAPH_AUDIENCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}
ALIASES = ("common", "organizations", "consumers")
DELEGATED_SCOPES = "Files.ReadWrite.All offline_access User.Read"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _entra_time(epoch: float) -> str:
    """A timestamp as Entra writes it in error descriptions: ``2018-10-19T17:26:59.8511467Z``."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 10:07d}Z"


def _timespan(seconds: float) -> str:
    """A duration in .NET TimeSpan form, as AADSTS700082 reports it: ``90.00:00:00`` or ``12:00:00``."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    clock = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days}.{clock}" if days else clock


@dataclass(frozen=True)
class DirectoryUser:
    """A user of the tenant."""

    upn: str
    id: str
    display_name: str


@dataclass(frozen=True)
class AppRegistration:
    """The emulator's app registration: a client secret, a certificate, and public-client flows allowed."""

    client_id: str
    client_secret: str
    certificate: AppCertificate
    display_name: str = "Airflow OneDrive emulator app"


@dataclass(frozen=True)
class Principal:
    """Who an access token speaks for: an app alone, or a user through an app."""

    client_id: str
    user: DirectoryUser | None
    scopes: frozenset[str]

    @property
    def app_only(self) -> bool:
        return self.user is None


@dataclass
class _RefreshGrant:
    """One refresh token: whose it is, when it was issued, and when the sign-in it descends from happened."""

    user: DirectoryUser
    client_id: str
    scopes: str
    issued: float
    auth_time: float
    used_at: float | None = None
    revoked_at: float | None = None


@dataclass
class _DeviceCode:
    user_code: str
    client_id: str
    scopes: str
    expires: float
    user: DirectoryUser | None = None
    declined: bool = False
    last_poll: float = 0.0
    redeemed: bool = False


@dataclass
class _State:
    refresh_tokens: dict[str, _RefreshGrant] = field(default_factory=dict)
    device_codes: dict[str, _DeviceCode] = field(default_factory=dict)
    not_before: float = 0.0


class Identity:
    """Token issuing and checking for one tenant and one app registration."""

    def __init__(
        self,
        settings: EmulatorSettings,
        clock: Clock,
        tenant_id: str,
        tenant_domain: str,
        app: AppRegistration,
        users: list[DirectoryUser],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.tenant_id = tenant_id
        self.tenant_domain = tenant_domain
        self.app = app
        self.users = {u.upn.lower(): u for u in users}
        self.users.update({u.id: u for u in users})
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._state = _State()
        #: Trusted issuer, federated credentials and managed identities (set by the emulator).
        self.federation: Federation | None = None

    def reset(self) -> None:
        with self._lock:
            self._state = _State()

    def user(self, name: str) -> DirectoryUser:
        found = self.users.get(name.lower())
        if found is None:
            raise KeyError(f"no emulator user {name!r}; known: {sorted(u.upn for u in self.users.values())}")
        return found

    # -- tokens ----------------------------------------------------------------------------------------------
    def _jwt(self, claims: dict[str, Any], alg: str = "HS256") -> str:
        header = b64url(json.dumps({"typ": "JWT", "alg": alg, "kid": "emulator"}).encode())
        body = b64url(json.dumps(claims).encode())
        signature = hmac.new(self._key, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{b64url(signature)}"

    def access_token(self, client_id: str, user: DirectoryUser | None, scopes: str, audience: str) -> str:
        now = self.clock.now()
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": now + self.settings.token_lifetime,
            "tid": self.tenant_id,
            "appid": client_id,
            "app_displayname": self.app.display_name,
            "uti": b64url(secrets.token_bytes(16)),
            "xms_emu_iat": now,  # precise issue time, for expire_access_tokens()
            "ver": "1.0",
        }
        if user is None:
            claims.update(idtyp="app", roles=["Files.ReadWrite.All", "Sites.ReadWrite.All"], oid=client_id)
        else:
            claims.update(idtyp="user", scp=scopes, oid=user.id, sub=user.id, upn=user.upn, name=user.display_name)
        return self._jwt(claims)

    def managed_identity_token(self, managed: ManagedIdentity, audience: str) -> str:
        """An app-only access token for a managed identity's service principal (its own app roles)."""
        now = self.clock.now()
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": now + self.settings.token_lifetime,
            "tid": self.tenant_id,
            "appid": managed.client_id,
            "app_displayname": managed.display_name,
            "idtyp": "app",
            "oid": managed.object_id,
            "sub": managed.object_id,
            "roles": list(managed.roles),
            "xms_mirid": managed.resource_id or f"/subscriptions/emulator/virtualMachines/{managed.display_name}",
            "uti": b64url(secrets.token_bytes(16)),
            "xms_emu_iat": now,
            "ver": "1.0",
        }
        return self._jwt(claims)

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far count as expired."""
        with self._lock:
            self._state.not_before = self.clock.now()

    def validate(self, authorization: str | None) -> Principal:
        """The principal of a ``Bearer`` header, or Graph's 401."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise self._unauthorized("Access token is empty.")
        token = authorization[7:].strip()
        parts = token.split(".")
        if len(parts) != 3:
            raise self._unauthorized("IDX14100: JWT is not well formed, there are no dots (.).")
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            valid = hmac.compare_digest(expected, b64url_decode(parts[2]))
            claims = json.loads(b64url_decode(parts[1]))
        except ValueError:
            valid = False
        if not valid:
            raise self._unauthorized("Invalid signature.")
        if claims.get("aud") not in GRAPH_AUDIENCES:
            raise self._unauthorized("Invalid audience.")
        if claims.get("exp", 0) <= self.clock.now() or claims.get("xms_emu_iat", 0) <= self._state.not_before:
            raise self.token_expired()
        if claims.get("idtyp") == "app":
            return Principal(claims["appid"], None, frozenset(claims.get("roles", ())))
        return Principal(claims["appid"], self.user(claims["oid"]), frozenset(claims.get("scp", "").split()))

    def _unauthorized(self, message: str) -> GraphError:
        challenge = (
            f'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
            f'client_id="{GRAPH_AUDIENCES[1]}"'
        )
        return GraphError(401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": challenge})

    def token_expired(self) -> GraphError:
        return self._unauthorized("Lifetime validation failed, the token is expired.")

    def issue_refresh_token(
        self,
        user: DirectoryUser,
        scopes: str = DELEGATED_SCOPES,
        token: str | None = None,
        auth_time: float | None = None,
    ) -> str:
        """Mint a refresh token for ``user``: after an interactive sign-in, or (``auth_time`` given) a redemption."""
        now = self.clock.now()
        token = token or "0.A" + b64url(secrets.token_bytes(48))
        grant = _RefreshGrant(user, self.app.client_id, scopes, now, now if auth_time is None else auth_time)
        with self._lock:
            self._state.refresh_tokens[token] = grant
        return token

    def refresh_tokens_issued(self, user: DirectoryUser) -> list[str]:
        """Every refresh token issued to ``user``, oldest first (what a test compares a store with)."""
        with self._lock:
            return [token for token, grant in self._state.refresh_tokens.items() if grant.user == user]

    def revoke_refresh_tokens(self, user: DirectoryUser) -> int:
        """Revoke every refresh token ``user`` holds, as ``POST /users/{id}/revokeSignInSessions`` or a password
        reset does (Entra moves the user's "tokens valid from" date to now); returns how many were live."""
        now = self.clock.now()
        with self._lock:
            grants = [g for g in self._state.refresh_tokens.values() if g.user == user and g.revoked_at is None]
            for grant in grants:
                grant.revoked_at = now
        return len(grants)

    # -- device code -----------------------------------------------------------------------------------------
    def approve_device_code(self, user_code: str, user: DirectoryUser, decline: bool = False) -> None:
        with self._lock:
            for code in self._state.device_codes.values():
                if code.user_code == user_code.strip().upper() and code.expires > self.clock.now():
                    code.user, code.declined = user, decline
                    return
        raise KeyError(f"no pending device code with user code {user_code!r}")

    def pending_user_codes(self) -> list[str]:
        now = self.clock.now()
        with self._lock:
            return [c.user_code for c in self._state.device_codes.values() if c.user is None and c.expires > now]

    # -- HTTP endpoints --------------------------------------------------------------------------------------
    def _tenant(self, name: str) -> str:
        """The tenant path segment as the endpoints should repeat it, or AADSTS90002."""
        if name.lower() in ALIASES:
            return name.lower()
        if name.lower() in (self.tenant_id, self.tenant_domain.lower()):
            return self.tenant_id
        raise IdentityError(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are signing into "
            "the correct cloud.",
        )

    def openid_configuration(self, request: Request, tenant: str) -> Response:
        segment = self._tenant(tenant)
        base = f"{request.origin}/{segment}"
        issuer_tenant = "{tenantid}" if segment in ALIASES else self.tenant_id
        return json_response(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{request.origin}/{issuer_tenant}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "msgraph_host": "graph.microsoft.com",
            },
        )

    def instance_discovery(self, request: Request) -> Response:
        endpoint = request.query.get("authorization_endpoint", "")
        parts = urlsplit(endpoint)
        hostname = urlsplit(request.origin).hostname or ""
        loopback = {hostname.lower(), "localhost", "127.0.0.1", "::1"}
        if parts.hostname and parts.hostname.lower() not in loopback:
            payload = {
                "error": "invalid_instance",
                "error_description": f"AADSTS50049: Unknown or invalid instance. Trace ID: {request.request_id}",
                "error_codes": [50049],
            }
            return json_response(400, payload)
        tenant = (parts.path.strip("/").split("/") or ["common"])[0] or "common"
        return json_response(
            200,
            {
                "tenant_discovery_endpoint": f"{request.origin}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": hostname, "preferred_cache": hostname, "aliases": [hostname]}],
            },
        )

    def keys(self, request: Request, tenant: str) -> Response:
        self._tenant(tenant)
        return json_response(200, {"keys": []})

    def _form(self, request: Request) -> dict[str, str]:
        return dict(parse_qsl(request.body.read().decode("utf-8"), keep_blank_values=True))

    def device_code(self, request: Request, tenant: str) -> Response:
        self._tenant(tenant)
        form = self._form(request)
        self._check_client_id(form.get("client_id"), tenant)
        device_code = "DAQABAAEAAAD" + b64url(secrets.token_bytes(32))
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        user_code = "".join(secrets.choice(alphabet) for _ in range(9))
        lifetime = self.settings.device_code_lifetime
        with self._lock:
            self._state.device_codes[device_code] = _DeviceCode(
                user_code, form["client_id"], form.get("scope", ""), self.clock.now() + lifetime
            )
        uri = f"{request.origin}/_emulator/device"
        return json_response(
            200,
            {
                "user_code": user_code,
                "device_code": device_code,
                "verification_uri": uri,
                "expires_in": int(lifetime),
                "interval": self.settings.device_code_interval,
                "message": f"To sign in, use a web browser to open the page {uri} and enter the code {user_code} "
                f"to authenticate. (Emulator: POST {request.origin}/_emulator/device/approve "
                f"with user_code={user_code} and the X-Emulator-Token header set to the emulator's control_token.)",
            },
        )

    def _check_client_id(self, client_id: str | None, tenant: str) -> None:
        if not client_id:
            raise IdentityError(
                400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
            )
        if client_id != self.app.client_id:
            raise IdentityError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can "
                "happen if the application has not been installed by the administrator of the tenant.",
            )

    def token(self, request: Request, tenant: str) -> Response:
        segment = self._tenant(tenant)
        form = self._form(request)
        basic = request.header("authorization") or ""
        if basic.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            form.setdefault("client_id", client_id)
            form.setdefault("client_secret", secret)
        self._check_client_id(form.get("client_id"), tenant)
        grant_type = form.get("grant_type", "")
        confidential = self._authenticate_client(request, form, segment)
        if grant_type == "client_credentials":
            if not confidential:
                raise IdentityError(
                    401,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                )
            return self._app_token(form)
        if grant_type == "refresh_token":
            return self._redeem_refresh_token(form)
        if grant_type == "urn:ietf:params:oauth:grant-type:device_code":
            return self._redeem_device_code(form)
        raise IdentityError(
            400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
        )

    def _authenticate_client(self, request: Request, form: dict[str, str], tenant: str) -> bool:
        """Check a secret or certificate assertion if one is given; True when the client proved itself."""
        if "client_secret" in form:
            if not hmac.compare_digest(form["client_secret"].encode(), self.app.client_secret.encode()):
                raise IdentityError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                    f"secret value, not the client secret ID, for a secret added to app '{self.app.client_id}'.",
                )
            return True
        if "client_assertion" in form:
            if self.federation is not None and self._is_federated(form):
                self.federation.verify(self, form["client_assertion"])
            else:
                self._verify_assertion(request, form, tenant)
            return True
        return False

    def _is_federated(self, form: dict[str, str]) -> bool:
        """A jwt-bearer assertion issued by someone other than the app itself: workload identity federation."""
        if form.get("client_assertion_type") != JWT_BEARER:
            return False
        parts = form["client_assertion"].split(".")
        try:
            claims = json.loads(b64url_decode(parts[1])) if len(parts) == 3 else {}
        except ValueError:
            return False
        return isinstance(claims, dict) and claims.get("iss") not in (None, self.app.client_id)

    def _verify_assertion(self, request: Request, form: dict[str, str], tenant: str) -> None:
        def fail(reason: str) -> IdentityError:
            return IdentityError(
                401, "invalid_client", 700027, f"Client assertion failed signature validation. {reason}"
            )

        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            raise fail("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.")
        try:
            head_b64, body_b64, sig_b64 = form["client_assertion"].split(".")
            header = json.loads(b64url_decode(head_b64))
            claims = json.loads(b64url_decode(body_b64))
            signature = b64url_decode(sig_b64)
        except ValueError as exc:
            raise fail("The assertion is not a well-formed JWT.") from exc
        cert = self.app.certificate
        if (
            str(header.get("x5t#S256", "")).rstrip("=") != cert.x5t_s256
            and str(header.get("x5t", "")).rstrip("=") != cert.x5t
        ):
            raise fail("The key thumbprint (x5t / x5t#S256) does not match a certificate registered on the app.")
        alg = header.get("alg")
        pad: padding.AsymmetricPadding
        if alg == "RS256":
            pad = padding.PKCS1v15()
        elif alg == "PS256":
            pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        else:
            raise fail(f"Unsupported signing algorithm '{alg}'.")
        try:
            cert.public_key.verify(signature, f"{head_b64}.{body_b64}".encode(), pad, hashes.SHA256())
        except InvalidSignature as exc:
            raise fail("The signature does not verify with the registered certificate.") from exc
        audiences = {f"{request.origin}/{t}/oauth2/v2.0/token" for t in (tenant, self.tenant_id, self.tenant_domain)}
        if claims.get("aud") not in audiences:
            raise fail(f"Invalid audience '{claims.get('aud')}'; expected the token endpoint.")
        if claims.get("iss") != self.app.client_id or claims.get("sub") != self.app.client_id:
            raise fail("The iss and sub claims must both be the client id.")
        if float(claims.get("exp", 0)) <= self.clock.now():
            raise fail("The assertion has expired.")

    def _audience(self, scopes: str) -> str:
        for scope in scopes.split():
            if "://" in scope or scope.startswith(GRAPH_AUDIENCES[1]):
                return scope.rsplit("/", 1)[0]
        return GRAPH_AUDIENCES[0]

    def _app_token(self, form: dict[str, str]) -> Response:
        scopes = form.get("scope", "").split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise IdentityError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {form.get('scope', '')} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        token = self.access_token(self.app.client_id, None, "", self._audience(scopes[0]))
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": int(self.settings.token_lifetime),
                "ext_expires_in": int(self.settings.token_lifetime),
                "access_token": token,
            },
        )

    def _delegated_response(self, user: DirectoryUser, scopes: str, auth_time: float | None = None) -> Response:
        granted = " ".join(s for s in scopes.split() if s not in OIDC_SCOPES) or "User.Read"
        payload: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": granted,
            "expires_in": int(self.settings.token_lifetime),
            "ext_expires_in": int(self.settings.token_lifetime),
            "access_token": self.access_token(self.app.client_id, user, granted, self._audience(scopes)),
            "client_info": b64url(json.dumps({"uid": user.id, "utid": self.tenant_id}).encode()),
        }
        if "offline_access" in scopes.split():
            payload["refresh_token"] = self.issue_refresh_token(user, scopes, auth_time=auth_time)
        now = int(self.clock.now())
        id_claims = {
            "aud": self.app.client_id,
            "iss": f"https://login.microsoftonline.com/{self.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": user.display_name,
            "oid": user.id,
            "preferred_username": user.upn,
            "sub": b64url(hashlib.sha256(user.id.encode()).digest()),
            "tid": self.tenant_id,
            "ver": "2.0",
        }
        payload["id_token"] = self._jwt(id_claims)
        return json_response(200, payload)

    def _redeem_refresh_token(self, form: dict[str, str]) -> Response:
        token = form.get("refresh_token", "")
        now = self.clock.now()
        settings = self.settings
        with self._lock:
            grant = self._state.refresh_tokens.get(token)
            if grant is None or grant.client_id != form["client_id"]:
                raise IdentityError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
            if grant.revoked_at is not None:
                # AADSTS50173's text from Entra's error lookup (login.microsoftonline.com/error?code=50173, as
                # quoted in Microsoft Tech Community "Refresh Token" threads).
                raise IdentityError(
                    400,
                    "invalid_grant",
                    50173,
                    "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user "
                    "might have changed or reset their password. The grant was issued on "
                    f"'{_entra_time(grant.auth_time)}' and the TokensValidFrom date (before which tokens are not "
                    f"valid) for this user is '{_entra_time(grant.revoked_at)}'.",
                )
            lifetime = settings.refresh_token_lifetime
            if now - grant.issued >= lifetime:
                # Each token's 90 days count from its own issue: redeeming an old token returns a fresh one but
                # does not extend the old one (reports of AADSTS700082 on a token "used yesterday" that was
                # "issued on <90 days ago> and was inactive for 90.00:00:00").
                raise IdentityError(
                    400,
                    "invalid_grant",
                    700082,
                    "The refresh token has expired due to inactivity. The token was issued on "
                    f"{_entra_time(grant.issued)} and was inactive for {_timespan(lifetime)}.",
                )
            single_use = settings.refresh_token_reuse == "single_use"
            if single_use and grant.used_at is not None and now - grant.used_at > settings.refresh_token_reuse_grace:
                raise IdentityError(
                    400,
                    "invalid_grant",
                    70000,
                    "The provided value for the 'refresh_token' is not valid: it was already redeemed (emulator "
                    "setting refresh_token_reuse='single_use'; use the one returned by the last refresh).",
                )
            grant.used_at = now if grant.used_at is None else grant.used_at
            user, scopes, auth_time = grant.user, form.get("scope") or grant.scopes, grant.auth_time
        return self._delegated_response(user, scopes, auth_time)

    def _redeem_device_code(self, form: dict[str, str]) -> Response:
        now = self.clock.now()
        with self._lock:
            code = self._state.device_codes.get(form.get("device_code", ""))
            if code is None or code.redeemed:
                raise IdentityError(400, "invalid_grant", 70000, "The provided value for 'device_code' is not valid.")
            if code.expires <= now:
                raise IdentityError(
                    400,
                    "expired_token",
                    70020,
                    "The provided value for the input parameter "
                    "'device_code' is not valid. This device code has expired.",
                )
            too_soon = now - code.last_poll < self.settings.device_code_interval
            code.last_poll = now
            if code.declined:
                raise IdentityError(400, "authorization_declined", 70019, "The user declined the sign-in request.")
            if code.user is None:
                if self.settings.device_code_enforce_interval and too_soon:
                    raise IdentityError(400, "slow_down", 70023, "Polling too fast; wait for the interval.")
                raise IdentityError(
                    400,
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                )
            code.redeemed = True
            user, scopes = code.user, code.scopes
        return self._delegated_response(user, scopes)
