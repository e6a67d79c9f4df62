"""The transfer engine behind :class:`~airflow_provider_onedrive.drive.OneDriveClient`.

``uploads`` (simple PUT and resumable upload sessions), ``downloads`` (atomic, resumed, verified),
``state`` (upload sessions remembered across processes), ``listing`` (walks and globs), ``operations``
(mkdir/delete/move/copy), ``folders`` (tree transfers), ``progress`` and ``models`` (results and events).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_onedrive.transfers.models import DownloadResult, ProgressEvent, RemoteItem, UploadResult
    from airflow_provider_onedrive.transfers.operations import CopyMonitor, OneDriveCopyTimeoutError
    from airflow_provider_onedrive.transfers.uploads import UploadSession

__all__ = [
    "CopyMonitor",
    "DownloadResult",
    "OneDriveCopyTimeoutError",
    "ProgressEvent",
    "RemoteItem",
    "UploadResult",
    "UploadSession",
]

#: Where each re-exported name lives; imported on first use, so importing one submodule (operators import
#: ``transfers.common`` at DAG-parse time) does not import the whole engine.
_HOMES = {
    "CopyMonitor": "operations",
    "DownloadResult": "models",
    "OneDriveCopyTimeoutError": "operations",
    "ProgressEvent": "models",
    "RemoteItem": "models",
    "UploadResult": "models",
    "UploadSession": "uploads",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
