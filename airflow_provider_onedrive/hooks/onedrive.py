"""OneDriveHook: an Airflow ``onedrive`` connection -> credentials -> Graph client -> drive operations.

Importing this module is cheap and does no I/O (operators import it at every DAG parse): msal, requests and
the client are imported inside methods. Every token obtained at run time is passed to Airflow's
``mask_secret`` as soon as it exists.

Rotated delegated refresh tokens persist, by default, in an Airflow Variable named
``onedrive_refresh_token__<conn_id>`` (masked: the name contains "token"). Airflow 3 tasks cannot update
Connections, hence a Variable. Alternatives via extra ``token_store``: ``file:/absolute/path`` (one machine,
locked, encrypted) or ``none``.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
import threading
from typing import TYPE_CHECKING, Any

from airflow_provider_onedrive.compat import BaseHook

if TYPE_CHECKING:
    from collections.abc import Iterator

    import requests

    from airflow_provider_onedrive.auth import MsalTokenProvider
    from airflow_provider_onedrive.config import ConnectionSettings
    from airflow_provider_onedrive.drive import OneDriveClient
    from airflow_provider_onedrive.graph import GraphClient
    from airflow_provider_onedrive.token_stores import RefreshTokenStore
    from airflow_provider_onedrive.transfers.models import DownloadResult, RemoteItem, UploadResult
    from airflow_provider_onedrive.transfers.operations import CopyMonitor
    from airflow_provider_onedrive.transfers.sharing import SharedItem, SharingLink

__all__ = ["OneDriveHook", "VariableTokenStore", "variable_name"]

log = logging.getLogger(__name__)

#: Test Connection runs inside the api-server: keep it short whatever the connection says.
TEST_CONNECTION_TIMEOUT = (5.0, 10.0)


def variable_name(conn_id: str) -> str:
    """The Airflow Variable holding a connection's newest refresh token (masked: the name contains 'token')."""
    return f"{_VARIABLE_PREFIX}{conn_id}"


_VARIABLE_PREFIX = "onedrive_refresh_token__"


def variable_store_descending_from(refresh_token: str | None) -> VariableTokenStore | None:
    """The Variable store holding the newest token descended from ``refresh_token`` (the connection's own), if
    any: how Test Connection (which Airflow runs under a random connection id) and the CLI's ``--connection``
    find where the real connection keeps its rotated tokens. None without a metadata DB or such a Variable."""
    if not refresh_token:
        return None
    from airflow_provider_onedrive.compat import variable_keys
    from airflow_provider_onedrive.token_stores import StoredToken, token_fingerprint

    origin = token_fingerprint(refresh_token)
    try:
        keys = variable_keys(_VARIABLE_PREFIX)
    except Exception as exc:  # no metadata DB here (a CLI on a laptop), or no access to it
        log.debug("cannot list refresh-token Variables: %s", type(exc).__name__)
        return None
    for key in keys:
        store = VariableTokenStore(key)
        try:
            stored = StoredToken.decode(store.load())
        except ValueError:
            continue
        if stored is not None and stored.origin == origin:
            return store
    return None


class VariableTokenStore:
    """Refresh tokens in an Airflow Variable: shared by every worker, no cross-worker lock (newest save wins).

    Two workers refreshing the same connection at the same moment may both redeem the same token; if the
    identity platform then refuses one of them, the provider re-reads the Variable and retries with the token
    the other worker saved. Use ``file:`` on a single machine for a strict lock.
    """

    def __init__(self, key: str) -> None:
        self.key = key

    def load(self) -> str | None:
        from airflow_provider_onedrive.compat import get_variable, mask_secret

        try:
            value = get_variable(self.key)
        except Exception as exc:
            log.warning("cannot read Airflow Variable %r (%s); using the connection's refresh token", self.key, exc)
            return None
        if value:
            mask_secret(value)
        return value

    def save(self, token: str) -> None:
        from airflow_provider_onedrive.compat import mask_secret, set_variable

        mask_secret(token)
        set_variable(self.key, token, description="Newest OneDrive refresh token (managed by OneDriveHook)")


