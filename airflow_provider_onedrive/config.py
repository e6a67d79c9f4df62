"""Connection settings: parse and validate an ``onedrive`` connection before any network I/O.

No Airflow imports: :meth:`ConnectionSettings.from_connection_fields` takes the plain fields of a connection
(login, password, extra), so the same validation serves the hook, the CLI and plain Python. Every error is a
:class:`~airflow_provider_onedrive.errors.OneDriveConfigError` naming the connection, the field and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_onedrive.certificates import certificate_thumbprints, key_pair_problem, rewrap_pem
from airflow_provider_onedrive.drives import DRIVE_TYPES, select_drive
from airflow_provider_onedrive.errors import OneDriveConfigError
from airflow_provider_onedrive.graph import check_service_url

__all__ = [
    "AUTH_TYPES",
    "CLOUDS",
    "DELEGATED_SCOPES",
    "DELEGATED_TENANTS",
    "DRIVE_TYPES",
    "MANAGED_IDENTITY_SELECTORS",
    "RESERVED_SCOPES",
    "SECRETLESS_AUTH_TYPES",
    "Cloud",
    "ConnectionSettings",
    "certificate_thumbprints",
]

AUTH_TYPES = ("client_secret", "certificate", "refresh_token", "workload_identity", "managed_identity")
#: App-only auth types that hold no secret: a federated token file, or the compute resource's managed identity.
SECRETLESS_AUTH_TYPES = ("workload_identity", "managed_identity")
#: Extras that pick a user-assigned managed identity -> what MSAL's UserAssignedManagedIdentity calls them.
MANAGED_IDENTITY_SELECTORS = {
    "managed_identity_client_id": "client_id",
    "managed_identity_object_id": "object_id",
    "managed_identity_resource_id": "resource_id",
}
#: Multi-tenant pseudo-tenants; only a delegated (user) sign-in can use them.
DELEGATED_TENANTS = ("common", "organizations", "consumers")
_LEGACY_PREFIX = "extra__onedrive__"
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
#: Scopes MSAL adds to every delegated request itself (they are never prefixed with a resource).
RESERVED_SCOPES = ("offline_access", "openid", "profile")
#: What a delegated connection asks for unless extra 'scopes' says otherwise.
DELEGATED_SCOPES = ("Files.ReadWrite.All", "offline_access", "User.Read")


@dataclass(frozen=True)
class Cloud:
    """A Microsoft cloud: where Graph and the identity platform live."""

    graph_host: str
    authority_host: str


CLOUDS: dict[str, Cloud] = {
    "global": Cloud("graph.microsoft.com", "login.microsoftonline.com"),
    "us_gov": Cloud("graph.microsoft.us", "login.microsoftonline.us"),
    "us_gov_dod": Cloud("dod-graph.microsoft.us", "login.microsoftonline.us"),
    "china": Cloud("microsoftgraph.chinacloudapi.cn", "login.chinacloudapi.cn"),
}


@dataclass(frozen=True, repr=False)
class ConnectionSettings:
    """Everything needed to talk to one drive, validated. Build it with :meth:`from_connection_fields`.

    Secrets (client secret, private key, passphrase, refresh token) never appear in ``repr``.
    """

    conn_id: str
    client_id: str
    tenant_id: str
    auth_type: str
    graph_url: str
    authority_host: str
    scopes: tuple[str, ...]
    drive_type: str
    drive_value: str | None = None
    library: str | None = None
    cloud: str = "global"
    client_secret: str | None = None
    certificate_pem: str | None = None
    private_key_pem: str | None = None
    private_key_passphrase: str | None = None
    refresh_token: str | None = None
    ca_bundle: str | None = None
    proxies: tuple[tuple[str, str], ...] = ()
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    token_store: str | None = None
    upload_state: str | None = None
    download_streams: int | None = None
    fsync_downloads: bool | None = None
    federated_token_file: str | None = None
    managed_identity_id_type: str | None = None  # client_id, object_id or resource_id; None: system-assigned
    managed_identity_id: str | None = None

    # -- derived values ---------------------------------------------------------------------------------
    @property
    def is_delegated(self) -> bool:
        """True when tokens act for a signed-in user (refresh-token flow), False for app-only credentials."""
        return self.auth_type == "refresh_token"

    @property
    def managed_identity_resource(self) -> str:
        """The resource a managed-identity token is requested for: the scope without ``/.default``."""
        return self.scopes[0].removesuffix("/.default")

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def verify(self) -> bool | str:
        return self.ca_bundle or True

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    @property
    def proxies_dict(self) -> dict[str, str]:
        return dict(self.proxies)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value of this connection (to scrub from messages)."""
        values = (self.client_secret, self.private_key_pem, self.private_key_passphrase, self.refresh_token)
        return tuple(v for v in values if v)

    def credential_key(self) -> str:
        """A stable hash of everything that identifies a credential; safe to use as a cache key or file name."""
        digest = hashlib.sha256()
        for name in (
            "client_id",
            "tenant_id",
            "auth_type",
            "authority_host",
            "client_secret",
            "certificate_pem",
            "private_key_pem",
            "private_key_passphrase",
            "refresh_token",
            "ca_bundle",
            "federated_token_file",
            "managed_identity_id_type",
            "managed_identity_id",
        ):
            digest.update(name.encode() + b"\0" + str(getattr(self, name) or "").encode() + b"\0")
        digest.update(repr((self.scopes, self.proxies, self.connect_timeout, self.read_timeout)).encode())
        return digest.hexdigest()

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("client_secret", "private_key_pem", "private_key_passphrase", "refresh_token"):
                value = "***" if value else None
            elif f.name == "certificate_pem":
                value = "<certificate>" if value else None
            elif f.name == "proxies":
                value = "***" if value else ()  # proxy URLs may embed credentials
            shown.append(f"{f.name}={value!r}")
        return f"ConnectionSettings({', '.join(shown)})"

    # -- parsing ----------------------------------------------------------------------------------------
    @classmethod
    def from_connection_fields(
        cls,
        conn_id: str,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any] | str | None,
    ) -> ConnectionSettings:
        """Validate a connection's fields and return its settings (reads certificate files, no network I/O).

        :param extra: the extra mapping or its JSON text; both plain keys and Airflow's legacy
            ``extra__onedrive__<name>`` keys are accepted.
        :raises OneDriveConfigError: naming the connection, the field and the fix.
        """
        return _Parser(conn_id, login, password, extra).parse()


