"""What the transfer layer is given: one drive's Graph access and the transfer settings (never the facade).

:class:`~airflow_provider_onedrive.drive.OneDriveClient` builds one :class:`DriveContext` and hands it to the
uploader, downloader and item operations, so ``transfers/`` depends on the Graph client and nothing above it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from airflow_provider_onedrive import paths
from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.transfers.common import MIB, check_workers
from airflow_provider_onedrive.transfers.listing import LIST_SELECT
from airflow_provider_onedrive.transfers.models import RemoteItem
from airflow_provider_onedrive.transfers.progress import ProgressCallback, ProgressReporter

if TYPE_CHECKING:
    from airflow_provider_onedrive.graph import GraphClient

__all__ = [
    "FRAGMENT_MULTIPLE",
    "MAX_FRAGMENT",
    "DriveContext",
    "DriveLike",
    "TransferSettings",
    "check_fragment_size",
    "check_streams",
]

FRAGMENT_MULTIPLE = 320 * 1024
MAX_FRAGMENT = 60 * 1024 * 1024


def check_fragment_size(size: int) -> int:
    """Round ``size`` down to a multiple of 320 KiB (at least one); refuse 60 MiB or more."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise OneDriveValidationError(f"fragment_size must be a positive number of bytes, got {size!r}")
    rounded = max(FRAGMENT_MULTIPLE, size - size % FRAGMENT_MULTIPLE)
    if rounded >= MAX_FRAGMENT:
        raise OneDriveValidationError(f"fragment_size {size} is too big: Graph refuses fragments of 60 MiB or more")
    return rounded


def check_streams(streams: object) -> int:
    """Validate a number of download streams: 1 (one stream) to 16."""
    if isinstance(streams, bool) or not isinstance(streams, int) or not 1 <= streams <= 16:
        raise OneDriveValidationError(f"download streams must be a whole number from 1 to 16, got {streams!r}")
    return streams


class DriveLike(Protocol):
    """Anything that names a drive lazily (the hook's DriveLocator): ``resolve(graph)`` -> ``"drives/{id}"``."""

    def resolve(self, graph: GraphClient) -> str: ...


@dataclass(frozen=True)
class TransferSettings:
    """How transfers behave (validated on creation; see :class:`~airflow_provider_onedrive.drive.OneDriveClient`)."""

    simple_upload_threshold: int = 4 * MIB
    fragment_size: int = 10 * MIB
    max_workers: int = 8
    verify_hashes: bool = True
    lenient_office_hashes: bool = False
    progress_interval: float = 5.0
    progress_log_min_bytes: int = 8 * MIB
    #: Streams for one large download (1 = one stream), from this size up, in ranges of this many bytes.
    download_streams: int = 4
    multi_stream_cutoff: int = 64 * MIB
    multi_stream_chunk: int = 16 * MIB
    #: A large download starts on one stream and is split only if that stream is slower than this (bytes/s);
    #: 0 splits it at once.
    multi_stream_min_rate: int = 100 * MIB
    #: fsync a download before renaming it into place (durable across a power loss; costs time on slow disks).
    fsync_downloads: bool = True

    def __post_init__(self) -> None:
        threshold = self.simple_upload_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise OneDriveValidationError(f"simple_upload_threshold must be >= 0 bytes, got {threshold!r}")
        check_workers(self.max_workers, optional=False)
        object.__setattr__(self, "fragment_size", check_fragment_size(self.fragment_size))
        check_streams(self.download_streams)
        rate = self.multi_stream_min_rate
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
            raise OneDriveValidationError(f"multi_stream_min_rate must be >= 0 bytes per second, got {rate!r}")
        for name in ("multi_stream_cutoff", "multi_stream_chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < MIB:
                raise OneDriveValidationError(f"{name} must be a whole number of bytes, at least 1 MiB; got {value!r}")


class DriveContext:
    """One drive as the transfer layer sees it: the Graph client, the drive's base path and id, the settings."""

    def __init__(self, graph: GraphClient, drive: DriveLike | str, settings: TransferSettings) -> None:
        self.graph = graph
        self.settings = settings
        self._drive = drive
        self._drive_base: str | None = drive.strip("/") if isinstance(drive, str) else None
        self._drive_id: str | None = None
        self._lock = threading.Lock()

    @property
    def drive_base(self) -> str:
        """The Graph-relative drive base, e.g. ``drives/b!abc`` (resolved on first use)."""
        if self._drive_base is None:
            with self._lock:
                if self._drive_base is None:
                    drive = self._drive
                    self._drive_base = (drive if isinstance(drive, str) else drive.resolve(self.graph)).strip("/")
        return self._drive_base

    @property
    def drive_id(self) -> str:
        """The drive's id (for ``me/drive``, ``users/...``, ``sites/...`` bases: one GET, then cached)."""
        if self._drive_id is None:
            base = paths.drive_part(self.drive_base)[0]
            if base.startswith("drives/") and "/" not in base[len("drives/") :]:
                self._drive_id = unquote(base[len("drives/") :])
            else:
                self._drive_id = str(self.graph.get_json(base, params={"$select": "id"})["id"])
        return self._drive_id

    def by_id(self, item_id: str, *tail: str) -> str:
        """The Graph path of an item addressed by id (``drives/x/items/{id}/...``)."""
        return "/".join((paths.drive_part(self.drive_base)[0], "items", item_id, *tail))

    def item(self, path: str) -> dict[str, Any]:
        """The raw driveItem at ``path`` ('' = the root). Raises OneDriveNotFoundError if missing."""
        return self.graph.get_json(paths.item_path(self.drive_base, path))

    def info(self, path: str) -> RemoteItem:
        """The item at ``path`` as a :class:`RemoteItem`."""
        normalized = paths.normalize(path)
        return RemoteItem.from_graph(self.item(normalized), normalized)

    def list_folder(self, folder: RemoteItem | str, *, select: str | None = LIST_SELECT) -> list[RemoteItem]:
        """Every child of ``folder`` (by item when known, else by path), names checked (see RemoteItem).

        :param select: the ``$select``; None asks for whole driveItems, which carry each file's
            ``@microsoft.graph.downloadUrl`` (naming that annotation in ``$select`` is not reliable on Graph).
        """
        if isinstance(folder, RemoteItem):
            url, base = self.by_id(folder.id, "children"), folder.path
        else:
            base = paths.normalize(folder)
            url = paths.item_path(self.drive_base, base, "children")
        params: dict[str, Any] = {"$top": 1000}
        if select is not None:
            params["$select"] = select
        return list(RemoteItem.children(base, self.graph.iter_values(url, params=params)))

    def reporter(
        self, path: str, total: int | None, direction: str, callback: ProgressCallback | None
    ) -> ProgressReporter:
        """Progress of one transfer: the callback at every step, a log line every ``progress_interval``."""
        return ProgressReporter(
            path,
            total,
            direction,
            callback=callback,
            interval=self.settings.progress_interval,
            log_min_bytes=self.settings.progress_log_min_bytes,
        )