class OneDriveHook(BaseHook):
    """Talk to a OneDrive / SharePoint drive through an Airflow ``onedrive`` connection.

    :param onedrive_conn_id: the connection id (default ``onedrive_default``).
    :param token_store: where rotated refresh tokens persist (a store object, or ``variable``, ``file:/path``,
        ``memory``, ``none``); default: the connection's ``token_store`` extra, else ``variable``.
    """

    conn_name_attr = "onedrive_conn_id"
    default_conn_name = "onedrive_default"
    conn_type = "onedrive"
    hook_name = "Microsoft OneDrive"

    def __init__(
        self,
        onedrive_conn_id: str = default_conn_name,
        *,
        token_store: RefreshTokenStore | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.onedrive_conn_id = onedrive_conn_id
        self.token_store = token_store
        self._lock = threading.Lock()
        self._settings: ConnectionSettings | None = None
        self._provider: MsalTokenProvider | None = None
        self._graph: GraphClient | None = None
        self._client: OneDriveClient | None = None

    # -- legacy (Airflow < 3.2) form declarations; 3.2+ reads conn-fields from get_provider_info ------------
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Form widgets for Airflow versions that still build the connection form from the hook."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextAreaFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField

        from airflow_provider_onedrive.get_provider_info import CONN_FIELDS

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            label = lazy_gettext(spec["label"])
            fmt = spec["schema"].get("format")
            if fmt == "password":
                widgets[name] = PasswordField(label, widget=BS3PasswordFieldWidget(), description=spec["description"])
            elif fmt == "multiline":
                widgets[name] = StringField(label, widget=BS3TextAreaFieldWidget(), description=spec["description"])
            else:
                widgets[name] = StringField(label, widget=BS3TextFieldWidget(), description=spec["description"])
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabeled and placeholder fields for Airflow versions that ask the hook."""
        from airflow_provider_onedrive.get_provider_info import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    # -- settings, tokens, clients -----------------------------------------------------------------------
    def get_settings(self) -> ConnectionSettings:
        """The connection's validated settings (raises OneDriveConfigError naming the field and the fix)."""
        if self._settings is None:
            from airflow_provider_onedrive.config import ConnectionSettings

            conn = self.get_connection(self.onedrive_conn_id)
            self._settings = ConnectionSettings.from_connection_fields(
                self.onedrive_conn_id, conn.login, conn.password, conn.extra_dejson
            )
        return self._settings

    def _make_store(self, settings: ConnectionSettings) -> RefreshTokenStore:
        from airflow_provider_onedrive.token_stores import store_for_settings

        store = self.token_store
        if store is not None and not isinstance(store, str):
            return store
        spec = store or settings.token_store or "variable"
        if spec == "variable":
            return VariableTokenStore(variable_name(self.onedrive_conn_id))
        return store_for_settings(dataclasses.replace(settings, token_store=spec))

    def _make_provider(self, settings: ConnectionSettings) -> MsalTokenProvider:
        from airflow_provider_onedrive.clients import token_provider
        from airflow_provider_onedrive.compat import mask_secret

        store = self._make_store(settings) if settings.is_delegated else None
        return token_provider(settings, store=store, on_new_secret=mask_secret)

    def get_token_provider(self) -> MsalTokenProvider:
        with self._lock:
            if self._provider is None:
                self._provider = self._make_provider(self.get_settings())
            return self._provider

    def get_token(self) -> str:
        """A Graph access token for this connection (cached until about 5 minutes before it expires)."""
        return self.get_token_provider().get_token()

    @staticmethod
    def _make_graph(settings: ConnectionSettings, provider: Any, **kwargs: Any) -> GraphClient:
        from airflow_provider_onedrive.clients import graph_client

        return graph_client(settings, provider, **kwargs)

    def get_graph_client(self) -> GraphClient:
        """The Graph client for this connection (one per hook; its pool is sized for concurrent transfers)."""
        provider = self.get_token_provider()
        with self._lock:
            if self._graph is None:
                self._graph = self._make_graph(self.get_settings(), provider)
            return self._graph

    def get_conn(self) -> OneDriveClient:
        """The Airflow-free :class:`~airflow_provider_onedrive.drive.OneDriveClient` for the connection's drive."""
        from airflow_provider_onedrive.clients import drive_client

        graph = self.get_graph_client()
        with self._lock:
            if self._client is None:
                self._client = drive_client(self.get_settings(), graph=graph, options=self._state_options())
            return self._client

    def _state_options(self) -> dict[str, Any]:
        """Where unfinished upload sessions are remembered: the connection's ``upload_state`` extra, else the
        ``[onedrive] upload_state`` option, else a local folder."""
        if self.get_settings().upload_state:
            return {}  # drive_client builds the connection's own store
        from airflow_provider_onedrive.clients import upload_state_store
        from airflow_provider_onedrive.compat import conf

        spec = conf.get("onedrive", "upload_state", fallback="") or ""
        return {"state_store": upload_state_store(spec.strip())} if spec.strip() else {}

    def get_drive_base(self) -> str:
        """The Graph-relative base of the connection's drive (``drives/{id}``, ``users/{upn}/drive``...)."""
        from airflow_provider_onedrive.drives import DriveLocator

        return DriveLocator.from_settings(self.get_settings()).resolve(self.get_graph_client())

    # -- the seed surface ------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a Graph request (path relative to the Graph base, or an absolute Graph URL), with retries."""
        return self.get_graph_client().request(method, path, **kwargs)

    def get(self, path_or_url: str, **kwargs: Any) -> dict[str, Any]:
        """GET a Graph resource and return its JSON (``params=`` etc. as for :meth:`request`)."""
        response = self.request("GET", path_or_url, **kwargs)
        try:
            return response.json()
        finally:
            response.close()

    def list(self, folder: str = "") -> builtins.list[dict[str, Any]]:
        """Every child of ``folder`` (relative to the drive root) as raw driveItem dicts, all pages."""
        return builtins.list(self.get_conn().list_children(folder))

    def download(self, path: str) -> bytes:
        """The content of the file at ``path`` (relative to the drive root)."""
        return self.get_conn().download_bytes(path)

    # -- file-level pass-throughs (see OneDriveClient for parameters) --------------------------------------
    # These return the client's result objects unchanged (UploadResult, DownloadResult, RemoteItem...), not
    # dicts: call ``.to_dict()`` on one for a JSON-able value (an XCom, a log line).
    def upload_file(self, local_path: str, remote_path: str, **kwargs: Any) -> UploadResult:
        """Upload a local file; see :meth:`OneDriveClient.upload_file`. ``.to_dict()`` on the result is JSON-able."""
        return self.get_conn().upload_file(local_path, remote_path, **kwargs)

    def download_file(self, remote_path: str, local_path: str, **kwargs: Any) -> DownloadResult:
        """Download to a local file; see :meth:`OneDriveClient.download_file`."""
        return self.get_conn().download_file(remote_path, local_path, **kwargs)

    def info(self, path: str, **kwargs: Any) -> RemoteItem:
        """The item at ``path`` as a :class:`RemoteItem` (``.to_dict()`` for JSON; ``.raw`` is the driveItem)."""
        return self.get_conn().info(path, **kwargs)

    def exists(self, path: str) -> bool:
        return self.get_conn().exists(path)

    def delete(self, path: str, **kwargs: Any) -> builtins.list[str]:
        """Delete ``path``; returns the paths deleted. See :meth:`OneDriveClient.delete`."""
        return self.get_conn().delete(path, **kwargs)

    def mkdir(self, path: str, **kwargs: Any) -> RemoteItem:
        """Create a folder (and its parents); returns it. See :meth:`OneDriveClient.mkdir`."""
        return self.get_conn().mkdir(path, **kwargs)

    def move(self, source: str, destination: str, **kwargs: Any) -> RemoteItem:
        """Move or rename; returns the moved item. See :meth:`OneDriveClient.move`."""
        return self.get_conn().move(source, destination, **kwargs)

    def copy(self, source: str, destination: str, **kwargs: Any) -> RemoteItem | CopyMonitor:
        """Server-side copy: the new item, or the :class:`CopyMonitor` with ``wait=False``."""
        return self.get_conn().copy(source, destination, **kwargs)

    def ls(self, path: str = "", **kwargs: Any) -> Iterator[RemoteItem]:
        """The items in ``path`` (lazy); see :meth:`OneDriveClient.ls`."""
        return self.get_conn().ls(path, **kwargs)

    def walk(self, path: str = "", **kwargs: Any) -> Iterator[tuple[str, builtins.list[Any], builtins.list[Any]]]:
        """Like ``os.walk``; see :meth:`OneDriveClient.walk`."""
        return self.get_conn().walk(path, **kwargs)

    def glob(self, pattern: str, **kwargs: Any) -> builtins.list[RemoteItem]:
        """Items matching a glob, sorted by path; see :meth:`OneDriveClient.glob`."""
        return self.get_conn().glob(pattern, **kwargs)

    # -- sharing (see docs/sharing.md) ---------------------------------------------------------------------
    def create_link(self, path: str, **kwargs: Any) -> SharingLink:
        """A sharing link of ``path``; see :meth:`OneDriveClient.create_link`. An anonymous link is a bearer
        credential: hand it out deliberately, never log it."""
        return self.get_conn().create_link(path, **kwargs)

    def permissions(self, path: str) -> builtins.list[dict[str, Any]]:
        """The sharing permissions of ``path`` (raw Graph permission resources)."""
        return self.get_conn().permissions(path)

    def resolve_share(self, share: str, *, redeem: bool = True) -> SharedItem:
        """The item a sharing URL or share id names; see :meth:`OneDriveClient.resolve_share`."""
        return self.get_conn().resolve_share(share, redeem=redeem)

    def get_shared_client(self, share: str, *, redeem: bool = True) -> OneDriveClient:
        """A client rooted at a shared file or folder (paths relative to it); see
        :meth:`OneDriveClient.for_share`."""
        return self.get_conn().for_share(share, redeem=redeem)

    def shared_with_me(self) -> builtins.list[dict[str, Any]]:
        """Items shared with the connection's signed-in user (delegated connections; deprecated Graph API)."""
        return self.get_conn().shared_with_me()

    # -- Test Connection ---------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Check credentials and drive access within a few seconds; the message says what works or what to fix.

        The Airflow UI tests a copy of the connection under a random id, so messages say "this connection"
        instead of naming it.
        """
        ok, message = self._check_connection()
        return ok, message.replace(f"connection {self.onedrive_conn_id!r}", "this connection")

    def _check_connection(self) -> tuple[bool, str]:
        from airflow_provider_onedrive.diagnostics import check_connection

        try:
            settings = self.get_settings()
        except Exception as exc:
            return False, str(exc)
        short = dataclasses.replace(
            settings,
            connect_timeout=min(settings.connect_timeout, TEST_CONNECTION_TIMEOUT[0]),
            read_timeout=min(settings.read_timeout, TEST_CONNECTION_TIMEOUT[1]),
        )
        if settings.is_delegated and (self.token_store or settings.token_store or "variable") == "variable":
            # The api-server tests a copy under a random connection id: a Variable named after it would be junk.
            # The real connection's Variable is the one whose token descends from this connection's token; the
            # rotated token goes there. A connection never used yet has none: its new token stays in memory
            # (the old one stays valid: the identity platform does not revoke used refresh tokens).
            existing = variable_store_descending_from(settings.refresh_token)
            if existing is not None:
                return check_connection(short, self._provider_with(short, existing), self._make_graph)
            short = dataclasses.replace(short, token_store="memory")
            return check_connection(short, self._with_store(short, "memory"), self._make_graph)
        return check_connection(short, self._make_provider(short), self._make_graph)

    @staticmethod
    def _provider_with(settings: ConnectionSettings, store: RefreshTokenStore) -> MsalTokenProvider:
        from airflow_provider_onedrive.clients import token_provider
        from airflow_provider_onedrive.compat import mask_secret

        return token_provider(settings, store=store, on_new_secret=mask_secret)

    def _with_store(self, settings: ConnectionSettings, store: str) -> MsalTokenProvider:
        from airflow_provider_onedrive.clients import token_provider
        from airflow_provider_onedrive.compat import mask_secret
        from airflow_provider_onedrive.token_stores import store_for_settings

        return token_provider(settings, store=store_for_settings(settings, default=store), on_new_secret=mask_secret)
