"""Secretless credentials in the emulator: workload identity federation and managed identities.

Workload identity federation (learn.microsoft.com/entra/workload-id/workload-identity-federation, and the client
credentials flow's "third case: access token request with a federated credential",
learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow#third-case-access-token-request-with-a-federated-credential):
an external issuer (a Kubernetes cluster's OIDC issuer) signs a token; the app registration holds a *federated
identity credential* naming that issuer, the token's subject and the audience ``api://AzureADTokenExchange``; the
token endpoint accepts the token as ``client_assertion`` and checks its signature with the issuer's published
JWKS. Here :class:`TrustedIssuer` is that issuer (an RSA key pair whose public JWK the emulator holds, as Entra
holds the JWKS it fetched from the issuer's discovery document) and :meth:`TrustedIssuer.mint` writes what the
kubelet projects into a pod (``AZURE_FEDERATED_TOKEN_FILE``).

Managed identities: the Instance Metadata Service token endpoint of VMs and AKS nodes
(learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token#get-a-token-using-http:
``GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...`` with ``Metadata: true``, optional
``client_id`` / ``object_id`` / ``msi_res_id``), and the App Service / Functions identity endpoint
(learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference: ``GET
$IDENTITY_ENDPOINT?resource=...&api-version=2019-08-01`` with ``X-IDENTITY-HEADER: $IDENTITY_HEADER``, optional
``client_id`` / ``principal_id`` (alias ``object_id``) / ``mi_res_id``). Both answer with ``expires_on`` (and IMDS
``expires_in``) as strings, as documented.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from airflow_provider_onedrive.testing.wire import IdentityError, Request, Response, json_response

__all__ = [
    "FEDERATION_AUDIENCE",
    "FederatedCredential",
    "ManagedIdentity",
    "TrustedIssuer",
    "default_managed_identities",
]

#: The audience Microsoft recommends (and the portal fills in) for federated identity credentials.
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
#: ``client_assertion_type`` of every assertion-based client authentication (RFC 7523).
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The service account AKS projects a token for in the emulator's default registration.
DEFAULT_SUBJECT = "system:serviceaccount:airflow:airflow-worker"
GRAPH_RESOURCES = ("https://graph.microsoft.com", "https://graph.microsoft.com/")
DEFAULT_ROLES = ("Files.ReadWrite.All", "Sites.ReadWrite.All")


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_to_b64url(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _entra_time(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 10:07d}Z"


class Identity(Protocol):
    """What this module needs of the emulator's identity platform (kept as a protocol: identity imports us)."""

    clock: Any
    settings: Any
    tenant_id: str

    def managed_identity_token(self, managed: ManagedIdentity, audience: str) -> str: ...


class TrustedIssuer:
    """An external OIDC issuer (e.g. an AKS cluster's) that signs service-account tokens with an RSA key.

    The emulator keeps only :attr:`jwks` (public keys), as Entra does after fetching the issuer's discovery
    document; :meth:`mint` signs with the private key, as the cluster does.
    """

    def __init__(self, issuer: str, *, key: rsa.RSAPrivateKey | None = None) -> None:
        self.issuer = issuer
        self._key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._key.public_key().public_numbers()
        self.kid = _b64url(secrets.token_bytes(12))
        self.jwks = {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "n": _int_to_b64url(numbers.n),
                    "e": _int_to_b64url(numbers.e),
                }
            ]
        }

    def token(
        self,
        subject: str = DEFAULT_SUBJECT,
        *,
        audience: str = FEDERATION_AUDIENCE,
        lifetime: float = 3600,
        now: float | None = None,
        issuer: str | None = None,
    ) -> str:
        """A signed service-account token (RS256 JWT), shaped like the ones Kubernetes projects."""
        import time

        issued = int(time.time() if now is None else now)
        namespace, _, name = subject.removeprefix("system:serviceaccount:").partition(":")
        claims = {
            "aud": [audience],
            "exp": int(issued + lifetime),
            "iat": issued,
            "nbf": issued,
            "iss": issuer or self.issuer,
            "sub": subject,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": str(uuid.uuid4())}},
        }
        header = _b64url(json.dumps({"alg": "RS256", "kid": self.kid, "typ": "JWT"}).encode())
        body = _b64url(json.dumps(claims).encode())
        signature = self._key.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{body}.{_b64url(signature)}"

    def mint(self, path: str | os.PathLike[str], subject: str = DEFAULT_SUBJECT, **kwargs: Any) -> Path:
        """Write a token as the kubelet projects it (the file ``AZURE_FEDERATED_TOKEN_FILE`` names), atomically,
        mode 0600; returns the path. Keyword arguments as for :meth:`token`."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(self.token(subject, **kwargs))
        os.replace(temporary, target)
        return target

    def public_key(self, kid: str | None) -> rsa.RSAPublicKey | None:
        """The issuer's public key ``kid`` from its JWKS (None if it publishes no such key)."""
        for jwk in self.jwks["keys"]:
            if kid is None or jwk["kid"] == kid:
                n = int.from_bytes(_b64url_decode(jwk["n"]), "big")
                e = int.from_bytes(_b64url_decode(jwk["e"]), "big")
                return rsa.RSAPublicNumbers(e, n).public_key()
        return None


