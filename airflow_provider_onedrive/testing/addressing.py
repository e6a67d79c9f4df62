"""Graph URL grammar: which drive and which item a request path names, and who may touch that drive.

Paths are split on ``/`` and ``:`` BEFORE percent-decoding, then each segment is decoded on its own (a name can
hold ``%2F``-free anything except ``/``, ``:`` never survives name validation), so every valid name round-trips.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from airflow_provider_onedrive.testing.identity import DirectoryUser, Principal
from airflow_provider_onedrive.testing.store import Drive, Item, Store
from airflow_provider_onedrive.testing.wire import GraphError

__all__ = ["ACTIONS", "Directory", "Group", "Site", "Target", "check_drive_access", "parse_graph_path"]

#: What may follow an item address.
ACTIONS = (
    "",
    "children",
    "content",
    "createUploadSession",
    "copy",
    "delta",
    "permanentDelete",
    "createLink",
    "permissions",
)


@dataclass
class Site:
    """A SharePoint site with its document libraries (the first is the default ``/drive``)."""

    id: str
    name: str
    hostname: str
    server_relative_path: str
    web_url: str
    drive_ids: list[str] = field(default_factory=list)


@dataclass
class Group:
    """A Microsoft 365 group and its drive."""

    id: str
    name: str
    drive_id: str


@dataclass
class Directory:
    """Who and what exists: users with their drives, sites, groups."""

    users: dict[str, tuple[DirectoryUser, str]] = field(default_factory=dict)  # lower upn and id -> (user, drive)
    sites: list[Site] = field(default_factory=list)
    groups: dict[str, Group] = field(default_factory=dict)
    root_site: Site | None = None

    def user(self, key: str) -> tuple[DirectoryUser, str]:
        found = self.users.get(unquote(key).lower())
        if found is None:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{unquote(key)}' does not exist or one of "
                "its queried reference-property objects are not present.",
            )
        return found

    def site(self, key: str) -> Site:
        key = unquote(key).lower()
        for site in self.sites:
            if key in (site.id.lower(), site.id.split(",")[1].lower()):
                return site
        raise GraphError(404, "itemNotFound", "Requested site could not be found")

    def site_by_path(self, hostname: str, path: str) -> Site:
        wanted = "/" + unquote(path).strip("/").lower()
        for site in self.sites:
            if site.hostname.lower() == unquote(hostname).lower() and site.server_relative_path.lower() == wanted:
                return site
        raise GraphError(404, "itemNotFound", "Requested site could not be found")


@dataclass
class Target:
    """What a Graph path addresses. ``kind`` is ``drive``, ``drives``, ``item``, ``site``, ``sites`` or ``user``."""

    kind: str
    drive: Drive | None = None
    prefix: str = "/drive"
    base: Item | None = None  # item the path segments start from
    segments: list[str] = field(default_factory=list)  # decoded names below ``base``
    action: str = ""
    item_id: str | None = None  # items/{id} address
    payload: Any = None  # site, user, list of drives
    #: The principal may not use the whole drive: only items shared with it (checked by testing.sharing).
    shared_access: bool = False


_SEGMENT_RE = re.compile(r"[^/]+")


def _decode(segment: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError as exc:
        raise GraphError(400, "invalidRequest", "The path is not valid UTF-8 after percent-decoding.") from exc


def _bad_segment(segment: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def _split_action(rest: str) -> str:
    action = rest.strip("/")
    if action == "delta()":
        action = "delta"
    if action not in ACTIONS:
        raise _bad_segment(action.split("/")[0])
    return action


def parse_item_path(target: Target, store: Store, rest: str) -> Target:
    """Fill ``target`` from the part after the drive: ``/root``, ``/items/{id}``, ``:/{path}:/{action}``..."""
    drive = target.drive
    assert drive is not None
    if rest in ("", "/"):
        target.kind = "drive"
        return target
    if rest.strip("/") in ("sharedWithMe", "sharedWithMe()"):
        target.kind = "sharedWithMe"
        return target
    target.kind = "item"
    match = re.match(r"/(root|items/([^/:]+))(.*)$", rest)
    if match is None:
        raise _bad_segment(rest.strip("/").split("/")[0])
    if match.group(2) is not None and re.search(r"%3a", match.group(2), re.IGNORECASE):
        # The Graph SDKs address by path as ``items.by_drive_item_id("root:/a/b.txt:")``, which they send as ONE
        # percent-encoded segment (``items/root%3A%2Fa%2Fb.txt%3A/content``); Graph decodes it and routes it like
        # ``items/root:/a/b.txt:/content``. Names never hold ``:`` or ``/``, so unfolding just those is lossless.
        unfolded = re.sub(r"%3a", ":", re.sub(r"%2f", "/", match.group(2), flags=re.IGNORECASE), flags=re.IGNORECASE)
        return parse_item_path(target, store, f"/items/{unfolded}{match.group(3)}")
    if match.group(2) is not None:
        target.item_id = _decode(match.group(2))
        # ``root`` is an item id alias too: ``items/root/children``, ``items/root:/path:`` (the SDKs' samples).
        target.base = drive.root if target.item_id == "root" else store.item(drive, target.item_id)
    else:
        target.base = drive.root
    tail = match.group(3)
    if tail.startswith(":"):
        path_part, *after = tail[1:].split(":")
        if len(after) > 1:
            raise GraphError(400, "invalidRequest", "The path contains too many ':' separators.")
        target.segments = [_decode(s) for s in _SEGMENT_RE.findall(path_part)]
        target.action = _split_action(after[0]) if after else ""
    else:
        target.action = _split_action(tail)
    return target


def parse_graph_path(path: str, directory: Directory, store: Store, principal: Principal) -> Target:
    """Resolve a path after ``/v1.0`` into a Target, enforcing /me and drive permissions."""
    rest = path
    if re.match(r"/me(/|$)", rest):
        if principal.app_only:
            raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        assert principal.user is not None
        rest = f"/users/{principal.user.id}" + rest[3:]
    match = re.match(r"/users/([^/]+)(/drives?)?(.*)$", rest)
    if match:
        user, drive_id = directory.user(match.group(1))
        if match.group(2) is None:
            if match.group(3):
                raise _bad_segment(match.group(3).strip("/").split("/")[0])
            return Target("user", payload=user)
        if match.group(2) == "/drives":
            if match.group(3):
                raise _bad_segment(match.group(3).strip("/").split("/")[0])
            return Target("drives", payload=[_check(store, drive_id, principal)])
        drive = _check(store, drive_id, principal)
        return parse_item_path(Target("item", drive=drive), store, match.group(3))
    match = re.match(r"/drives/([^/]+)(.*)$", rest)
    if match:
        drive_id = _decode(match.group(1))
        if drive_id not in store.drives:
            raise GraphError(404, "itemNotFound", "The drive cannot be found.")
        try:
            drive, shared = _check(store, drive_id, principal), False
        except GraphError:
            if not store.links:  # nothing is shared anywhere: no item of this drive can be reachable
                raise
            drive, shared = store.drives[drive_id], True  # maybe through a sharing link; checked per item
        target = parse_item_path(Target("item", drive=drive, prefix=f"/drives/{drive.id}"), store, match.group(2))
        target.shared_access = shared
        return target
    match = re.match(r"/groups/([^/]+)/(drives?)(.*)$", rest)
    if match:
        group = directory.groups.get(unquote(match.group(1)).lower())
        if group is None:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{unquote(match.group(1))}' does not exist.")
        drive = _check(store, group.drive_id, principal)
        if match.group(2) == "drives":
            return Target("drives", payload=[drive])
        return parse_item_path(Target("item", drive=drive), store, match.group(3))
    if rest.startswith("/sites"):
        return _parse_site(rest, directory, store, principal)
    raise _bad_segment(rest.strip("/").split("/")[0] or "v1.0")


def _parse_site(rest: str, directory: Directory, store: Store, principal: Principal) -> Target:
    if rest in ("/sites", "/sites/"):
        return Target("sites", payload=list(directory.sites))
    match = re.match(r"/sites/([^/:]+):(/[^:]*)(?::(.*))?$", rest)
    if match:
        site = directory.site_by_path(match.group(1), match.group(2))
        tail = match.group(3) or ""
    else:
        match = re.match(r"/sites/([^/]+)(.*)$", rest)
        if match is None:
            raise _bad_segment("sites")
        if match.group(1) == "root":
            if directory.root_site is None:
                raise GraphError(404, "itemNotFound", "Requested site could not be found")
            site = directory.root_site
        else:
            site = directory.site(match.group(1))
        tail = match.group(2)
    if tail in ("", "/"):
        return Target("site", payload=site)
    if tail == "/drives":
        return Target("drives", payload=[_check(store, d, principal) for d in site.drive_ids])
    match = re.match(r"/drives/([^/]+)(.*)$", tail)
    if match:
        drive_id = _decode(match.group(1))
        if drive_id not in site.drive_ids:
            raise GraphError(404, "itemNotFound", "The drive cannot be found.")
        drive = _check(store, drive_id, principal)
        return parse_item_path(Target("item", drive=drive, prefix=f"/drives/{drive_id}"), store, match.group(2))
    match = re.match(r"/drive(/.*)?$", tail)
    if match:
        drive = _check(store, site.drive_ids[0], principal)
        return parse_item_path(Target("item", drive=drive), store, match.group(1) or "")
    raise _bad_segment(tail.strip("/").split("/")[0])


def _check(store: Store, drive_id: str, principal: Principal) -> Drive:
    """The drive, if ``principal`` may use it; else 403 accessDenied."""
    drive = store.drives[drive_id]
    allowed = store.settings.app_allowed_drives
    if principal.app_only:
        granted = allowed is None or drive.id in allowed or (drive.site_id is not None and drive.site_id in allowed)
    else:
        assert principal.user is not None
        owner_id = drive.owner.get("user", {}).get("id")
        granted = owner_id is None or owner_id == principal.user.id
    if not granted:
        raise GraphError(
            403,
            "accessDenied",
            "Access denied. You do not have permission to perform this action or access this resource.",
        )
    return drive


def check_drive_access(store: Store, drive_id: str, principal: Principal) -> bool:
    """Whether ``principal`` may use the whole drive (its owner, or an app granted it)."""
    try:
        _check(store, drive_id, principal)
    except GraphError:
        return False
    return True
