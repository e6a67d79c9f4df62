"""Value objects the transfer engine returns: remote items, transfer results and progress events.

All of them are small frozen dataclasses with a JSON-able ``to_dict()`` (Airflow pushes them to XCom).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_onedrive import paths
from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.timestamps import format_timestamp, parse_timestamp

log = logging.getLogger("airflow_provider_onedrive.transfers")

__all__ = [
    "TIME_BASES",
    "DownloadResult",
    "ProgressEvent",
    "RemoteItem",
    "UploadResult",
    "check_time_basis",
    "file_system_info",
    "format_datetime",
    "parse_datetime",
]


def parse_datetime(value: str | None) -> datetime | None:
    """Parse a Graph timestamp (``2024-01-02T03:04:05.1234567Z``) into an aware UTC datetime."""
    return parse_timestamp(value)


def format_datetime(moment: datetime | float) -> str:
    """A Graph timestamp with millisecond precision from a datetime or a POSIX time."""
    return format_timestamp(moment)


#: The two modification times of an item. ``"drive"``: the server's ``lastModifiedDateTime`` (when the item last
#: changed in the drive; what freshness checks trust). ``"file_system"``: ``fileSystemInfo.lastModifiedDateTime``,
#: which clients may set (uploads preserve the local file's mtime), falling back to the drive's.
TIME_BASES = ("drive", "file_system")


def file_system_info(mtime: float) -> dict[str, str]:
    """The ``fileSystemInfo`` facet that gives an item the local modification time ``mtime`` (epoch seconds)."""
    return {"lastModifiedDateTime": format_datetime(mtime)}


def check_time_basis(basis: str) -> str:
    """Validate a choice of modification time (:data:`TIME_BASES`)."""
    if basis not in TIME_BASES:
        raise OneDriveValidationError(f"modified_by must be one of {', '.join(TIME_BASES)}, got {basis!r}")
    return basis


@dataclass(frozen=True)
class RemoteItem:
    """A file or folder in a drive. ``path`` is relative to the drive root ('' for the root).

    ``modified`` and ``created`` are the file-system times (client-settable, as a local file's mtime after an
    upload that preserves it); ``drive_modified`` is when the item last changed in the drive.
    """

    path: str
    name: str
    size: int
    modified: datetime | None
    created: datetime | None
    id: str
    etag: str | None
    ctag: str | None
    quick_xor_hash: str | None
    is_folder: bool
    mime_type: str | None
    child_count: int | None
    web_url: str | None
    drive_modified: datetime | None = None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def is_file(self) -> bool:
        return not self.is_folder

    @classmethod
    def from_graph(cls, raw: dict[str, Any], path: str) -> RemoteItem:
        """Build from a driveItem; ``path`` is where we addressed it (Graph's own parent path is not reliable)."""
        file_facet = raw.get("file") or {}
        folder_facet = raw.get("folder")
        fs_info = raw.get("fileSystemInfo") or {}
        return cls(
            path=path,
            name=raw.get("name", "") if path else "",
            size=int(raw.get("size") or 0),
            modified=parse_datetime(fs_info.get("lastModifiedDateTime") or raw.get("lastModifiedDateTime")),
            created=parse_datetime(fs_info.get("createdDateTime") or raw.get("createdDateTime")),
            id=raw.get("id", ""),
            etag=raw.get("eTag"),
            ctag=raw.get("cTag"),
            quick_xor_hash=(file_facet.get("hashes") or {}).get("quickXorHash"),
            is_folder=folder_facet is not None or "root" in raw,
            mime_type=file_facet.get("mimeType"),
            child_count=folder_facet.get("childCount") if isinstance(folder_facet, dict) else None,
            web_url=raw.get("webUrl"),
            drive_modified=parse_datetime(raw.get("lastModifiedDateTime")),
            raw=raw,
        )

    @classmethod
    def child_of(cls, folder: str, raw: dict[str, Any]) -> RemoteItem:
        """The item ``raw`` listed in ``folder``. Its name comes from the server, so it is checked like any name
        (no ``/``, ``\\``, ``..``, control characters) before it becomes part of a path: a rogue or
        misconfigured endpoint cannot steer a local path outside its destination."""
        name = paths.check_listed_name(raw.get("name"), folder=folder)
        return cls.from_graph(raw, f"{folder}/{name}" if folder else name)

    @classmethod
    def children(cls, folder: str, raws: Iterable[dict[str, Any]]) -> Iterator[RemoteItem]:
        """Items listed in ``folder``; one whose name OneDrive could never hold is skipped with a warning."""
        for raw in raws:
            try:
                yield cls.child_of(folder, raw)
            except OneDriveValidationError as exc:
                log.warning("skipping an item listed in %s: %s", folder or "(drive root)", exc)

    def modified_at(self, basis: str) -> datetime | None:
        """The modification time of ``basis`` (``"drive"`` or ``"file_system"``, see :data:`TIME_BASES`)."""
        return self.drive_modified if check_time_basis(basis) == "drive" else self.modified

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (datetimes as ISO 8601 strings), without the raw driveItem."""
        data = {k: v for k, v in asdict(self).items() if k not in ("raw", "drive_modified")}  # the shape is public
        for key in ("modified", "created"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data


@dataclass(frozen=True)
class UploadResult:
    """Outcome of one upload.

    ``status`` is ``created``, ``replaced``, ``renamed`` (conflict="rename" picked another name; ``path`` is the
    new one) or ``identical`` (the destination already held the same bytes: nothing new was committed).
    """

    path: str
    size: int
    id: str
    hash: str | None
    status: str
    elapsed: float
    bytes_sent: int
    resumed_from: int = 0
    source: str | None = None

    @property
    def already_present(self) -> bool:
        return self.status == "identical"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["already_present"] = self.already_present
        return data


@dataclass(frozen=True)
class DownloadResult:
    """Outcome of one download. ``resumed`` counts how often a broken stream was continued with a Range."""

    path: str
    local_path: str | None
    size: int
    id: str
    hash: str | None
    elapsed: float
    resumed: int = 0
    status: str = "downloaded"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ProgressEvent:
    """Progress of one transfer; ``total`` is None when the size is not known yet."""

    path: str
    bytes_done: int
    total: int | None
    elapsed: float
    direction: str

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.bytes_done / self.total)

    @property
    def rate(self) -> float:
        """Bytes per second so far."""
        return self.bytes_done / self.elapsed if self.elapsed > 0 else 0.0
