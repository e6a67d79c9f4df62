"""GraphEmulator: a local Microsoft Graph (drive API) plus identity platform, over real loopback HTTP(S)."""

from __future__ import annotations

import collections
import hmac
import json
import re
import secrets
import tempfile
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from airflow_provider_onedrive.testing.addressing import Directory, Group, Site
from airflow_provider_onedrive.testing.batch import Batches
from airflow_provider_onedrive.testing.faults import FaultRule, Faults
from airflow_provider_onedrive.testing.federation import (
    FEDERATION_AUDIENCE,
    FederatedCredential,
    Federation,
    ManagedIdentity,
    TrustedIssuer,
    default_managed_identities,
)
from airflow_provider_onedrive.testing.graph_api import GraphApi
from airflow_provider_onedrive.testing.identity import DELEGATED_SCOPES, AppRegistration, Identity
from airflow_provider_onedrive.testing.render import UrlSigner, alias_origin
from airflow_provider_onedrive.testing.seed import SeedData, build_seed
from airflow_provider_onedrive.testing.server import Listener, RequestRecord, retry_after_header
from airflow_provider_onedrive.testing.settings import Clock, EmulatorSettings
from airflow_provider_onedrive.testing.sharing import Sharing
from airflow_provider_onedrive.testing.store import Drive, Item, Store
from airflow_provider_onedrive.testing.tls import make_app_certificate, make_server_certificates
from airflow_provider_onedrive.testing.transfers import Transfers
from airflow_provider_onedrive.testing.uploads import Uploads
from airflow_provider_onedrive.testing.wire import GraphError, IdentityError, Request, Response, json_response

if TYPE_CHECKING:
    import requests

__all__ = ["CONNECTION_KINDS", "CONTROL_TOKEN_HEADER", "SECRETLESS_KINDS", "GraphEmulator"]

_VERSION_RE = re.compile(r"^/(v\d+\.\d+|beta)(/|$)")
#: Connection kinds :meth:`GraphEmulator.connection` and the info document offer.
CONNECTION_KINDS = ("app", "app_cert", "delegated", "site", "drive", "group")
#: Secretless kinds :meth:`GraphEmulator.connection` also offers (they need a token file or environment variables).
SECRETLESS_KINDS = ("workload_identity", "managed_identity")
#: Header that carries :attr:`GraphEmulator.control_token` to the ``/_emulator/...`` control endpoints.
CONTROL_TOKEN_HEADER = "X-Emulator-Token"
#: Content types a browser may POST cross-origin without a CORS preflight (Fetch standard "CORS-safelisted
#: request-header"; MDN "CORS-safelisted request header").
_SIMPLE_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
_STATUS_CODES = {
    429: "TooManyRequests",
    500: "generalException",
    502: "BadGateway",
    503: "serviceNotAvailable",
    504: "GatewayTimeout",
}