class _Parser:
    def __init__(self, conn_id: str, login: str | None, password: str | None, extra: Any) -> None:
        self.conn_id = conn_id
        self.login = _clean(login)
        self.password = _clean(password)
        self.extra = self._normalise_extra(extra)

    def fail(self, message: str) -> OneDriveConfigError:
        return OneDriveConfigError(f"connection {self.conn_id!r}: {message}")

    def _normalise_extra(self, extra: Any) -> dict[str, Any]:
        if extra is None or extra == "":
            return {}
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except ValueError:
                raise self.fail("'extra' is not valid JSON; write it as a JSON object") from None
        if not isinstance(extra, Mapping):
            raise self.fail("'extra' must be a JSON object")
        result: dict[str, Any] = {}
        for key, value in extra.items():
            name = key[len(_LEGACY_PREFIX) :] if key.startswith(_LEGACY_PREFIX) else key
            value = _clean(value)
            if value is not None and (name not in result or key == name):
                result[name] = value
        return result

    def get(self, name: str) -> Any:
        return self.extra.get(name)

    def text(self, name: str) -> str | None:
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(f"extra {name!r} must be a string, got {type(value).__name__}")
        return value

    def parse(self) -> ConnectionSettings:
        auth_type = self.auth_type()
        client_id = self.client_id(auth_type)
        tenant_id = self.tenant(auth_type)
        cloud, graph_url, authority_host = self.endpoints(auth_type)
        secret, cert, key, passphrase, refresh_token = self.credentials(auth_type)
        federated_token_file = self.federated_token_file(auth_type)
        mi_type, mi_id = self.managed_identity(auth_type)
        token_store = self.token_store()
        if auth_type == "refresh_token" and not refresh_token and token_store in (None, "none"):
            raise self.fail(
                "auth_type 'refresh_token' needs extra 'refresh_token' (from a delegated sign-in, e.g. "
                "`airflow-onedrive login`), or a token_store that already holds one"
            )
        drive_type, drive_value, library = self.drive(auth_type)
        connect_timeout = self.timeout_value("connect_timeout", 10.0)
        read_timeout = self.timeout_value("read_timeout", 120.0)
        return ConnectionSettings(
            conn_id=self.conn_id,
            client_id=client_id,
            tenant_id=tenant_id,
            auth_type=auth_type,
            graph_url=graph_url,
            authority_host=authority_host,
            scopes=self.scopes(auth_type, cloud),
            drive_type=drive_type,
            drive_value=drive_value,
            library=library,
            cloud=cloud,
            client_secret=secret,
            certificate_pem=cert,
            private_key_pem=key,
            private_key_passphrase=passphrase,
            refresh_token=refresh_token,
            ca_bundle=self.ca_bundle(),
            proxies=self.proxies(),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            token_store=token_store,
            upload_state=self.upload_state(),
            download_streams=self.download_streams(),
            fsync_downloads=self.flag("fsync_downloads"),
            federated_token_file=federated_token_file,
            managed_identity_id_type=mi_type,
            managed_identity_id=mi_id,
        )

    def client_id(self, auth_type: str) -> str:
        """The application (client) id; workload identity falls back to AZURE_CLIENT_ID, a managed identity
        needs none (its own id, if any, selects a user-assigned identity)."""
        if auth_type == "managed_identity":
            return self.login or self.text("managed_identity_client_id") or ""
        client_id = self.login
        if not client_id and auth_type == "workload_identity":
            client_id = _clean(os.environ.get("AZURE_CLIENT_ID"))
            if not client_id:
                raise self.fail(
                    "auth_type workload_identity needs the application (client) id: put it in the login field, "
                    "or set the AZURE_CLIENT_ID environment variable (AKS's workload identity webhook sets it from "
                    "the service account's azure.workload.identity/client-id annotation)"
                )
        if not client_id:
            raise self.fail(
                "the application (client) id is missing: put it in the connection's login field "
                "(Application (client) ID)"
            )
        return client_id.strip()

    def auth_type(self) -> str:
        auth_type = self.text("auth_type")
        if auth_type is None:
            if self.get("refresh_token"):
                return "refresh_token"
            if self.get("federated_token_file"):
                return "workload_identity"
            if any(self.get(n) for n in ("certificate", "certificate_path", "private_key", "private_key_path")):
                return "certificate"
            return "client_secret"
        auth_type = auth_type.strip().lower()
        if auth_type not in AUTH_TYPES:
            raise self.fail(f"extra 'auth_type' is {auth_type!r}; use one of {', '.join(AUTH_TYPES)}")
        return auth_type

    def tenant(self, auth_type: str) -> str:
        tenant = self.text("tenant_id")
        if not tenant and auth_type == "workload_identity":
            tenant = _clean(os.environ.get("AZURE_TENANT_ID"))
            if not tenant:
                raise self.fail(
                    "extra 'tenant_id' is required for auth_type workload_identity: set it to the Directory "
                    "(tenant) ID, or set the AZURE_TENANT_ID environment variable (AKS's workload identity webhook "
                    "sets it)"
                )
        if not tenant and auth_type == "managed_identity":
            return ""  # the managed identity endpoint knows its tenant
        if not tenant:
            raise self.fail(
                f"extra 'tenant_id' is required for auth_type {auth_type}: set it to the Directory (tenant) ID "
                "or the tenant's domain (e.g. contoso.onmicrosoft.com)"
            )
        tenant = tenant.strip()
        if not _TENANT_RE.match(tenant):
            raise self.fail(f"extra 'tenant_id' {tenant!r} is not a tenant GUID or domain name")
        if tenant.lower() in DELEGATED_TENANTS and auth_type != "refresh_token":
            raise self.fail(
                f"extra 'tenant_id' is {tenant!r}, which only works for delegated sign-in; app-only "
                f"credentials ({auth_type}) need your Directory (tenant) ID or domain"
            )
        return tenant

    def endpoints(self, auth_type: str) -> tuple[str, str, str]:
        cloud = (self.text("cloud") or "global").strip().lower()
        if cloud not in CLOUDS:
            raise self.fail(f"extra 'cloud' is {cloud!r}; use one of {', '.join(CLOUDS)}")
        graph_url = self.text("graph_url") or f"https://{CLOUDS[cloud].graph_host}/v1.0"
        authority_host = self.text("authority_host")
        if not authority_host and auth_type == "workload_identity" and not self.text("cloud"):
            authority_host = _clean(os.environ.get("AZURE_AUTHORITY_HOST"))  # e.g. https://login.microsoftonline.com/
            if authority_host:
                authority_host = authority_host.strip().rstrip("/")
        authority_host = authority_host or f"https://{CLOUDS[cloud].authority_host}"
        try:
            graph_url = check_service_url(graph_url.strip(), field="extra 'graph_url'")
            authority_host = check_service_url(authority_host.strip(), field="extra 'authority_host'")
        except OneDriveConfigError as exc:
            raise self.fail(exc.message) from None
        if urlsplit(authority_host).scheme != "https":
            raise self.fail(
                f"extra 'authority_host' {authority_host!r} must use https (MSAL refuses plain http authorities)"
            )
        if urlsplit(graph_url).path in ("", "/"):
            graph_url += "/v1.0"
        if urlsplit(authority_host).path not in ("", "/"):
            raise self.fail(
                f"extra 'authority_host' {authority_host!r} must be the identity host without a tenant or path "
                "(e.g. https://login.microsoftonline.com); put the tenant in 'tenant_id'"
            )
        return cloud, graph_url, authority_host

    def credentials(self, auth_type: str) -> tuple[str | None, str | None, str | None, str | None, str | None]:
        secret = self.password
        cert = self.pem("certificate", "certificate_path", "certificate")
        key = self.pem("private_key", "private_key_path", "private key")
        passphrase = self.text("private_key_passphrase")
        refresh_token = self.text("refresh_token")
        has_cert_material = bool(cert or key)
        if auth_type in SECRETLESS_AUTH_TYPES:
            present = [
                name
                for name, value in (
                    ("the password (client secret)", secret),
                    ("a certificate or private key", has_cert_material),
                    ("extra 'refresh_token'", refresh_token),
                )
                if value
            ]
            if present:
                raise self.fail(
                    f"auth_type {auth_type} uses no secret, but {' and '.join(present)} is set; clear it, or set "
                    "auth_type to the credential you mean (client_secret, certificate or refresh_token)"
                )
            return None, None, None, None, None
        if auth_type == "client_secret":
            if has_cert_material:
                raise self.fail(
                    "both a client secret and a certificate are configured; keep one: set extra "
                    "auth_type to 'certificate' and clear the password, or remove the certificate extras"
                )
            if not secret:
                raise self.fail(
                    "auth_type client_secret needs the client secret in the connection's password field "
                    "(Client secret: the secret's Value from Certificates & secrets, not its ID)"
                )
            return secret, None, None, None, None
        if auth_type == "certificate":
            if secret:
                raise self.fail(
                    "both a client secret (password) and a certificate are configured; keep one: clear the "
                    "password to use the certificate, or set auth_type to client_secret"
                )
            if cert and not key and "PRIVATE KEY-----" in cert:
                key = cert  # one PEM holding certificate and key
            if not cert:
                raise self.fail(
                    "auth_type certificate needs the public certificate: set extra 'certificate_path' (PEM file) "
                    "or paste it into extra 'certificate'"
                )
            if not key:
                raise self.fail(
                    "a certificate is configured without its private key: set extra 'private_key_path' "
                    "(PEM file) or paste the key into extra 'private_key'"
                )
            self.check_key_pair(cert, key, passphrase)
            return None, cert, key, passphrase, None
        # refresh_token (delegated): a client secret is optional (confidential web app), certificates unused.
        if has_cert_material:
            raise self.fail(
                "auth_type refresh_token does not use a certificate; remove the certificate extras or set "
                "auth_type to certificate"
            )
        return secret, None, None, None, refresh_token

    def federated_token_file(self, auth_type: str) -> str | None:
        """The projected service-account token's path (workload identity): extra, else AZURE_FEDERATED_TOKEN_FILE.

        Only its presence is checked here; the file is read at each token request, because the kubelet rotates it.
        """
        path = self.text("federated_token_file")
        if auth_type != "workload_identity":
            if path:
                raise self.fail(
                    f"extra 'federated_token_file' is only used by auth_type workload_identity (this connection "
                    f"is {auth_type}); remove it or set auth_type to workload_identity"
                )
            return None
        source = "extra 'federated_token_file'"
        if not path:
            path = _clean(os.environ.get("AZURE_FEDERATED_TOKEN_FILE"))
            source = "the AZURE_FEDERATED_TOKEN_FILE environment variable"
        if not path:
            raise self.fail(
                "auth_type workload_identity needs the federated (projected service account) token file: set extra "
                "'federated_token_file' or the AZURE_FEDERATED_TOKEN_FILE environment variable (AKS sets it in pods "
                "whose service account is annotated azure.workload.identity/client-id and that carry the label "
                'azure.workload.identity/use: "true")'
            )
        path = os.path.expanduser(path.strip())
        if not os.path.isabs(path):
            raise self.fail(f"{source} {path!r} must be an absolute path")
        if not os.path.isfile(path):
            raise self.fail(
                f"the federated token file {path!r} from {source} does not exist on this machine; check that the "
                "service account token volume is projected into the pod (every worker, and the api-server for Test "
                "Connection)"
            )
        return path

    def managed_identity(self, auth_type: str) -> tuple[str | None, str | None]:
        """Which managed identity: None (system-assigned), or a user-assigned one by client, object or resource id."""
        given = {name: self.text(name) for name in MANAGED_IDENTITY_SELECTORS if self.text(name)}
        if auth_type != "managed_identity":
            if given:
                raise self.fail(
                    f"extra {sorted(given)[0]!r} is only used by auth_type managed_identity (this connection is "
                    f"{auth_type}); remove it or set auth_type to managed_identity"
                )
            return None, None
        if self.login:
            login = self.login.strip()
            if given.get("managed_identity_client_id", login) != login:
                raise self.fail(
                    "the login field and extra 'managed_identity_client_id' name different managed identities; keep one"
                )
            given["managed_identity_client_id"] = login
        if len(given) > 1:
            raise self.fail(
                f"{' and '.join(repr(n) for n in sorted(given))} are all set; a user-assigned managed identity is "
                "chosen by one of them (client id, object id or resource id); leave them all empty for the "
                "system-assigned identity"
            )
        if not given:
            return None, None
        ((name, value),) = given.items()
        value = str(value).strip()
        if name == "managed_identity_resource_id" and not value.lower().startswith("/subscriptions/"):
            raise self.fail(
                f"extra 'managed_identity_resource_id' {value!r} is not an Azure resource id (expected "
                "/subscriptions/<sub>/resourceGroups/<group>/providers/Microsoft.ManagedIdentity/"
                "userAssignedIdentities/<name>)"
            )
        return MANAGED_IDENTITY_SELECTORS[name], value

    def pem(self, pasted_name: str, path_name: str, what: str) -> str | None:
        pasted = self.text(pasted_name)
        path = self.text(path_name)
        if pasted and path:
            raise self.fail(f"both extra {pasted_name!r} and {path_name!r} are set; keep one")
        if path:
            path = os.path.expanduser(path)
            try:
                with open(path, encoding="utf-8") as handle:
                    pasted = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
                raise self.fail(
                    f"cannot read the {what} file {path!r} from extra {path_name!r} ({reason}); check the path "
                    "exists on every worker and is readable by the Airflow user"
                ) from None
        if pasted is None:
            return None
        pasted = rewrap_pem(pasted)
        if "-----BEGIN" not in pasted:
            source = path_name if path else pasted_name
            raise self.fail(f"extra {source!r} does not hold a PEM {what} (expected '-----BEGIN ...')")
        return pasted

    def check_key_pair(self, cert: str, key: str, passphrase: str | None) -> None:
        problem = key_pair_problem(cert, key, passphrase)
        if problem:
            raise self.fail(problem)

    def drive(self, auth_type: str) -> tuple[str, str | None, str | None]:
        kind, value, library = select_drive(self.text, delegated=auth_type == "refresh_token", fail=self.fail)
        if kind == "me" and auth_type != "refresh_token":
            raise self.fail(
                f"drive_type 'me' needs a signed-in user, but auth_type {auth_type} is app-only; use "
                "drive_type 'user' with extra 'user_id' (the user's UPN or id) instead"
            )
        return kind, value, library

    def scopes(self, auth_type: str, cloud: str) -> tuple[str, ...]:
        raw = self.get("scopes")
        if raw is not None:
            if isinstance(raw, str):
                if raw.strip().startswith("["):
                    try:
                        raw = json.loads(raw)
                    except ValueError:
                        raise self.fail("extra 'scopes' is not a valid JSON list") from None
                else:
                    raw = raw.replace(",", " ").split()
            if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw) or not raw:
                raise self.fail("extra 'scopes' must be a space-separated string or a JSON list of scopes")
            scopes = tuple(s.strip() for s in raw if s.strip())
            if auth_type == "managed_identity" and (len(scopes) != 1 or not scopes[0].endswith("/.default")):
                raise self.fail(
                    "a managed identity gets a token for one resource: extra 'scopes' must be a single "
                    "'<resource>/.default' such as https://graph.microsoft.com/.default (or empty)"
                )
            return scopes
        # The token's audience is the cloud's Graph resource, even when graph_url points at a proxy or emulator.
        resource = f"https://{CLOUDS[cloud].graph_host}"
        if auth_type != "refresh_token":
            return (f"{resource}/.default",)
        if cloud == "global":
            return DELEGATED_SCOPES
        return tuple(s if s in RESERVED_SCOPES else f"{resource}/{s}" for s in DELEGATED_SCOPES)

    def ca_bundle(self) -> str | None:
        path = self.text("ca_bundle")
        if path is None:
            return None
        path = os.path.expanduser(path.strip())
        if not os.path.exists(path):
            raise self.fail(f"extra 'ca_bundle' {path!r} does not exist; give the path of a PEM CA bundle")
        return path

    def proxies(self) -> tuple[tuple[str, str], ...]:
        raw = self.get("proxies")
        if raw is None:
            return ()
        if isinstance(raw, str):
            text = raw.strip()
            if text.startswith("{"):
                try:
                    raw = json.loads(text)
                except ValueError:
                    raise self.fail(
                        'extra \'proxies\' is not valid JSON; use {"https": "http://proxy:3128"} or one URL'
                    ) from None
            else:
                raw = {"http": text, "https": text}
        if not isinstance(raw, Mapping):
            raise self.fail('extra \'proxies\' must be a JSON object like {"https": "http://proxy:3128"} or a URL')
        result = []
        for scheme, url in raw.items():
            if not isinstance(url, str) or not urlsplit(url).scheme or not urlsplit(url).hostname:
                raise self.fail(f"extra 'proxies' entry {scheme!r} is not a proxy URL like http://proxy:3128")
            result.append((str(scheme), url))
        return tuple(sorted(result))

    def timeout_value(self, name: str, default: float) -> float:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise self.fail(f"extra {name!r} must be a number of seconds, got {raw!r}") from None
        if not value > 0 or value == float("inf"):
            raise self.fail(f"extra {name!r} must be a positive number of seconds, got {raw!r}")
        return value

    def download_streams(self) -> int | None:
        raw = self.get("download_streams")
        if raw is None or raw == "":
            return None
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise self.fail(f"extra 'download_streams' must be a whole number from 1 to 16, got {raw!r}") from None
        if not 1 <= value <= 16:
            raise self.fail(f"extra 'download_streams' must be from 1 (one stream) to 16, got {value}")
        return value

    def flag(self, name: str) -> bool | None:
        raw = self.get(name)
        if raw is None or raw == "":
            return None
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise self.fail(f"extra {name!r} must be true or false, got {raw!r}")

    def token_store(self) -> str | None:
        store = self.text("token_store")
        if store is None:
            return None
        store = store.strip()
        if store in ("variable", "none", "memory"):
            return store
        if store.startswith("file:"):
            path = os.path.expanduser(store[len("file:") :])
            if not os.path.isabs(path):
                raise self.fail(f"extra 'token_store' {store!r} needs an absolute path: file:/var/lib/x/token.json")
            return f"file:{path}"
        raise self.fail(f"extra 'token_store' is {store!r}; use variable, file:/absolute/path, memory or none")

    def upload_state(self) -> str | None:
        """Where unfinished upload sessions are remembered (see transfers.state): validated, not opened."""
        spec = self.text("upload_state")
        if spec is None:
            return None
        spec = spec.strip()
        if spec in ("local", "airflow"):
            return spec
        if spec.startswith("local:"):
            path = os.path.expanduser(spec[len("local:") :])
            if not os.path.isabs(path):
                raise self.fail(f"extra 'upload_state' {spec!r} needs an absolute path: local:/var/lib/x/uploads")
            return f"local:{path}"
        scheme = spec.split("://", 1)[0] if "://" in spec else ""
        if scheme and scheme.replace("+", "").replace("-", "").isalnum():
            return spec
        raise self.fail(
            f"extra 'upload_state' is {spec!r}; use local, local:/absolute/path, airflow (the metadata DB), or a "
            "URL every worker reaches such as file:///mnt/shared/onedrive-uploads"
        )


def _clean(value: Any) -> Any:
    """Empty strings (what a UI saves for an untouched field) mean 'not set'."""
    if isinstance(value, str) and not value.strip():
        return None
    return value