@dataclass(frozen=True)
class FederatedCredential:
    """A federated identity credential on the app registration (Graph's ``federatedIdentityCredential``)."""

    issuer: str
    subject: str
    audiences: tuple[str, ...] = (FEDERATION_AUDIENCE,)
    name: str = "airflow-worker"


@dataclass(frozen=True)
class ManagedIdentity:
    """A managed identity assigned to the emulated compute resource: its service principal's ids and roles."""

    client_id: str
    object_id: str
    resource_id: str | None = None  # None: the system-assigned identity
    roles: tuple[str, ...] = DEFAULT_ROLES
    display_name: str = "airflow-vm"

    @property
    def system_assigned(self) -> bool:
        return self.resource_id is None


def default_managed_identities(tenant_id: str) -> tuple[ManagedIdentity, ...]:
    """The emulated VM's identities: its system-assigned one and one user-assigned identity."""
    del tenant_id
    sub = "00000000-0000-0000-0000-000000000000"
    resource_id = (
        f"/subscriptions/{sub}/resourceGroups/airflow/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
        "airflow-onedrive"
    )
    return (
        ManagedIdentity(str(uuid.uuid4()), str(uuid.uuid4()), None, display_name="airflow-vm"),
        ManagedIdentity(str(uuid.uuid4()), str(uuid.uuid4()), resource_id, display_name="airflow-onedrive"),
    )


