"""Turn ``onedrive://`` storage options into a OneDriveClient (no Airflow import unless ``conn_id`` is given).

Four ways in, checked in this order: an existing ``client``; an Airflow ``conn_id`` (through the hook);
a ``token`` (a string, or a callable returning one); or the connection's own fields as keyword arguments
(``client_id``, ``client_secret``, ``tenant_id``, ``auth_type``, ``drive_type``...), so the dict users keep in a
connection's extra works unchanged as ``storage_options``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from airflow_provider_onedrive.drives import DRIVE_VALUE_FIELDS
from airflow_provider_onedrive.errors import OneDriveConfigError

if TYPE_CHECKING:
    from airflow_provider_onedrive.drive import OneDriveClient
    from airflow_provider_onedrive.drives import DriveLocator

__all__ = ["ClientSource", "build_client"]


class ClientSource(TypedDict):
    """The keyword arguments of :func:`build_client`, as a filesystem keeps them until its first use."""

    client: OneDriveClient | None
    conn_id: str | None
    token: str | Callable[[], str] | None
    drive: str | None
    client_options: Mapping[str, Any] | None
    credentials: Mapping[str, Any] | None
    share: str | None


def build_client(
    *,
    client: OneDriveClient | None = None,
    conn_id: str | None = None,
    token: str | Callable[[], str] | None = None,
    drive: str | None = None,
    client_options: Mapping[str, Any] | None = None,
    credentials: Mapping[str, Any] | None = None,
    share: str | None = None,
) -> OneDriveClient:
    """Build the client a filesystem talks through.

    :param drive: a drive id that overrides the configured drive (the URL's host part, ``onedrive://conn@drive/``);
        a share token there (``u!...``, ``s!...``) means ``share``.
    :param share: a sharing URL or share id: the client is rooted at the shared file or folder (paths are
        relative to it), found through the connection's credentials on first use.
    :param client_options: keyword arguments for :class:`~airflow_provider_onedrive.drive.OneDriveClient`.
    :param credentials: connection fields: ``client_id`` (or ``login``), ``client_secret`` (or ``password``) and
        any connection extra (``tenant_id``, ``auth_type``, ``drive_type``, ``graph_url``, ``ca_bundle``...).
    """

    if drive and drive[:2].lower() in ("u!", "s!"):
        if share:
            raise OneDriveConfigError("the URL names a share (u!.../s!...) and share= names another; give one")
        share, drive = drive, None
    if share:
        from airflow_provider_onedrive.transfers.sharing import share_token

        share_token(share)  # refused here, before any request, when it is neither a URL nor a share id
        base = build_client(
            client=client,
            conn_id=conn_id,
            token=token,
            drive=drive,
            client_options=client_options,
            credentials=credentials,
        )
        return base.for_share(share)
    options = dict(client_options or {})
    credentials = dict(credentials or {})
    if client is not None:
        if drive or conn_id or token or credentials:
            raise OneDriveConfigError("pass either client= or credentials (conn_id, token, client_id...), not both")
        return client
    if conn_id is not None:
        if token is not None or credentials:
            raise OneDriveConfigError(
                f"conn_id={conn_id!r} already holds the credentials; do not pass token or client_id with it"
            )
        from airflow_provider_onedrive.clients import drive_client
        from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

        hook = OneDriveHook(onedrive_conn_id=conn_id)
        if drive is None and not options:
            return hook.get_conn()
        return drive_client(hook.get_settings(), graph=hook.get_graph_client(), drive_id=drive, options=options)
    if token is not None:
        return _client_from_token(token, drive, options, credentials)
    return _client_from_credentials(drive, options, credentials)


def _client_from_token(
    token: str | Callable[[], str],
    drive: str | None,
    options: dict[str, Any],
    credentials: dict[str, Any],
) -> OneDriveClient:
    from airflow_provider_onedrive.drive import OneDriveClient
    from airflow_provider_onedrive.graph import DEFAULT_GRAPH_URL, GraphClient

    provider: Callable[[], str] = token if callable(token) else (lambda: token)
    graph = GraphClient(
        provider,
        graph_url=credentials.pop("graph_url", None) or DEFAULT_GRAPH_URL,
        verify=credentials.pop("ca_bundle", None) or True,
    )
    fields = {"drive_type": "drive", "drive_id": drive} if drive else credentials
    return OneDriveClient(graph, _locator(fields), **options)


def _locator(fields: Mapping[str, Any]) -> DriveLocator:
    """The drive named by connection-style fields; ``me`` (the signed-in user's drive) when none is given."""
    from airflow_provider_onedrive.drives import DriveLocator, select_drive

    def field(name: str) -> str | None:
        value = fields.get(name)
        return str(value) if value not in (None, "") else None

    return DriveLocator(*select_drive(field, delegated=True))


def _client_from_credentials(drive: str | None, options: dict[str, Any], fields: dict[str, Any]) -> OneDriveClient:
    from airflow_provider_onedrive.clients import drive_client
    from airflow_provider_onedrive.config import SECRETLESS_AUTH_TYPES, ConnectionSettings

    login = fields.pop("client_id", None) or fields.pop("login", None)
    password = fields.pop("client_secret", None) or fields.pop("password", None)
    secretless = str(fields.get("auth_type") or "").strip().lower() in SECRETLESS_AUTH_TYPES
    if not login and not secretless:
        raise OneDriveConfigError(
            "the onedrive filesystem needs credentials: pass conn_id= (an Airflow connection), token=, client=, "
            "client_id= with client_secret/certificate/refresh_token and tenant_id, or auth_type="
            "workload_identity / managed_identity"
        )
    if drive is not None:  # the URL names the drive: it wins over whatever the fields select
        fields = {k: v for k, v in fields.items() if k not in (*DRIVE_VALUE_FIELDS.values(), "drive_type", "library")}
        fields.update(drive_type="drive", drive_id=drive)
    settings = ConnectionSettings.from_connection_fields("storage_options", login, password, fields)
    return drive_client(settings, options=options)
