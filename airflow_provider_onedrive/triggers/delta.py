"""A drive's change feed: Graph delta on the drive root, read in rounds on the triggerer's event loop.

Follows https://learn.microsoft.com/en-us/graph/api/driveitem-delta: start from ``token=latest`` (changes only,
no enumeration of what is there), follow every ``@odata.nextLink`` until the one page that carries the
``@odata.deltaLink``, keep the last occurrence of each item (items come in their latest state and may repeat),
track items by id (delta items carry no ``parentReference.path``), and on ``410 Gone`` follow the ``Location``
header: a fresh enumeration of the drive, from which the changes since the last good round are derived.

The root's delta is used on every kind of drive: folder delta exists only on OneDrive personal, and one feed of
the whole drive is what every watcher of that drive can share. No Airflow here; delta and deltaLinks never
reach a log message whole (a deltaLink carries the position token as a query parameter).
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_onedrive.errors import OneDriveError
from airflow_provider_onedrive.paths import url_origin
from airflow_provider_onedrive.timestamps import parse_timestamp
from airflow_provider_onedrive.triggers.async_graph import TriggerSession, get_response

if TYPE_CHECKING:
    import httpx

__all__ = ["Change", "DeltaFeed", "Round"]

log = logging.getLogger("airflow_provider_onedrive.triggers.delta")

#: What a change needs; without it Graph would also send pre-authenticated download URLs.
_SELECT = "id,name,size,eTag,createdDateTime,lastModifiedDateTime,file,folder,root,deleted,parentReference"
_FOLDER_SELECT = "id,name,parentReference,root"
#: Deepest folder chain resolved (a guard against a parent cycle in a broken answer).
_MAX_DEPTH = 1000


@dataclass(frozen=True)
class Change:
    """One file or folder as a delta round last reported it (``path`` is None when it cannot be known: a
    deleted item whose name Graph omits, as OneDrive for Business does)."""

    id: str
    path: str | None
    is_folder: bool
    deleted: bool
    etag: str | None = None
    size: int | None = None
    quick_xor_hash: str | None = None
    modified: str | None = None
    created: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Round:
    """What one poll of the feed found.

    :param since: server time (epoch seconds) of the position the round started from; an item created at or
        after it is new in this round.
    :param server_now: server time at the end of the round (the ``Date`` of its last answer).
    :param present: after a resync, the ids of every file in the drive (so watchers can tell what was deleted
        while the feed could not say); None for an ordinary round.
    """

    changes: tuple[Change, ...]
    delta_link: str
    since: float
    server_now: float
    drive_id: str
    present: frozenset[str] | None = None

    @property
    def resync(self) -> bool:
        return self.present is not None


def server_time(response: httpx.Response) -> float:
    """The server's clock from the ``Date`` header (this machine's clock if there is none)."""
    value = response.headers.get("Date")
    if value:
        try:
            return email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()


def _epoch(value: Any) -> float | None:
    parsed = parse_timestamp(value) if isinstance(value, str) else None
    return parsed.timestamp() if parsed else None


class DeltaFeed:
    """Delta rounds of one drive through a trigger session; remembers the folder tree it has seen (by id)."""

    def __init__(self, session: TriggerSession) -> None:
        self.session = session
        self.origin = url_origin(session.graph_url)
        self.drive_id = ""
        self.root_id: str | None = None
        #: folder id -> (name, parent id); the root maps to ("", None).
        self.folders: dict[str, tuple[str, str | None]] = {}

    def url(self, relative: str) -> str:
        return f"{self.session.graph_url}/{relative}"

    @property
    def _delta_url(self) -> str:
        return self.url(f"{self.session.drive_base.strip('/')}/root/delta")

    def _checked(self, link: Any, what: str) -> str:
        """A link Graph handed back, refused unless it points at the configured Graph host."""
        if not isinstance(link, str) or not link:
            raise OneDriveError(f"Graph's delta answer has no usable {what}")
        if url_origin(link) != self.origin:
            raise OneDriveError(
                f"refusing to follow the delta {what} to {urlsplit(link).netloc}: not the configured Graph host, "
                "and the access token would leak"
            )
        return link

    async def _load_root(self) -> None:
        if self.root_id is not None:
            return
        url = self.url(f"{self.session.drive_base.strip('/')}/root")
        root = (await get_response(self.session, url, {"$select": _FOLDER_SELECT})).json()
        self.root_id = root["id"]
        self.drive_id = (root.get("parentReference") or {}).get("driveId") or ""
        self.folders[root["id"]] = ("", None)

    async def latest(self) -> tuple[str, float]:
        """The deltaLink of "now" (``token=latest``: an empty page) and the server time it was issued."""
        await self._load_root()
        response = await get_response(self.session, self._delta_url, {"token": "latest", "$select": _SELECT})
        page = response.json()
        if page.get("value"):
            log.warning("Graph returned items for token=latest; they are ignored (only later changes count)")
        return self._checked(page.get("@odata.deltaLink"), "deltaLink"), server_time(response)

    async def round(self, delta_link: str, since: float) -> Round:
        """Every change since ``delta_link`` (all pages), or, after a 410, the differences a fresh enumeration
        shows: files the drive modified at or after ``since``, and the ids of every file (``present``)."""
        await self._load_root()
        url: str = self._checked(delta_link, "deltaLink")
        params: dict[str, str] | None = None
        latest: dict[str, dict[str, Any]] = {}
        resync = False
        while True:
            response = await get_response(self.session, url, params, accept=frozenset({200, 410}))
            if response.status_code == 410:
                if resync:
                    raise OneDriveError("Graph answered 410 Gone to the fresh enumeration it asked for")
                resync, latest = True, {}
                log.warning(
                    "OneDrive delta position expired (410 %s): resyncing from a fresh enumeration of the drive",
                    _error_code(response),
                )
                location = response.headers.get("Location")
                if location:
                    url, params = self._checked(location, "Location"), None
                else:
                    url, params = self._delta_url, {"$select": _SELECT}
                continue
            page = response.json()
            for raw in page.get("value") or ():
                if isinstance(raw, dict) and raw.get("id"):
                    latest.pop(raw["id"], None)  # the last occurrence wins, in its position
                    latest[raw["id"]] = raw
            next_link = page.get("@odata.nextLink")
            if next_link:
                url, params = self._checked(next_link, "nextLink"), None
                continue
            new_link = self._checked(page.get("@odata.deltaLink"), "deltaLink")
            now = server_time(response)
            break
        if resync:
            self.folders = {self.root_id: ("", None)} if self.root_id else {}
        changes = await self._changes(latest.values())
        if not resync:
            return Round(tuple(changes), new_link, since, now, self.drive_id)
        present = frozenset(c.id for c in changes if not c.is_folder and not c.deleted)
        recent = tuple(c for c in changes if not c.deleted and (_epoch(c.modified) or 0) >= since)
        return Round(recent, new_link, since, now, self.drive_id, present)

    async def _changes(self, items: Any) -> list[Change]:
        items = list(items)
        for raw in items:  # the folder tree first, so files resolve against this round's names
            if "deleted" in raw:
                continue
            if "root" in raw:
                self.root_id = raw["id"]
                self.folders[raw["id"]] = ("", None)
            elif "folder" in raw:
                self.folders[raw["id"]] = (raw.get("name") or "", (raw.get("parentReference") or {}).get("id"))
        changes = []
        for raw in items:
            if "root" in raw:
                continue
            changes.append(await self._change(raw))
        for change in changes:
            if change.deleted and change.is_folder:
                self.folders.pop(change.id, None)
        return changes

    async def _change(self, raw: Mapping[str, Any]) -> Change:
        deleted = "deleted" in raw
        is_folder = "folder" in raw
        parent_id = (raw.get("parentReference") or {}).get("id")
        name = raw.get("name")
        path: str | None = None
        if is_folder and raw["id"] in self.folders:  # a deleted one too: its files go with it
            path = await self.folder_path(raw["id"])
        elif name and parent_id:
            parent = await self.folder_path(parent_id)
            path = f"{parent}/{name}".strip("/") if parent is not None else None
        if deleted:
            return Change(raw["id"], path, is_folder, True)
        hashes = (raw.get("file") or {}).get("hashes") or {}
        return Change(
            raw["id"],
            path,
            is_folder,
            False,
            etag=raw.get("eTag"),
            size=int(raw["size"]) if raw.get("size") is not None else None,
            quick_xor_hash=hashes.get("quickXorHash"),
            modified=raw.get("lastModifiedDateTime"),
            created=raw.get("createdDateTime"),
        )

    async def folder_path(self, folder_id: str) -> str | None:
        """The drive-relative path of a folder, looking up (once) ancestors this feed has not seen; None when
        a folder on the way no longer exists."""
        names: list[str] = []
        current: str | None = folder_id
        for _ in range(_MAX_DEPTH):
            if current is None:
                return "/".join(reversed(names))
            known = self.folders.get(current)
            if known is None:
                known = await self._lookup(current)
                if known is None:
                    return None
            name, parent = known
            if parent is None:
                return "/".join(reversed(names))
            names.append(name)
            current = parent
        raise OneDriveError("the drive's folder chain is deeper than expected (a parent cycle?)")

    async def _lookup(self, folder_id: str) -> tuple[str, str | None] | None:
        base = self.session.drive_base.strip("/")
        url = self.url(f"{base}/items/{folder_id}")
        response = await get_response(self.session, url, {"$select": _FOLDER_SELECT}, accept=frozenset({200, 404}))
        if response.status_code == 404:
            return None
        raw = response.json()
        entry: tuple[str, str | None] = (
            ("", None) if "root" in raw else (raw.get("name") or "", (raw.get("parentReference") or {}).get("id"))
        )
        self.folders[folder_id] = entry
        return entry


def _error_code(response: httpx.Response) -> str:
    """Graph's error code (and inner code) of an error answer, for a log line."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return "no error body"
    inner = (error.get("innerError") or error.get("innererror") or {}).get("code")
    return f"{error.get('code')}/{inner}" if inner else str(error.get("code"))
