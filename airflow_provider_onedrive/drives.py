"""Which drive a connection talks to, and its Graph-relative base path (no Airflow imports).

``DriveLocator("site", "https://contoso.sharepoint.com/sites/Finance", library="Reports").resolve(graph)``
looks the site and library up once (thread-safe, cached on the locator) and returns ``drives/{id}``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote, unquote, urlsplit

from airflow_provider_onedrive.errors import OneDriveConfigError, OneDriveNotFoundError

if TYPE_CHECKING:
    from airflow_provider_onedrive.graph import GraphClient

__all__ = ["DRIVE_TYPES", "DRIVE_VALUE_FIELDS", "DriveLocator", "select_drive"]

#: The kinds of drive a connection can name.
DRIVE_TYPES = ("me", "user", "drive", "site", "group")
#: The connection extra that holds each kind's value (``me`` needs none).
DRIVE_VALUE_FIELDS = {"user": "user_id", "drive": "drive_id", "site": "site", "group": "group_id"}


class DriveSettings(Protocol):
    """Where a drive is named (ConnectionSettings has these), so this module needs not import config."""

    @property
    def drive_type(self) -> str: ...

    @property
    def drive_value(self) -> str | None: ...

    @property
    def library(self) -> str | None: ...


def select_drive(
    field: Callable[[str], str | None],
    *,
    delegated: bool,
    fail: Callable[[str], Exception] = OneDriveConfigError,
) -> tuple[str, str | None, str | None]:
    """``(kind, value, library)`` from connection-style fields (``drive_type``, ``user_id``, ``drive_id``,
    ``site``, ``group_id``, ``library``): the one reading of the drive vocabulary, for connections and
    ``onedrive://`` storage options alike.

    :param field: returns a field's text, or None when it is absent or empty.
    :param delegated: a signed-in user: ``me`` is the default when no drive is named.
    :param fail: builds the error to raise from a message (connections prefix their id).
    """
    drive_type = field("drive_type")
    library = field("library")
    if drive_type is None:
        present = [kind for kind, name in DRIVE_VALUE_FIELDS.items() if field(name)]
        if len(present) > 1:
            raise fail(
                f"several drives are configured ({', '.join(DRIVE_VALUE_FIELDS[k] for k in present)}); "
                "set extra 'drive_type' to say which one to use"
            )
        if present:
            drive_type = present[0]
        elif delegated:
            drive_type = "me"
        else:
            raise fail(
                "app-only credentials need to know which drive to use: set extra 'drive_type' to user, "
                "drive, site or group with the matching 'user_id', 'drive_id', 'site' or 'group_id'"
            )
    drive_type = drive_type.strip().lower()
    if drive_type not in DRIVE_TYPES:
        raise fail(f"extra 'drive_type' is {drive_type!r}; use one of {', '.join(DRIVE_TYPES)}")
    value = None
    if drive_type != "me":
        name = DRIVE_VALUE_FIELDS[drive_type]
        value = (field(name) or "").strip()
        if not value:
            raise fail(f"drive_type {drive_type!r} needs extra {name!r}")
        if drive_type == "site" and "://" in value:
            parts = urlsplit(value)
            if parts.scheme != "https" or not parts.hostname:
                raise fail(
                    f"extra 'site' {value!r} is not a SharePoint site URL like "
                    "https://contoso.sharepoint.com/sites/Finance (or give the site id)"
                )
    if library and drive_type != "site":
        raise fail("extra 'library' only applies to drive_type 'site'; remove it or set drive_type site")
    return drive_type, value, library.strip() if library else None


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
    def from_settings(cls, settings: DriveSettings) -> DriveLocator:
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
