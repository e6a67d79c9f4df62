"""Which drive a connection talks to, and its Graph-relative base path (no Airflow imports).

``DriveLocator("site", "https://contoso.sharepoint.com/sites/Finance", library="Reports").resolve(graph)``
looks the site and library up once (thread-safe, cached on the locator) and returns ``drives/{id}``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from airflow_provider_onedrive.config import DRIVE_TYPES
from airflow_provider_onedrive.errors import OneDriveConfigError, OneDriveNotFoundError

if TYPE_CHECKING:
    from airflow_provider_onedrive.config import ConnectionSettings
    from airflow_provider_onedrive.graph import GraphClient

__all__ = ["DriveLocator"]


def _segment(value: str) -> str:
    return quote(value, safe="-._~@,!$'()*+;=")


class DriveLocator:
    """A drive: ``me``, ``user`` (UPN or id), ``drive`` (id), ``site`` (id or URL, optional library) or ``group``.

    :param kind: one of ``me``, ``user``, ``drive``, ``site``, ``group``.
    :param value: the user, drive, site or group; None for ``me``.
    :param library: for ``site``: a document library name (default: the site's default library).
    """

    def __init__(self, kind: str, value: str | None = None, library: str | None = None) -> None:
        if kind not in DRIVE_TYPES:
            raise OneDriveConfigError(f"drive kind {kind!r} is not one of {', '.join(DRIVE_TYPES)}")
        if kind != "me" and not value:
            raise OneDriveConfigError(f"drive kind {kind!r} needs a value (the {kind} id)")
        if library and kind != "site":
            raise OneDriveConfigError("a document library can only be chosen for a site drive")
        self.kind = kind
        self.value = value
        self.library = library
        self._resolved: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: ConnectionSettings) -> DriveLocator:
        """The locator of a :class:`~airflow_provider_onedrive.config.ConnectionSettings`."""
        return cls(settings.drive_type, settings.drive_value, settings.library)

    def __repr__(self) -> str:
        extra = f", library={self.library!r}" if self.library else ""
        return f"DriveLocator({self.kind!r}, {self.value!r}{extra})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DriveLocator) and (self.kind, self.value, self.library) == (
            other.kind,
            other.value,
            other.library,
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.value, self.library))

    @property
    def static_base(self) -> str | None:
        """The base path when no lookup is needed, else None (site URLs and library names need Graph)."""
        if self.kind == "me":
            return "me/drive"
        if self.kind == "user":
            return f"users/{_segment(self.value or '')}/drive"
        if self.kind == "drive":
            return f"drives/{_segment(self.value or '')}"
        if self.kind == "group":
            return f"groups/{_segment(self.value or '')}/drive"
        if not self.library and "://" not in (self.value or ""):
            return f"sites/{_segment(self.value or '')}/drive"
        return None

    def resolve(self, graph: GraphClient) -> str:
        """The Graph-relative drive base (``me/drive``, ``drives/{id}``...), looking up sites/libraries once."""
        static = self.static_base
        if static is not None:
            return static
        if self._resolved is not None:
            return self._resolved
        with self._lock:
            if self._resolved is None:
                self._resolved = self._lookup(graph)
            return self._resolved

    def _lookup(self, graph: GraphClient) -> str:
        site_id = self._site_id(graph)
        if not self.library:
            return f"sites/{_segment(site_id)}/drive"
        drives = list(graph.iter_values(f"sites/{_segment(site_id)}/drives", params={"$select": "id,name,webUrl"}))
        wanted = self.library.casefold()
        for drive in drives:
            url_name = unquote(urlsplit(drive.get("webUrl") or "").path.rstrip("/").rpartition("/")[2])
            if wanted in (str(drive.get("name", "")).casefold(), url_name.casefold()):
                return f"drives/{_segment(drive['id'])}"
        names = ", ".join(sorted(repr(d.get("name")) for d in drives)) or "none"
        raise OneDriveConfigError(
            f"document library {self.library!r} not found in site {self.value!r}; available libraries: {names}"
        )

    def _site_id(self, graph: GraphClient) -> str:
        value = self.value or ""
        if "://" not in value:
            return value
        parts = urlsplit(value)
        path = parts.path.rstrip("/")
        address = f"sites/{parts.hostname}:{quote(path, safe='/-._~')}" if path else f"sites/{parts.hostname}"
        try:
            site = graph.get_json(address, params={"$select": "id,webUrl,displayName"})
        except OneDriveNotFoundError:
            raise OneDriveConfigError(
                f"SharePoint site {value!r} was not found; check the URL (e.g. "
                "https://contoso.sharepoint.com/sites/Finance) and that the app may read it"
            ) from None
        return str(site["id"])
