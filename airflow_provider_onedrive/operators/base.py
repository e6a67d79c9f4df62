"""What every OneDrive operator shares: the connection, argument checks, and plain-words logging helpers.

Nothing heavy is imported here (operators are imported on every DAG parse): the hook, and through it msal,
requests and the client, are imported inside ``execute``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_provider_onedrive.compat import BaseOperator
from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.matching import GlobPattern, has_magic
from airflow_provider_onedrive.paths import normalize
from airflow_provider_onedrive.transfers.common import CONFLICT_BEHAVIOURS, check_conflict

if TYPE_CHECKING:
    from airflow_provider_onedrive.drive import OneDriveClient

__all__ = [
    "CONFLICT_BEHAVIOURS",
    "OneDriveBaseOperator",
    "check_conflict",
    "describe_rate",
    "is_templated",
    "remote_path_or_glob",
]


def is_templated(value: Any) -> bool:
    """True when ``value`` is not known until run time (Jinja text, or an XCom reference)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return not isinstance(value, bytes | int | float | bool | type(None) | list | tuple)


def remote_path_or_glob(value: Any, *, what: str, allow_root: bool = False) -> str:
    """Validate a remote path (normalised) or glob (kept as written); the root only when ``allow_root``."""
    if not isinstance(value, str):
        raise OneDriveValidationError(f"{what} must be a string, got {type(value).__name__}")
    if has_magic(value):
        GlobPattern.parse(value)
        return value.strip()
    path = normalize(value)
    if not path and not allow_root:
        raise OneDriveValidationError(f"{what} is the drive root; name a file or folder below it")
    return path


def describe_rate(total_bytes: int, seconds: float) -> str:
    """``"12.0 MiB in 1.5 s (8.0 MiB/s)"``."""
    from airflow_provider_onedrive.transfers.progress import human_bytes

    rate = f" ({human_bytes(total_bytes / seconds)}/s)" if seconds > 0 and total_bytes else ""
    return f"{human_bytes(total_bytes)} in {seconds:.1f} s{rate}"


class OneDriveBaseOperator(BaseOperator):
    """Base of the OneDrive operators: holds ``onedrive_conn_id`` and opens the client for ``execute``.

    :param onedrive_conn_id: the ``onedrive`` connection to use (templated).
    """

    template_fields: Sequence[str] = ("onedrive_conn_id",)
    ui_color = "#cfe3f7"

    def __init__(self, *, onedrive_conn_id: str = "onedrive_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.onedrive_conn_id = onedrive_conn_id

    @contextmanager
    def client(self) -> Iterator[OneDriveClient]:
        """The connection's client for the duration of ``execute`` (closed afterwards)."""
        from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

        with OneDriveHook(onedrive_conn_id=self.onedrive_conn_id).get_conn() as client:
            yield client

    @staticmethod
    def clock() -> float:
        return time.monotonic()
