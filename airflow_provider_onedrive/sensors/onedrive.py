"""OneDriveFileSensor: wait for a file (or files matching a glob) to arrive in a drive.

Unlike a plain existence check, a missing folder means "not yet", never a failure; optional conditions
(``min_size``, ``modified_after``, ``stable_for``) keep half-written or stale files from counting. With
``deferrable=True`` the sensor pokes once, then frees its worker slot and waits in the triggerer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_onedrive.compat import AirflowException, BaseSensorOperator, PokeReturnValue, conf
from airflow_provider_onedrive.errors import OneDriveNotFoundError
from airflow_provider_onedrive.matching import FileCriteria, compact_item, parse_datetime
from airflow_provider_onedrive.paths import parent_and_name

if TYPE_CHECKING:
    from airflow_provider_onedrive.drive import OneDriveClient
    from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

__all__ = ["OneDriveFileSensor", "OneDriveSensorError", "list_candidates"]


class OneDriveSensorError(AirflowException):
    """The deferred wait ended with an error (the message says what failed; it never holds a secret)."""


def list_candidates(client: OneDriveClient, criteria: FileCriteria) -> list[dict[str, Any]]:
    """Records of every item the criteria's pattern could match; ``[]`` when the path or folder is missing."""
    glob = criteria.glob
    try:
        if not glob.is_glob:
            item = client.info(glob.base)
            return [compact_item(item.raw or item, parent=parent_and_name(glob.base)[0])]
        listing = client.ls(glob.base, recursive=glob.recursive, max_depth=glob.max_depth)
        return [compact_item(item) for item in listing]
    except OneDriveNotFoundError:
        return []


class OneDriveFileSensor(BaseSensorOperator):
    """Wait until a file, or at least one file matching a glob, exists and meets every condition.

    :param path: a path (``reports/q1.csv``) or glob (``incoming/*.csv``, ``data/**/*.parquet``) relative to the
        drive root (templated). A glob matches files only; a plain path may name a folder.
    :param min_size: smallest size in bytes a file must have to count (default: any size).
    :param modified_after: only files the drive last modified after this moment count: a datetime or ISO 8601
        text such as ``{{ data_interval_start }}`` (templated).
    :param stable_for: seconds a file's size and eTag must stay unchanged before it counts, so a file that is
        still being written is not picked up (observed across pokes, and by the drive's modification time).
    :param case_sensitive: match names exactly (OneDrive names are case-insensitive, so the default is not).
    :param deferrable: wait in the triggerer instead of a worker slot (default: ``[operators]
        default_deferrable``). The sensor pokes once first, then defers to :class:`OneDriveFileTrigger`.
    :param onedrive_conn_id: the ``onedrive`` connection (templated).
    :return: (XCom) the matching files, sorted by path:
        ``[{"path", "name", "size", "modified", "is_folder", "id", "quick_xor_hash"}, ...]``.
    """

    template_fields: Sequence[str] = ("onedrive_conn_id", "path", "modified_after")
    ui_color = "#cfe3f7"

    def __init__(
        self,
        *,
        path: str,
        min_size: int | None = None,
        modified_after: Any = None,
        stable_for: float = 0,
        case_sensitive: bool = False,
        onedrive_conn_id: str = "onedrive_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.min_size = min_size
        self.modified_after = modified_after
        self.stable_for = stable_for
        self.case_sensitive = case_sensitive
        self.onedrive_conn_id = onedrive_conn_id
        self.deferrable = deferrable
        self._criteria: FileCriteria | None = None
        self._hook: OneDriveHook | None = None
        static_modified = modified_after if isinstance(modified_after, str) and "{{" not in modified_after else None
        if isinstance(path, str) and "{{" not in path and "{%" not in path:
            FileCriteria(path, min_size, static_modified, stable_for, case_sensitive)  # validate early, no I/O

    @property
    def criteria(self) -> FileCriteria:
        """Built from rendered fields on first use and kept, so ``stable_for`` sees every poke of this run."""
        if self._criteria is None:
            self._criteria = FileCriteria(
                self.path, self.min_size, self.modified_after, self.stable_for, self.case_sensitive
            )
        return self._criteria

    def _client(self) -> OneDriveClient:
        if self._hook is None:
            from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

            self._hook = OneDriveHook(onedrive_conn_id=self.onedrive_conn_id)
        return self._hook.get_conn()

    def poke(self, context: Any) -> PokeReturnValue | bool:
        criteria = self.criteria
        records = list_candidates(self._client(), criteria)
        matches = criteria.select(records, time.time())
        if matches:
            shown = ", ".join(f"{m['path']} ({m['size']} bytes)" for m in matches[:10])
            more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
            self.log.info("Found %d matching file(s) for %s: %s%s", len(matches), self.path, shown, more)
            return PokeReturnValue(is_done=True, xcom_value=matches)
        if records:
            self.log.info(
                "Waiting for %s: %d candidate(s) seen, none meets the conditions yet%s",
                self.path,
                len(records),
                self._conditions(),
            )
        else:
            self.log.info("Waiting for %s: nothing there yet", self.path)
        return False

    def _conditions(self) -> str:
        parts = []
        if self.min_size is not None:
            parts.append(f"min_size={self.min_size}")
        cutoff = self.criteria.cutoff
        if cutoff is not None:
            parts.append(f"modified_after={cutoff.isoformat()}")
        if self.stable_for:
            parts.append(f"stable_for={self.stable_for}s")
        return f" ({', '.join(parts)})" if parts else ""

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first:
            return first.xcom_value if isinstance(first, PokeReturnValue) else None
        from airflow_provider_onedrive.triggers.onedrive import OneDriveFileTrigger

        modified_after = parse_datetime(self.modified_after)
        self.log.info("Deferring: the triggerer now watches %s every %.0f s", self.path, self.poke_interval)
        self.defer(
            trigger=OneDriveFileTrigger(
                path=self.path,
                onedrive_conn_id=self.onedrive_conn_id,
                min_size=self.min_size,
                modified_after=modified_after.isoformat() if modified_after else None,
                stable_for=float(self.stable_for),
                case_sensitive=self.case_sensitive,
                poke_interval=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout is not None else None,
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Resume after the trigger fired: return the matches, or fail with the trigger's error message."""
        if not event or event.get("status") != "success":
            message = (event or {}).get("message") or "the trigger ended without an event"
            raise OneDriveSensorError(f"waiting for {self.path} failed: {message}")
        matches = event.get("matches") or []
        self.log.info("Found %d matching file(s) for %s: %s", len(matches), self.path, [m["path"] for m in matches])
        return matches
