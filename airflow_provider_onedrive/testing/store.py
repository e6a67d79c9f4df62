"""Drives and driveItems: the emulator's state, guarded by one lock.

Items are addressed case-insensitively but keep their original case. Every change takes a number from one
sequence; delta queries and eTags are derived from it. Deleted items leave tombstones for delta and go to the
drive's recycle bin (still counting against its quota) unless deleted permanently.
"""

from __future__ import annotations

import collections
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_onedrive.testing.blobs import Blob
from airflow_provider_onedrive.testing.settings import Clock, EmulatorSettings
from airflow_provider_onedrive.testing.wire import GraphError

__all__ = ["Drive", "Item", "Store", "Tombstone", "validate_name"]

_INVALID_CHARS = set('"*:<>?/\\|')
#: SharePoint Online and OneDrive also refuse control characters (U+0000-U+001F, U+007F-U+009F): the rule
#: Microsoft's PnP SharePoint libraries check names against before sending them.
_CONTROL = {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}
_RESERVED = {".lock", "con", "prn", "aux", "nul", "desktop.ini"} | {
    f"{p}{d}" for p in ("com", "lpt") for d in range(10)
}
MAX_PATH = 400


def validate_name(name: str) -> None:
    """Raise Graph's 400 if OneDrive / SharePoint would refuse ``name``."""
    problem = None
    if not name:
        problem = "The name is empty."
    elif _INVALID_CHARS & set(name):
        problem = 'The name contains one of the characters " * : < > ? / \\ | that are not allowed.'
    elif _CONTROL & set(name):
        problem = "The name contains a control character, which is not allowed."
    elif name != name.strip(" "):
        problem = "The name has a leading or trailing space."
    elif name.endswith("."):
        problem = "The name ends with a period."
    elif name.lower() in _RESERVED or name.startswith("~$") or "_vti_" in name.lower():
        problem = "The name is reserved."
    if problem:
        raise GraphError(400, "invalidRequest", f"Invalid name '{name}'. {problem}", "nameContainsInvalidCharacters")


@dataclass
class Item:
    """A file or folder (the root is a folder whose ``parent_id`` is None)."""

    id: str
    name: str
    parent_id: str | None
    is_folder: bool
    created: float
    modified: float
    fs_created: float
    fs_modified: float
    uid: str
    created_by: dict[str, str]
    blob: Blob | None = None
    version: int = 1
    content_version: int = 1
    seq: int = 0
    children: dict[str, str] = field(default_factory=dict)  # lower-case name -> id

    @property
    def size(self) -> int:
        return self.blob.size if self.blob else 0


@dataclass
class Tombstone:
    """What delta reports for a deleted item."""

    id: str
    name: str
    parent_id: str | None
    is_folder: bool
    seq: int
    ancestors: frozenset[str]


@dataclass
class Drive:
    """A drive (user's OneDrive, document library, group drive) with its items."""

    id: str
    name: str
    drive_type: str
    owner: dict[str, dict[str, str]]
    web_url: str
    quota_total: int
    root_id: str = ""
    items: dict[str, Item] = field(default_factory=dict)
    tombstones: list[Tombstone] = field(default_factory=list)
    recycle_bin: list[Item] = field(default_factory=list)
    used: int = 0
    deleted_bytes: int = 0
    counter: int = 0
    description: str = ""
    site_id: str | None = None

    @property
    def root(self) -> Item:
        return self.items[self.root_id]

    @property
    def remaining(self) -> int:
        return max(0, self.quota_total - self.used)


