"""The one way to build clients from connection settings (no Airflow imports).

The hook, the CLI, the ``onedrive://`` filesystem and the trigger all get their Graph client, drive client and
token provider here, so each applies the same transport settings (Graph URL, CA bundle, proxies, timeouts, pool
size) and the same drive selection. ``on_new_secret`` is where a token provider announces each access and
refresh token as it is obtained (the hook passes Airflow's ``mask_secret``); pre-authenticated URLs are never
announced: they are kept out of logs instead (see :mod:`.graph`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_onedrive.auth import MsalTokenProvider
    from airflow_provider_onedrive.config import ConnectionSettings
    from airflow_provider_onedrive.drive import OneDriveClient
    from airflow_provider_onedrive.drives import DriveLocator
    from airflow_provider_onedrive.graph import GraphClient, TokenProvider
    from airflow_provider_onedrive.token_stores import RefreshTokenStore
    from airflow_provider_onedrive.transfers.state import SessionStateStore

__all__ = ["DEFAULT_POOL_SIZE", "drive_client", "graph_client", "token_provider", "upload_state_store"]

#: Connections kept per host: enough for folder transfers at the default concurrency, with room for listings.
DEFAULT_POOL_SIZE = 32


def token_provider(
    settings: ConnectionSettings,
    *,
    store: RefreshTokenStore | None = None,
    on_new_secret: Callable[[str], None] | None = None,
) -> MsalTokenProvider:
    """The token provider of ``settings``; ``store`` keeps rotated refresh tokens (delegated only)."""
    from airflow_provider_onedrive.auth import build_token_provider

    return build_token_provider(settings, store=store, on_new_secret=on_new_secret)


def graph_client(
    settings: ConnectionSettings,
    provider: TokenProvider,
    *,
    pool_maxsize: int = DEFAULT_POOL_SIZE,
    **kwargs: Any,
) -> GraphClient:
    """A Graph client with the connection's transport settings (URL, CA bundle, proxies, timeouts)."""
    from airflow_provider_onedrive.graph import GraphClient

    return GraphClient(
        provider,
        graph_url=settings.graph_url,
        verify=settings.verify,
        proxies=settings.proxies_dict,
        timeout=settings.timeout,
        pool_maxsize=pool_maxsize,
        **kwargs,
    )


def drive_locator(settings: ConnectionSettings, drive_id: str | None = None) -> DriveLocator:
    """The connection's drive, or the drive ``drive_id`` when given (``onedrive://conn@{drive_id}/``)."""
    from airflow_provider_onedrive.drives import DriveLocator

    return DriveLocator("drive", drive_id) if drive_id else DriveLocator.from_settings(settings)


def drive_client(
    settings: ConnectionSettings,
    provider: TokenProvider | None = None,
    *,
    graph: GraphClient | None = None,
    drive_id: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> OneDriveClient:
    """A drive client for ``settings``: on ``graph`` when given (sharing its pool and pacer), else on a new
    Graph client with ``provider`` (default: a token provider whose refresh tokens only this process keeps).

    :param options: keyword arguments for :class:`~airflow_provider_onedrive.drive.OneDriveClient`.
    """
    from airflow_provider_onedrive.drive import OneDriveClient

    if graph is None:
        graph = graph_client(settings, provider if provider is not None else token_provider(settings))
    kwargs = dict(options or {})
    if settings.download_streams is not None:
        kwargs.setdefault("download_streams", settings.download_streams)
    if settings.fsync_downloads is not None:
        kwargs.setdefault("fsync_downloads", settings.fsync_downloads)
    if settings.upload_state and "state_store" not in kwargs and "state_dir" not in kwargs:
        kwargs["state_store"] = upload_state_store(settings.upload_state)
    return OneDriveClient(graph, drive_locator(settings, drive_id), **kwargs)


def upload_state_store(spec: str) -> SessionStateStore:
    """The store of unfinished upload sessions ``spec`` names (a connection's ``upload_state``, or the
    ``[onedrive] upload_state`` option): ``local``, ``local:/path``, an fsspec URL, or ``airflow`` (needs Airflow)."""
    if spec == "airflow":
        import importlib.util

        from airflow_provider_onedrive.errors import OneDriveConfigError
        from airflow_provider_onedrive.hooks.upload_state import VariableStateStore

        if importlib.util.find_spec("airflow") is None:
            raise OneDriveConfigError("upload_state 'airflow' needs Airflow installed (it keeps sessions in Variables)")
        return VariableStateStore()
    from airflow_provider_onedrive.transfers.state import state_store_for

    return state_store_for(spec)
