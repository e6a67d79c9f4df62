"""What one change watcher makes of a drive's delta rounds: which changes match, when a file is stable, which
events fire, and the small state that survives a triggerer restart. No Airflow, no HTTP.

A file fires once per new version (eTag): a repeated or unchanged item never fires again. With ``stable_for``
a file fires only when its size and eTag have stayed unchanged for that many seconds: the sensor's rule
(:class:`~airflow_provider_onedrive.matching.StabilityTracker`), on the server's clock (the rounds' ``Date``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.matching import GlobPattern, StabilityTracker, has_magic
from airflow_provider_onedrive.paths import normalize
from airflow_provider_onedrive.timestamps import parse_timestamp
from airflow_provider_onedrive.triggers.delta import Change, Round

__all__ = ["KINDS", "ChangeWatch", "parse_kinds", "watch_pattern"]

#: The kinds of change a watcher can fire for, in the order ``serialize()`` lists them.
KINDS = ("created", "modified", "deleted")
#: Most files a watcher remembers (ids it fired for, or saw at start); the oldest are dropped first.
_MAX_REMEMBERED = 100_000


def parse_kinds(kinds: Any) -> tuple[str, ...]:
    """The kinds in canonical order; a typed error naming the bad value otherwise."""
    if isinstance(kinds, str):
        kinds = [kinds]
    if not isinstance(kinds, Iterable) or isinstance(kinds, Mapping):
        raise OneDriveValidationError(f"kinds must be a list of {', '.join(KINDS)}; got {kinds!r}")
    given = list(kinds)
    unknown = [k for k in given if k not in KINDS]
    if unknown or not given:
        raise OneDriveValidationError(
            f"kinds {given!r}: each must be one of {', '.join(KINDS)} (at least one), e.g. kinds=['created']"
        )
    return tuple(k for k in KINDS if k in given)


def watch_pattern(path: str, recursive: bool) -> GlobPattern:
    """The glob a watcher matches: a glob as given, or a folder's files (``folder/*``; ``folder/**`` when
    ``recursive``). ``""`` is the drive root."""
    if not isinstance(path, str):
        raise OneDriveValidationError(f"path must be a folder or glob string, got {type(path).__name__}")
    if has_magic(path):
        if recursive:
            raise OneDriveValidationError(
                f"path {path!r} is a glob: recursive=True applies to a folder path; use '**' in the glob instead"
            )
        return GlobPattern.parse(path)
    folder = normalize(path)
    wildcard = "**" if recursive else "*"
    return GlobPattern.parse(f"{folder}/{wildcard}" if folder else wildcard)


class ChangeWatch:
    """One watcher's view of the feed. :meth:`apply` turns a round into event payloads."""

    def __init__(
        self, glob: GlobPattern, kinds: tuple[str, ...], stable_for: float, case_sensitive: bool = False
    ) -> None:
        self.glob = glob
        self.kinds = kinds
        self.case_sensitive = case_sensitive
        self.tracker = StabilityTracker(float(stable_for))
        #: id -> eTag of the version that fired (or was there at start): never fires again.
        self.settled: dict[str, str | None] = {}
        #: id -> drive path of files known to exist (for deletions Graph reports by id only).
        self.known: dict[str, str] = {}
        #: id -> (change, kind) waiting to become stable.
        self.pending: dict[str, tuple[Change, str]] = {}

    def matches(self, path: str | None) -> bool:
        return path is not None and self.glob.matches(path, case_sensitive=self.case_sensitive)

    def seed(self, records: Iterable[Mapping[str, Any]], *, settle: bool = True) -> None:
        """Files there at start (from a listing), so their deletion can be reported. With ``settle`` their
        current versions never fire (a first start); resuming, a version may still be news from the catch-up."""
        for record in records:
            if record.get("id") and not record.get("is_folder") and self.matches(record.get("path")):
                self._remember(record["id"], record["path"], record.get("etag"))
                if not settle:
                    self.settled.pop(record["id"], None)

    def _remember(self, item_id: str, path: str, etag: str | None) -> None:
        self.known.pop(item_id, None)
        self.known[item_id] = path
        self.settled.pop(item_id, None)
        self.settled[item_id] = etag
        while len(self.known) > _MAX_REMEMBERED:
            self.known.pop(next(iter(self.known)))
        while len(self.settled) > _MAX_REMEMBERED:
            self.settled.pop(next(iter(self.settled)))

    def _forget(self, item_id: str) -> None:
        self.known.pop(item_id, None)
        self.settled.pop(item_id, None)
        self.pending.pop(item_id, None)

    def apply(self, round_: Round) -> list[dict[str, Any]]:
        """Event payloads for this round: matching changes of the wanted kinds, stable ones only."""
        fired: list[dict[str, Any]] = []
        if round_.present is not None:
            for item_id in [i for i in self.known if i not in round_.present]:
                fired += self._deleted(item_id, self.known[item_id], round_)
        for change in round_.changes:
            if change.deleted:
                fired += self._on_delete(change, round_)
            elif not change.is_folder:
                self._on_file(change, round_)
        fired += self._ripe(round_)
        return fired

    def _on_delete(self, change: Change, round_: Round) -> list[dict[str, Any]]:
        if change.is_folder:
            prefix = (change.path or "").lower() + "/"
            inside = [i for i, p in self.known.items() if change.path is not None and p.lower().startswith(prefix)]
            return [event for i in inside for event in self._deleted(i, self.known[i], round_)]
        path = self.known.get(change.id) or change.path
        self.pending.pop(change.id, None)
        if path is None or not self.matches(path) or (change.id not in self.known and change.path is None):
            self._forget(change.id)
            return []
        return self._deleted(change.id, path, round_)

    def _deleted(self, item_id: str, path: str, round_: Round) -> list[dict[str, Any]]:
        self._forget(item_id)
        if "deleted" not in self.kinds:
            return []
        return [
            {
                "kind": "deleted",
                "path": path,
                "id": item_id,
                "etag": None,
                "size": None,
                "quick_xor_hash": None,
                "modified": None,
                "drive_id": round_.drive_id,
            }
        ]

    def _on_file(self, change: Change, round_: Round) -> None:
        if not self.matches(change.path):
            if change.id in self.known:  # moved out of the watched paths: no longer ours
                self._forget(change.id)
            return
        if change.id in self.settled and self.settled[change.id] == change.etag:
            return  # the same version again: delta may repeat items
        previous = self.pending.get(change.id)
        if previous is not None:
            kind = previous[1]
        else:
            created = parse_timestamp(change.created)
            kind = "created" if created is not None and created.timestamp() >= round_.since else "modified"
            if change.id in self.known and kind == "created":
                kind = "modified"
        self.pending[change.id] = (change, kind)

    def _ripe(self, round_: Round) -> list[dict[str, Any]]:
        fired = []
        for item_id, (change, kind) in list(self.pending.items()):
            record = {"path": change.path or "", "size": change.size or 0, "etag": change.etag}
            record["modified"] = change.modified
            if not self.tracker.is_stable(record, round_.server_now):
                continue
            del self.pending[item_id]
            assert change.path is not None
            self._remember(item_id, change.path, change.etag)
            if kind not in self.kinds:
                continue
            fired.append(
                {
                    "kind": kind,
                    "path": change.path,
                    "id": change.id,
                    "etag": change.etag,
                    "size": change.size,
                    "quick_xor_hash": change.quick_xor_hash,
                    "modified": change.modified,
                    "drive_id": round_.drive_id,
                }
            )
        return fired

    # -- what survives a restart ------------------------------------------------------------------------------
    def pending_state(self) -> list[dict[str, Any]]:
        """Files waiting to become stable, JSON-able (a restart must not lose them: the stored position is
        already past the round that reported them)."""
        return [{**change.to_dict(), "kind": kind} for change, kind in self.pending.values()]

    def restore_pending(self, entries: Any) -> None:
        for entry in entries or ():
            if isinstance(entry, Mapping) and entry.get("id") and entry.get("kind") in KINDS:
                self.pending[entry["id"]] = (Change.from_dict(entry), entry["kind"])