class Store:
    """All drives and items; every public method takes the lock."""

    def __init__(self, settings: EmulatorSettings, clock: Clock, directory: str) -> None:
        self.settings = settings
        self.clock = clock
        self.directory = directory
        self.lock = threading.RLock()
        self.drives: dict[str, Drive] = {}
        self.seq = 0
        self.delta_floor = 0
        self.hidden_reads: dict[str, int] = {}
        #: Sharing links by permission id (testing.sharing.LinkPermission), kept with the drives they share.
        self.links: dict[str, Any] = {}

    # -- ids and bookkeeping -------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _new_item_id(self, drive: Drive) -> str:
        drive.counter += 1
        digest = hashlib.sha1(f"{drive.id}/{drive.counter}".encode()).hexdigest().upper()
        if self.settings.business:
            return "01" + digest[:32]
        return f"{drive.id.upper()}!{drive.counter + 100}"

    def _touch(self, item: Item, content: bool = False) -> None:
        item.version += 1
        if content:
            item.content_version += 1
        item.modified = self.clock.now()
        item.seq = self._next_seq()

    def add_drive(
        self, drive_id: str, name: str, drive_type: str, owner: dict[str, dict[str, str]], web_url: str
    ) -> Drive:
        """Create an empty drive with its root folder."""
        with self.lock:
            drive = Drive(drive_id, name, drive_type, owner, web_url, self.settings.drive_quota)
            now = self.clock.now()
            root = Item(self._new_item_id(drive), "root", None, True, now, now, now, now, str(uuid.uuid4()).upper(), {})
            root.seq = self._next_seq()
            drive.items[root.id] = root
            drive.root_id = root.id
            self.drives[drive_id] = drive
            return drive

    # -- lookups ---------------------------------------------------------------------------------------------
    def item(self, drive: Drive, item_id: str) -> Item:
        found = drive.items.get(item_id)
        if found is None:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        return found

    def find(self, drive: Drive, base: Item, segments: list[str]) -> Item | None:
        """The item at ``segments`` below ``base`` (case-insensitive), or None."""
        with self.lock:
            current = base
            for name in segments:
                if not current.is_folder:
                    return None
                child_id = current.children.get(name.lower())
                if child_id is None:
                    return None
                current = drive.items[child_id]
            return current

    def names(self, drive: Drive, item: Item) -> list[str]:
        """Names from the root (exclusive) down to ``item``."""
        names: list[str] = []
        while item.parent_id is not None:
            names.append(item.name)
            item = drive.items[item.parent_id]
        return names[::-1]

    def ancestors(self, drive: Drive, item: Item) -> Iterator[Item]:
        while item.parent_id is not None:
            item = drive.items[item.parent_id]
            yield item

    def children(self, item: Item, drive: Drive) -> list[Item]:
        with self.lock:
            kids = [drive.items[i] for i in item.children.values()]
        return sorted(kids, key=lambda i: (i.name.lower(), i.name))

    def consume_hidden_read(self, item: Item) -> None:
        """Answer 404 for an item still inside its eventual-consistency window."""
        with self.lock:
            left = self.hidden_reads.get(item.id, 0)
            if left > 0:
                self.hidden_reads[item.id] = left - 1
                raise GraphError(404, "itemNotFound", "The resource could not be found.")

    # -- creation ---------------------------------------------------------------------------------------------
    def _check_path_length(self, drive: Drive, parent: Item, name: str) -> None:
        length = sum(len(n) + 1 for n in self.names(drive, parent)) + len(name) + 1
        if length > MAX_PATH:
            raise GraphError(400, "invalidRequest", "The path is too long (more than 400 characters).", "pathIsTooLong")

    def _resolve_conflict(self, drive: Drive, parent: Item, name: str, conflict: str) -> tuple[str, Item | None]:
        """Final name and the existing item to replace (if any) under ``conflict`` = fail|replace|rename."""
        if not parent.is_folder:
            raise GraphError(400, "invalidRequest", "The parent item is not a folder.")
        existing_id = parent.children.get(name.lower())
        if existing_id is None:
            return name, None
        if conflict == "replace":
            return name, drive.items[existing_id]
        if conflict == "rename":
            stem, ext = os.path.splitext(name)
            number = 1
            while f"{stem} {number}{ext}".lower() in parent.children:
                number += 1
            return f"{stem} {number}{ext}", None
        raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")

    def _new_item(self, drive: Drive, parent: Item, name: str, is_folder: bool, actor: dict[str, str]) -> Item:
        now = self.clock.now()
        item = Item(
            self._new_item_id(drive), name, parent.id, is_folder, now, now, now, now, str(uuid.uuid4()).upper(), actor
        )
        item.seq = self._next_seq()
        drive.items[item.id] = item
        parent.children[name.lower()] = item.id
        self._touch(parent)
        return item

    def create_folder(
        self, drive: Drive, parent: Item, name: str, conflict: str, actor: dict[str, str]
    ) -> tuple[Item, bool]:
        """Create folder ``name`` in ``parent``; returns (folder, created)."""
        validate_name(name)
        with self.lock:
            self._check_path_length(drive, parent, name)
            final, existing = self._resolve_conflict(drive, parent, name, conflict)
            if existing is not None:
                if not existing.is_folder:
                    raise GraphError(409, "nameAlreadyExists", "A file with the same name already exists.")
                return existing, False
            return self._new_item(drive, parent, final, True, actor), True

    def ensure_folders(self, drive: Drive, base: Item, segments: list[str], actor: dict[str, str]) -> Item:
        """Walk ``segments`` below ``base``, creating missing folders; a file in the way is a 409."""
        with self.lock:
            current = base
            for name in segments:
                current, _ = self.create_folder(drive, current, name, "replace", actor)
            return current

    def check_quota(self, drive: Drive, size: int, replacing: Item | None = None) -> None:
        freed = replacing.size if replacing is not None and not replacing.is_folder else 0
        if size - freed > drive.remaining:
            raise GraphError(507, "quotaLimitReached", "Insufficient Space Available")

    def put_file(
        self,
        drive: Drive,
        parent: Item,
        name: str,
        blob: Blob,
        conflict: str,
        actor: dict[str, str],
        fs_info: tuple[float | None, float | None] = (None, None),
    ) -> tuple[Item, bool]:
        """Store ``blob`` as file ``name`` in ``parent``; returns (item, created)."""
        validate_name(name)
        with self.lock:
            self._check_path_length(drive, parent, name)
            final, existing = self._resolve_conflict(drive, parent, name, conflict)
            if existing is not None and existing.is_folder:
                raise GraphError(409, "nameAlreadyExists", "A folder with the same name already exists.")
            self.check_quota(drive, blob.size, existing)
            if existing is None:
                item = self._new_item(drive, parent, final, False, actor)
            else:
                item = existing
                drive.used -= item.size
                self._touch(item, content=True)
                self._touch(parent)
            item.blob = blob
            drive.used += blob.size
            now = self.clock.now()
            item.fs_created = fs_info[0] if fs_info[0] is not None else (item.fs_created if existing else now)
            item.fs_modified = fs_info[1] if fs_info[1] is not None else now
            return item, existing is None

    def replace_content(self, drive: Drive, item: Item, blob: Blob) -> Item:
        """New content for an existing file (``PUT /items/{id}/content``)."""
        with self.lock:
            if item.is_folder:
                raise GraphError(400, "invalidRequest", "Cannot upload content to a folder.")
            parent = drive.items[item.parent_id] if item.parent_id else drive.root
            return self.put_file(drive, parent, item.name, blob, "replace", item.created_by)[0]

    # -- changes ---------------------------------------------------------------------------------------------
    def update(
        self,
        drive: Drive,
        item: Item,
        name: str | None,
        new_parent: Item | None,
        conflict: str,
        fs_info: tuple[float | None, float | None] = (None, None),
    ) -> Item:
        """Rename and/or move ``item`` within ``drive``, and set its fileSystemInfo."""
        with self.lock:
            if item.parent_id is None and (name or new_parent):
                raise GraphError(400, "invalidRequest", "The root folder cannot be renamed or moved.")
            parent = drive.items[item.parent_id] if item.parent_id else None
            target = new_parent or parent
            final = name if name is not None else item.name
            if target is not None and (target is not parent or final.lower() != item.name.lower()):
                validate_name(final)
                if target.id == item.id or item.id in {a.id for a in self.ancestors(drive, target)}:
                    raise GraphError(400, "invalidRequest", "An item cannot be moved into itself.")
                self._check_path_length(drive, target, final)
                final, existing = self._resolve_conflict(drive, target, final, conflict)
                if existing is not None:
                    self._remove(drive, existing, permanent=False)
                assert parent is not None
                del parent.children[item.name.lower()]
                self._touch(parent)
                target.children[final.lower()] = item.id
                item.parent_id = target.id
                self._touch(target)
            elif target is not None and final != item.name:
                target.children[final.lower()] = item.id  # case-only rename
            item.name = final
            if fs_info[0] is not None:
                item.fs_created = fs_info[0]
            if fs_info[1] is not None:
                item.fs_modified = fs_info[1]
            self._touch(item)
            return item

    def delete(self, drive: Drive, item: Item, permanent: bool, if_match: str | None, etag: str) -> None:
        """Delete ``item`` (and everything below it) to the recycle bin, or permanently."""
        with self.lock:
            if item.parent_id is None:
                raise GraphError(403, "accessDenied", "The root folder cannot be deleted.", "notAllowed")
            if if_match not in (None, "*") and if_match != etag:
                raise GraphError(
                    412, "resourceModified", "ETag does not match current item's value", "resourceModified"
                )
            self._remove(drive, item, permanent)

    def _remove(self, drive: Drive, item: Item, permanent: bool) -> None:
        parent = drive.items[item.parent_id] if item.parent_id else None
        chain = frozenset(a.id for a in self.ancestors(drive, item))
        stack = [(item, chain)]
        while stack:
            current, ancestors = stack.pop()
            for child_id in current.children.values():
                stack.append((drive.items[child_id], ancestors | {current.id}))
            drive.items.pop(current.id, None)
            drive.tombstones.append(
                Tombstone(current.id, current.name, current.parent_id, current.is_folder, self._next_seq(), ancestors)
            )
            if current.size:
                if permanent:
                    drive.used -= current.size
                else:
                    drive.deleted_bytes += current.size
        if not permanent:
            drive.recycle_bin.append(item)
        if parent is not None:
            del parent.children[item.name.lower()]
            self._touch(parent)

    def copy_tree(
        self, src: Drive, item: Item, dst: Drive, parent: Item, name: str, conflict: str, actor: dict[str, str]
    ) -> Item:
        """Copy ``item`` (recursively) into ``parent`` of drive ``dst``; blobs are shared, they are immutable."""
        with self.lock:
            if not item.is_folder:
                assert item.blob is not None
                return self.put_file(
                    dst, parent, name, item.blob, conflict, actor, (item.fs_created, item.fs_modified)
                )[0]
            total = sum(d.size for d in self.walk(src, item))
            self.check_quota(dst, total)
            validate_name(name)
            final, existing = self._resolve_conflict(dst, parent, name, conflict)
            if existing is not None:
                self._remove(dst, existing, permanent=False)
            copy = self._new_item(dst, parent, final, True, actor)
            for child in self.children(item, src):
                self.copy_tree(src, child, dst, copy, child.name, "fail", actor)
            return copy

    def walk(self, drive: Drive, item: Item) -> Iterator[Item]:
        """``item`` and everything below it, parents before children."""
        stack = [item]
        while stack:
            current = stack.pop()
            yield current
            stack.extend(drive.items[c] for c in current.children.values())

    def walk_breadth_first(self, drive: Drive, item: Item) -> Iterator[Item]:
        """``item`` and everything below it, level by level (so parents always come before children)."""
        queue = collections.deque([item])
        while queue:
            current = queue.popleft()
            yield current
            queue.extend(drive.items[c] for c in current.children.values())

    # -- delta -----------------------------------------------------------------------------------------------
    def delta(self, drive: Drive, scope: Item, since: int | None, upto: int) -> list[Item | Tombstone]:
        """Changes in ``scope``'s subtree with ``since < seq <= upto`` (everything live when ``since`` is None)."""
        with self.lock:
            if since is not None and since < self.delta_floor:
                raise GraphError(
                    410,
                    "resyncRequired",
                    "Resync required. Replace any local items with the server's version (including deletes) if "
                    "you're sure that the service was up to date with your local changes when you last sync'd.",
                    "resyncChangesApplyDifferences",
                )
            changes: list[Item | Tombstone] = [
                i for i in self.walk_breadth_first(drive, scope) if i.seq <= upto and (since is None or i.seq > since)
            ]
            if since is not None:
                changes += [
                    t
                    for t in drive.tombstones
                    if since < t.seq <= upto and (scope.parent_id is None or scope.id in t.ancestors)
                ]
            return changes