@dataclass
class Federation:
    """The emulator's trusted issuer, federated credentials and managed identities (state reset with the emulator)."""

    issuer: TrustedIssuer
    credentials: list[FederatedCredential] = field(default_factory=list)
    managed_identities: tuple[ManagedIdentity, ...] = ()
    identity_header: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    #: ``(subject, jti)`` of every federated assertion the token endpoint accepted, oldest first.
    accepted: list[tuple[str, str]] = field(default_factory=list)

    # -- workload identity federation -------------------------------------------------------------------
    def verify(self, identity: Identity, assertion: str) -> None:
        """Accept a federated ``client_assertion`` for the app, or raise the error Entra ID answers with."""
        try:
            head_b64, body_b64, sig_b64 = assertion.split(".")
            header = json.loads(_b64url_decode(head_b64))
            claims = json.loads(_b64url_decode(body_b64))
            signature = _b64url_decode(sig_b64)
        except ValueError as exc:
            raise IdentityError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from exc
        issuer, subject = str(claims.get("iss", "")), str(claims.get("sub", ""))
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        # Matching is case-sensitive on issuer, subject and audience.
        matched = [
            c
            for c in self.credentials
            if c.issuer == issuer and c.subject == subject and any(a in c.audiences for a in audiences)
        ]
        if not matched:
            # The message Entra ID gives (azure-workload-identity troubleshooting, "AADSTS70021: No matching
            # federated identity record found for presented assertion").
            raise IdentityError(
                400,
                "invalid_request",
                70021,
                "No matching federated identity record found for presented assertion. "
                f"Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'. "
                f"Assertion Audience: '{','.join(str(a) for a in audiences)}'.",
            )
        key = self.issuer.public_key(header.get("kid")) if issuer == self.issuer.issuer else None
        if header.get("alg") != "RS256" or key is None:
            raise IdentityError(
                401,
                "invalid_client",
                50013,
                "Assertion failed signature validation. [Reason - The key was not found.]",
            )
        try:
            key.verify(signature, f"{head_b64}.{body_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise IdentityError(
                401,
                "invalid_client",
                50013,
                "Assertion failed signature validation. [Reason - The provided signature value did not match the "
                "expected signature value.]",
            ) from exc
        now = identity.clock.now()
        not_before, expires = float(claims.get("nbf", claims.get("iat", 0))), float(claims.get("exp", 0))
        if not not_before - 300 <= now < expires:
            raise IdentityError(
                401,
                "invalid_client",
                700024,
                f"Client assertion is not within its valid time range. Current time: {_entra_time(now)}, assertion "
                f"valid from {_entra_time(not_before)}, expiry time of assertion {_entra_time(expires)}.",
            )
        self.accepted.append((subject, str(claims.get("jti", ""))))

    # -- managed identities -----------------------------------------------------------------------------
    def _select(self, query: dict[str, str], names: dict[str, str]) -> ManagedIdentity:
        given = {kind: query[name] for name, kind in names.items() if query.get(name)}
        if len(given) > 1:
            raise _MiError(400, "invalid_request", "Only one of client_id, object_id and msi_res_id may be given.")
        if not given:
            for candidate in self.managed_identities:
                if candidate.system_assigned:
                    return candidate
            user_assigned = [m for m in self.managed_identities if not m.system_assigned]
            if len(user_assigned) == 1:  # documented: a VM with one user-assigned identity answers with it
                return user_assigned[0]
            raise _MiError(400, "invalid_request", "Identity not found")
        ((kind, value),) = given.items()
        for candidate in self.managed_identities:
            ids = {"client_id": candidate.client_id, "object_id": candidate.object_id}
            ids["resource_id"] = candidate.resource_id or ""
            if ids[kind] and ids[kind].lower() == value.lower():
                return candidate
        raise _MiError(400, "invalid_request", "Identity not found")

    def _token(self, identity: Identity, managed: ManagedIdentity, resource: str) -> tuple[str, float, float]:
        if resource not in GRAPH_RESOURCES:
            raise _MiError(
                400,
                "invalid_resource",
                f"AADSTS500011: The resource principal named {resource} was not found in the tenant named "
                f"{identity.tenant_id}.",
            )
        now = identity.clock.now()
        token = identity.managed_identity_token(managed, resource.rstrip("/"))
        return token, now, now + identity.settings.token_lifetime

    def imds(self, identity: Identity, request: Request) -> Response:
        """``GET /metadata/identity/oauth2/token``: the Instance Metadata Service's managed-identity token."""
        if request.method != "GET":
            return json_response(405, {"error": "invalid_request", "error_description": "Only GET is allowed."})
        try:
            if request.header("metadata") != "true":
                # how-to-use-vm-token, "Error handling": 400 bad_request_102 "Required metadata header not specified"
                raise _MiError(400, "bad_request_102", "Required metadata header not specified")
            if request.header("x-forwarded-for") is not None:
                raise _MiError(400, "invalid_request", "Requests with an X-Forwarded-For header are rejected.")
            if not request.query.get("api-version"):
                raise _MiError(400, "invalid_request", "Required query variable 'api-version' is missing")
            resource = request.query.get("resource", "")
            if not resource:
                raise _MiError(400, "invalid_request", "Required query variable 'resource' is missing")
            managed = self._select(
                request.query, {"client_id": "client_id", "object_id": "object_id", "msi_res_id": "resource_id"}
            )
            token, now, expires = self._token(identity, managed, resource)
        except _MiError as exc:
            return json_response(exc.status, {"error": exc.error, "error_description": exc.description})
        return json_response(
            200,
            {
                "access_token": token,
                "client_id": managed.client_id,
                "expires_in": str(int(expires - now)),
                "expires_on": str(int(expires)),
                "ext_expires_in": str(int(expires - now)),
                "not_before": str(int(now)),
                "resource": resource,
                "token_type": "Bearer",
            },
        )

    def app_service(self, identity: Identity, request: Request) -> Response:
        """``GET $IDENTITY_ENDPOINT`` (``/msi/token``): App Service's and Functions' managed-identity token."""
        try:
            if request.header("x-identity-header") != self.identity_header:
                raise _MiError(401, "unauthorized", "The X-IDENTITY-HEADER header is missing or wrong.")
            if request.query.get("api-version") != "2019-08-01":
                raise _MiError(400, "invalid_request", "api-version must be 2019-08-01.")
            resource = request.query.get("resource", "")
            if not resource:
                raise _MiError(400, "invalid_request", "The resource parameter is required.")
            query = dict(request.query)
            if "principal_id" in query:  # object_id is documented as an alias of principal_id
                query.setdefault("object_id", query.pop("principal_id"))
            managed = self._select(
                query, {"client_id": "client_id", "object_id": "object_id", "mi_res_id": "resource_id"}
            )
            token, _, expires = self._token(identity, managed, resource)
        except _MiError as exc:
            return json_response(exc.status, {"statusCode": exc.status, "message": exc.description})
        return json_response(
            200,
            {
                "access_token": token,
                "expires_on": str(int(expires)),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": managed.client_id,
            },
        )


class _MiError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description