class GraphEmulator:
    """A running (after :meth:`start`) emulator of Microsoft Graph drives and Entra ID token endpoints.

    ``GraphEmulator(mode="personal", token_lifetime=5)``: keyword arguments override :class:`EmulatorSettings`
    fields; ``fault_rules`` (dicts of :class:`FaultRule` fields) are installed at start and after every reset.
    Use it as a context manager or call :meth:`start` / :meth:`stop`. :meth:`reset` restores the seeded state,
    settings, faults and request log in milliseconds (what the pytest plugin does between tests).
    """

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        *,
        fault_rules: list[dict[str, Any]] | None = None,
        **overrides: Any,
    ) -> None:
        self._initial_settings = (settings or EmulatorSettings()).replace(**overrides)
        self._fault_rules = list(fault_rules or [])
        self.settings = self._initial_settings.replace()
        self.clock = Clock()
        self.faults = Faults(self.settings.seed)
        self.faults.latency = self.settings.latency
        self.faults.load(self._fault_rules)
        self.signer = UrlSigner()
        self.graph = GraphApi(self)
        self.transfers = Transfers(self)
        self.uploads = Uploads(self)
        self.sharing = Sharing(self)
        self.batches = Batches(self)
        self.seed: SeedData = build_seed(self.settings)
        self.directory = Directory()
        self._records: collections.deque[RequestRecord] = collections.deque(maxlen=200_000)
        self._records_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.store: Store
        self.identity: Identity
        self.refresh_token = ""
        #: Secret of this run (made by :meth:`start`) that every control endpoint but ``/_emulator/health`` and
        #: the device sign-in page needs in the ``X-Emulator-Token`` header (or as ``Authorization: Bearer``).
        self.control_token = ""

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> GraphEmulator:
        """Generate certificates, bind the listeners and serve in background threads."""
        if self._listeners:
            return self
        self.control_token = secrets.token_urlsafe(32)
        self._tmp = tempfile.TemporaryDirectory(prefix="graph-emulator-", dir=self.settings.temp_dir)
        self.directory_path = Path(self._tmp.name)
        self.spill_dir = self.directory_path / "content"
        self.spill_dir.mkdir()
        self.certificates = make_server_certificates(self.directory_path)
        self.app_certificate = make_app_certificate(self.directory_path, self.seed.client_id)
        self.app = AppRegistration(self.seed.client_id, self.seed.client_secret, self.app_certificate)
        users = [user for user, _ in self.seed.users]
        self.identity = Identity(
            self.settings, self.clock, self.seed.tenant_id, self.seed.tenant_domain, self.app, users
        )
        issuer = self.settings.federated_issuer or f"https://oidc.airflow-onedrive.invalid/{uuid.uuid4()}/"
        self.federation = Federation(TrustedIssuer(issuer), managed_identities=default_managed_identities(""))
        self.identity.federation = self.federation
        self._populate()
        context = self.certificates.server_context()
        s = self.settings
        try:
            self._listeners.append(Listener(s.host, s.port, self, context))
            if not s.graph_tls:
                self._listeners.append(Listener(s.host, s.graph_port, self, None))
        except BaseException:
            self.stop()
            raise
        for listener in self._listeners:
            listener.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop connections and delete the temp dir (certificates, spilled content)."""
        for listener in self._listeners:
            listener.stop()
        self._listeners.clear()
        if self._tmp is not None:
            self.uploads.reset()
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to the seeded state: drives, tokens, settings, clock, faults and request log."""
        self.settings = self._initial_settings.replace()
        self.clock.offset = 0.0
        self.faults.clear(latency=self.settings.latency)
        self.faults.load(self._fault_rules)
        self.clear_requests()
        self.uploads.reset()
        self.graph.reset()
        self.identity.settings = self.settings
        self.identity.reset()
        self._populate()

    def _populate(self) -> None:
        self.federation.credentials[:] = [
            FederatedCredential(self.federation.issuer.issuer, self.settings.federated_subject)
        ]
        self.federation.accepted.clear()
        self.store = Store(self.settings, self.clock, str(self.spill_dir))
        self.directory = Directory()
        personal = not self.settings.business
        for user, drive_id in self.seed.users:
            owner = {"user": {"displayName": user.display_name, "id": user.id, "email": user.upn}}
            drive_type = "personal" if personal else "business"
            self.store.add_drive(drive_id, "OneDrive", drive_type, owner, self.seed.user_web_url(user))
            self.directory.users[user.upn.lower()] = (user, drive_id)
            self.directory.users[user.id] = (user, drive_id)
        for spec in self.seed.sites:
            site = Site(spec.id, spec.name, spec.hostname, spec.path, spec.web_url, [])
            for library, drive_id in spec.libraries:
                folder = "Shared Documents" if library == "Documents" else library
                owner = {"group": {"displayName": f"{spec.name} Owners"}}
                drive = self.store.add_drive(drive_id, library, "documentLibrary", owner, f"{spec.web_url}/{folder}")
                drive.site_id = spec.id
                site.drive_ids.append(drive_id)
            self.directory.sites.append(site)
            if spec.path == "/":
                self.directory.root_site = site
        for name, group_id, drive_id in self.seed.groups:
            owner = {"group": {"id": group_id, "displayName": name}}
            self.store.add_drive(
                drive_id,
                "Documents",
                "documentLibrary",
                owner,
                f"https://{self.seed.sharepoint_host}/sites/{name}/Shared Documents",
            )
            self.directory.groups[group_id] = Group(group_id, name, drive_id)
        self.refresh_token = self.identity.issue_refresh_token(
            self.seed.users[0][0], DELEGATED_SCOPES, token=self.seed.refresh_token
        )

    # -- addresses -------------------------------------------------------------------------------------------
    def _origin(self, listener: Listener) -> str:
        host = self.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{listener.scheme}://{host}:{listener.server_port}"

    def _require_started(self) -> None:
        if not self._listeners:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")

    @property
    def authority_host(self) -> str:
        """Base https URL of the identity endpoints, without tenant (MSAL: ``authority=f"{this}/{tenant}"``)."""
        self._require_started()
        return self._origin(self._listeners[0])

    @property
    def graph_origin(self) -> str:
        self._require_started()
        return self._origin(self._listeners[-1])

    @property
    def graph_url(self) -> str:
        """Graph base URL ending in ``/v1.0``."""
        return f"{self.graph_origin}/v1.0"

    @property
    def download_origin(self) -> str:
        """Scheme, host alias and port that download URLs point at."""
        return alias_origin(self.graph_origin)

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def ca_bundle(self) -> str:
        """Path of the PEM file with the CA that signed the emulator's server certificate."""
        self._require_started()
        return str(self.certificates.ca_bundle)

    tenant_id = property(lambda self: self.seed.tenant_id, doc="The tenant's GUID.")
    tenant_domain = property(lambda self: self.seed.tenant_domain, doc="e.g. contoso.onmicrosoft.com")
    client_id = property(lambda self: self.seed.client_id, doc="Client id of the app registration.")
    client_secret = property(lambda self: self.seed.client_secret, doc="The app's client secret.")
    user_upn = property(lambda self: self.seed.users[0][0].upn, doc="UPN of the default user.")
    user_id = property(lambda self: self.seed.users[0][0].id, doc="Object id of the default user.")
    drive_id = property(lambda self: self.seed.users[0][1], doc="Drive id of the default user's OneDrive.")
    users = property(lambda self: [u.upn for u, _ in self.seed.users], doc="UPNs of all users.")

    @property
    def site_id(self) -> str:
        """Composite id (``hostname,guid,guid``) of the first configured site (business mode)."""
        return self._first_site().id

    @property
    def site_url(self) -> str:
        return self._first_site().web_url

    @property
    def libraries(self) -> dict[str, str]:
        """Library name -> drive id of the first configured site."""
        return dict(self._first_site().libraries)

    @property
    def group_id(self) -> str:
        if not self.seed.groups:
            raise LookupError("the emulator has no groups (personal mode, or groups=())")
        return self.seed.groups[0][1]

    @property
    def group_drive_id(self) -> str:
        return self.seed.groups[0][2]

    def _first_site(self) -> Any:
        named = [s for s in self.seed.sites if s.path != "/"]
        if not named:
            raise LookupError("the emulator has no sites (personal mode, or sites={})")
        return named[0]

    # -- info and connections --------------------------------------------------------------------------------
    def connection(self, kind: str = "app") -> dict[str, Any]:
        """An Airflow connection (the JSON form ``AIRFLOW_CONN_<ID>`` accepts) of ``kind`` (CONNECTION_KINDS)."""
        if kind not in CONNECTION_KINDS + SECRETLESS_KINDS:
            known = ", ".join(CONNECTION_KINDS + SECRETLESS_KINDS)
            raise ValueError(f"unknown connection kind {kind!r}; choose one of {known}")
        extra: dict[str, Any] = {
            "tenant_id": self.tenant_id,
            "auth_type": "client_secret",
            "drive_type": "user",
            "user_id": self.user_upn,
        }
        conn: dict[str, Any] = {"conn_type": "onedrive", "login": self.client_id, "password": self.client_secret}
        if kind == "app_cert":
            del conn["password"]
            extra.update(
                auth_type="certificate",
                certificate_path=str(self.app_certificate.certificate_path),
                private_key_path=str(self.app_certificate.private_key_path),
            )
        elif kind == "delegated":
            del conn["password"]
            extra = {
                "tenant_id": self.tenant_id,
                "auth_type": "refresh_token",
                "drive_type": "me",
                "refresh_token": self.refresh_token,
                "scopes": DELEGATED_SCOPES,
            }
        elif kind == "workload_identity":
            del conn["password"]
            token_file = self.write_federated_token()
            extra.update(auth_type="workload_identity", federated_token_file=str(token_file))
        elif kind == "managed_identity":
            del conn["password"], conn["login"]
            extra.update(auth_type="managed_identity")
            del extra["tenant_id"]
        elif kind == "site":
            extra = {**extra, "drive_type": "site", "site": self.site_url, "library": "Documents"}
            del extra["user_id"]
        elif kind == "drive":
            extra = {**extra, "drive_type": "drive", "drive_id": self.drive_id}
            del extra["user_id"]
        elif kind == "group":
            extra = {**extra, "drive_type": "group", "group_id": self.group_id}
            del extra["user_id"]
        extra.update(graph_url=self.graph_url, authority_host=self.authority_host, ca_bundle=self.ca_bundle)
        conn["extra"] = extra
        return conn

    def info(self) -> dict[str, Any]:
        """The info document the ``emulator`` command writes: URLs, ids and ready-made connections."""
        kinds = [
            k for k in CONNECTION_KINDS if self.settings.business or k in ("app", "app_cert", "delegated", "drive")
        ]
        document: dict[str, Any] = {
            "graph_url": self.graph_url,
            "authority_host": self.authority_host,
            "authority": self.authority,
            "tenant_id": self.tenant_id,
            "tenant_domain": self.tenant_domain,
            "ca_bundle": self.ca_bundle,
            "mode": self.settings.mode,
            "client_id": self.client_id,
            "user_upn": self.user_upn,
            "user_id": self.user_id,
            "drive_id": self.drive_id,
            "download_origin": self.download_origin,
            "device_approve_url": f"{self.authority_host}/_emulator/device/approve",
            "control_token": self.control_token,
            "control_token_header": CONTROL_TOKEN_HEADER,
            "connections": {k: self.connection(k) for k in kinds},
        }
        if self.settings.business and self.seed.sites:
            document.update(site_id=self.site_id, site_url=self.site_url, libraries=self.libraries)
        if self.seed.groups:
            document.update(group_id=self.group_id, group_drive_id=self.group_drive_id)
        return document

    # -- secretless credentials -----------------------------------------------------------------------------
    @property
    def trusted_issuer(self) -> TrustedIssuer:
        """The external OIDC issuer (a Kubernetes cluster's) whose tokens the app's federated credential accepts."""
        self._require_started()
        return self.federation.issuer

    @property
    def federated_credentials(self) -> list[FederatedCredential]:
        """The app registration's federated identity credentials (reset to the default one by :meth:`reset`)."""
        return self.federation.credentials

    def add_federated_credential(
        self, subject: str, issuer: str | None = None, audience: str = FEDERATION_AUDIENCE
    ) -> FederatedCredential:
        """Register another federated identity credential on the app (issuer defaults to the trusted issuer)."""
        credential = FederatedCredential(issuer or self.trusted_issuer.issuer, subject, (audience,), f"fic-{subject}")
        self.federation.credentials.append(credential)
        return credential

    @property
    def federated_token_path(self) -> Path:
        """Where :meth:`write_federated_token` writes by default (inside the emulator's temp dir)."""
        self._require_started()
        return self.directory_path / "tokens" / "azure-identity-token"

    def write_federated_token(
        self,
        path: str | Path | None = None,
        subject: str | None = None,
        *,
        lifetime: float = 3600,
        audience: str = FEDERATION_AUDIENCE,
        issuer: str | None = None,
    ) -> Path:
        """Mint a projected service-account token file, signed by the trusted issuer, as AKS's kubelet writes it.

        :param path: the file (default :attr:`federated_token_path`); written atomically, mode 0600.
        :param subject: default ``federated_subject`` (the registered service account).
        :param lifetime: seconds until the token's ``exp``, counted from the emulator's clock.
        :param issuer: an ``iss`` other than the trusted issuer (signed with the trusted key anyway: for tests).
        """
        return self.trusted_issuer.mint(
            path or self.federated_token_path,
            subject or self.settings.federated_subject,
            lifetime=lifetime,
            audience=audience,
            issuer=issuer,
            now=self.clock.now(),
        )

    def workload_identity_env(self, token_file: str | Path | None = None) -> dict[str, str]:
        """The environment variables AKS's workload identity webhook injects, pointing at this emulator."""
        return {
            "AZURE_CLIENT_ID": self.client_id,
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_FEDERATED_TOKEN_FILE": str(token_file or self.write_federated_token()),
            "AZURE_AUTHORITY_HOST": f"{self.authority_host}/",
        }

    @property
    def managed_identities(self) -> tuple[ManagedIdentity, ...]:
        """Identities of the emulated VM / App Service: the system-assigned one first, then user-assigned ones."""
        self._require_started()
        return self.federation.managed_identities

    def managed_identity_env(self, host: str = "vm") -> dict[str, str]:
        """Environment variables that send MSAL's managed-identity requests here.

        ``vm``: the Instance Metadata Service (MSAL reads ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` in place of
        ``http://169.254.169.254``); ``app_service``: ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` as App Service
        and Functions set them.
        """
        if host == "vm":
            return {"AZURE_POD_IDENTITY_AUTHORITY_HOST": self.authority_host}
        if host == "app_service":
            return {
                "IDENTITY_ENDPOINT": f"{self.authority_host}/msi/token",
                "IDENTITY_HEADER": self.federation.identity_header,
            }
        raise ValueError(f"unknown managed identity host {host!r}; use 'vm' or 'app_service'")

    def control_headers(self) -> dict[str, str]:
        """Headers that authorize a request to the ``/_emulator/...`` control endpoints."""
        self._require_started()
        return {CONTROL_TOKEN_HEADER: self.control_token}

    def http_session(self) -> requests.Session:
        """A requests Session that trusts the emulator's CA (and ignores REQUESTS_CA_BUNDLE / proxies)."""
        import requests

        session = requests.Session()
        session.verify = self.ca_bundle
        session.trust_env = False
        return session

    # -- test helpers ----------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        """The request log so far (oldest first)."""
        with self._records_lock:
            return list(self._records)

    def clear_requests(self) -> None:
        with self._records_lock:
            self._records.clear()

    def expire_tokens(self) -> None:
        """Every access token issued so far is now expired (Graph answers 401 InvalidAuthenticationToken)."""
        self.identity.expire_access_tokens()

    def advance_time(self, seconds: float) -> None:
        """Move the emulator's clock forward (tokens, refresh tokens, sessions, download URLs age)."""
        self.clock.advance(seconds)

    def revoke_refresh_tokens(self, user: str | None = None) -> int:
        """Revoke all refresh tokens of ``user`` (default user if None); returns how many were revoked."""
        return self.identity.revoke_refresh_tokens(self.identity.user(user or self.user_upn))

    def issue_refresh_token(self, user: str | None = None, scopes: str = DELEGATED_SCOPES) -> str:
        """A new refresh token for ``user``, as if they had just signed in."""
        return self.identity.issue_refresh_token(self.identity.user(user or self.user_upn), scopes)

    def refresh_tokens_issued(self, user: str | None = None) -> list[str]:
        """Every refresh token issued to ``user`` (default user if None), oldest first; the last is the newest."""
        return self.identity.refresh_tokens_issued(self.identity.user(user or self.user_upn))

    def approve_device_code(self, user_code: str, user: str | None = None, decline: bool = False) -> None:
        """Complete (or decline) the sign-in of a pending device code as ``user``."""
        self.identity.approve_device_code(user_code, self.identity.user(user or self.user_upn), decline)

    def pending_device_codes(self) -> list[str]:
        """User codes of device flows waiting for approval."""
        return self.identity.pending_user_codes()

    def expire_upload_sessions(self) -> int:
        """Expire all live upload sessions; their uploadUrls then answer 404."""
        return self.uploads.expire_all()

    def invalidate_delta_tokens(self) -> None:
        """Make every delta token issued so far stale (410 resyncRequired); tokens issued afterwards, such as the
        deltaLink that ends the fresh enumeration the 410's Location starts, work again."""
        with self.store.lock:
            self.store.seq += 1  # a position no token issued so far has reached
            self.store.delta_floor = self.store.seq

    def set_quota(self, total: int, drive_id: str | None = None) -> None:
        """Set a drive's quota total in bytes (the default user's drive if ``drive_id`` is None)."""
        with self.store.lock:
            self.store.drives[drive_id or self.drive_id].quota_total = total

    def drive(self, drive_id: str | None = None) -> Drive:
        return self.store.drives[drive_id or self.drive_id]

    def item(self, path: str, drive_id: str | None = None) -> Item | None:
        """The item at ``path`` (``a/b.txt``) of a drive, or None."""
        drive = self.drive(drive_id)
        return self.store.find(drive, drive.root, [p for p in path.split("/") if p])

    def put_file(self, path: str, data: bytes, drive_id: str | None = None) -> str:
        """Seed a file (parents created); returns its item id. No HTTP involved."""
        from airflow_provider_onedrive.testing.blobs import Blob

        drive = self.drive(drive_id)
        names = [p for p in path.split("/") if p]
        actor = {"kind": "user", "displayName": "Emulator seed", "id": self.user_id}
        with self.store.lock:
            parent = self.store.ensure_folders(drive, drive.root, names[:-1], actor)
            blob = Blob.from_bytes(data, personal=not self.settings.business)
            return self.store.put_file(drive, parent, names[-1], blob, "replace", actor)[0].id

    def read_file(self, path: str, drive_id: str | None = None) -> bytes:
        """Content of the file at ``path``; ``FileNotFoundError`` if there is none."""
        item = self.item(path, drive_id)
        if item is None or item.blob is None:
            raise FileNotFoundError(path)
        return item.blob.read()

    def mkdir(self, path: str, drive_id: str | None = None) -> str:
        """Create folders along ``path``; returns the last one's id."""
        drive = self.drive(drive_id)
        actor = {"kind": "user", "displayName": "Emulator seed", "id": self.user_id}
        return self.store.ensure_folders(drive, drive.root, [p for p in path.split("/") if p], actor).id

    def delete(self, path: str, drive_id: str | None = None) -> None:
        """Delete the file or folder at ``path`` to the recycle bin, as a user would; no HTTP involved."""
        drive = self.drive(drive_id)
        with self.store.lock:
            item = self.item(path, drive_id)
            if item is None:
                raise FileNotFoundError(path)
            self.store.delete(drive, item, False, None, "")

    def deleted_items(self, drive_id: str | None = None) -> list[str]:
        """Names of the top-level items in a drive's recycle bin."""
        return [i.name for i in self.drive(drive_id).recycle_bin]

    # -- serving (called by the listeners) -------------------------------------------------------------------
    @property
    def extra_latency(self) -> float:
        return self.faults.latency

    @property
    def max_drain(self) -> int:
        return self.settings.max_drain

    def record(self, entry: RequestRecord) -> None:
        with self._records_lock:
            self._records.append(entry)

    def classify(self, path: str) -> str:
        if _VERSION_RE.match(path):
            return "graph"
        if path.startswith("/_layouts/15/download.aspx"):
            return "download"
        if path.startswith("/_api/v2.0/drives/") and path.endswith("/uploadSession"):
            return "upload"
        if path.startswith("/_api/v2.0/monitor/"):
            return "monitor"
        if path.startswith("/_emulator/"):
            return "control"
        return "identity"

    def fault_response(self, request: Request, rule: FaultRule) -> Response:
        if rule.action == "token_expired":
            return self.identity.token_expired().response(request)
        headers = retry_after_header(rule.retry_after, rule.retry_after_http_date)
        if self.classify(request.path) == "identity":
            error = IdentityError(
                rule.status,
                rule.code or "temporarily_unavailable",
                50196,
                "The server is temporarily unavailable (injected fault).",
            )
            response = error.response(request)
            response.headers.update(headers)
            return response
        code = rule.code or _STATUS_CODES.get(rule.status, "generalException")
        message = "Too many requests" if rule.status == 429 else "The service is unavailable (injected fault)."
        return GraphError(rule.status, code, message, headers=headers).response(request)

    def handle(self, request: Request, fault: FaultRule | None) -> Response:
        kind = self.classify(request.path)
        if kind == "graph":
            if not request.path.startswith("/v1.0"):
                raise GraphError(400, "BadRequest", f"Invalid version: {request.path.strip('/').split('/')[0]}")
            response = self.graph.handle(request)
        elif kind == "download":
            response = self.transfers.download(request)
        elif kind == "upload":
            response = self.uploads.handle(request, fault)
        elif kind == "monitor":
            response = self.graph.monitor(request)
        elif kind == "control":
            response = self._control(request)
        else:
            response = self._identity(request)
        if fault is not None and fault.action == "eventual_404" and response.status in (200, 201):
            item_id = json.loads(response.body or b"{}").get("id")
            if item_id:
                with self.store.lock:
                    self.store.hidden_reads[item_id] = fault.reads
        return response

    def _identity(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        identity = self.identity
        if parts == ["metadata", "identity", "oauth2", "token"]:
            return self.federation.imds(identity, request)
        if parts == ["msi", "token"] and request.method == "GET":
            return self.federation.app_service(identity, request)
        if parts == ["common", "discovery", "instance"] and request.method == "GET":
            return identity.instance_discovery(request)
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return identity.openid_configuration(request, parts[0])
        if len(parts) == 4 and parts[1:] == ["discovery", "v2.0", "keys"]:
            return identity.keys(request, parts[0])
        if len(parts) == 4 and parts[1:3] == ["oauth2", "v2.0"] and request.method == "POST":
            if parts[3] == "token":
                return identity.token(request, parts[0])
            if parts[3] == "devicecode":
                return identity.device_code(request, parts[0])
        raise GraphError(404, "itemNotFound", f"No emulated endpoint for {request.method} {request.path}.")

    def _control(self, request: Request) -> Response:
        """``/_emulator/...``: health and the device sign-in page are open; the rest needs the control token.

        Browsers are kept out: any ``Origin`` header is refused, and a POST with a content type a page could send
        cross-origin without a preflight is refused, except a form-encoded device approval, which arrives with
        the token header and so cannot come from a page (a custom header forces a preflight, which fails here).
        """
        path = request.path
        if request.header("origin") is not None:
            raise GraphError(
                403,
                "accessDenied",
                "Emulator control endpoints refuse requests carrying an Origin header (web pages); call them from "
                "a test, a script or curl.",
            )
        if path == "/_emulator/health":
            return json_response(200, {"status": "ok"})
        if path == "/_emulator/device" and request.method == "GET":
            text = (
                "Graph emulator device sign-in. Approve a code with:\n  curl --cacert CA -X POST "
                f"-H '{CONTROL_TOKEN_HEADER}: TOKEN' -d user_code=CODE {request.origin}/_emulator/device/approve\n"
                "CA and TOKEN are ca_bundle and control_token of the info document (--info-file), or "
                "emu.ca_bundle and emu.control_token in Python.\nPending: "
                f"{', '.join(self.pending_device_codes()) or 'none'}\n"
            )
            return Response(200, {"Content-Type": "text/plain; charset=utf-8"}, text.encode())
        self._check_control_token(request)
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if request.method == "POST" and content_type in _SIMPLE_CONTENT_TYPES:
            form_approval = path == "/_emulator/device/approve" and content_type == _SIMPLE_CONTENT_TYPES[0]
            if not form_approval:
                accepted = "application/json or a form" if path == "/_emulator/device/approve" else "no body or JSON"
                raise GraphError(
                    415, "invalidRequest", f"Content-Type {content_type} is not accepted by {path}; send {accepted}."
                )
        if path == "/_emulator/info" and request.method == "GET":
            return json_response(200, self.info())
        if path == "/_emulator/reset" and request.method == "POST":
            self.reset()
            return json_response(200, {"status": "reset"})
        if path == "/_emulator/device/approve" and request.method == "POST":
            raw = request.body.read().decode("utf-8")
            form = json.loads(raw) if raw.lstrip().startswith("{") else dict(parse_qsl(raw))
            try:
                self.approve_device_code(
                    str(form.get("user_code", "")),
                    form.get("user"),
                    str(form.get("decline", "")).lower() in ("1", "true", "yes"),
                )
            except KeyError as exc:
                raise GraphError(404, "itemNotFound", str(exc.args[0])) from exc
            return json_response(200, {"approved": True, "user": form.get("user") or self.user_upn})
        raise GraphError(404, "itemNotFound", f"No emulator control endpoint {request.method} {path}.")

    def _check_control_token(self, request: Request) -> None:
        """401 unless the request carries this run's control token (``X-Emulator-Token`` or ``Bearer``)."""
        presented = request.header(CONTROL_TOKEN_HEADER) or ""
        authorization = request.header("authorization") or ""
        if not presented and authorization.lower().startswith("bearer "):
            presented = authorization[7:].strip()
        expected = self.control_token.encode()
        if not expected or not hmac.compare_digest(presented.encode("utf-8", "replace"), expected):
            raise GraphError(
                401,
                "unauthenticated",
                f"Emulator control endpoints need the {CONTROL_TOKEN_HEADER} header with this run's control token "
                "(control_token in the info document / --info-file, emu.control_token in Python).",
            )
