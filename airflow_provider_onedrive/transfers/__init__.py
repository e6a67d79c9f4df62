"""The transfer engine behind :class:`~airflow_provider_onedrive.drive.OneDriveClient`.

``uploads`` (simple PUT and resumable upload sessions), ``downloads`` (atomic, resumed, verified),
``state`` (upload sessions remembered across processes), ``listing`` (walks and globs), ``operations``
(mkdir/delete/move/copy), ``folders`` (tree transfers), ``progress`` and ``models`` (results and events).
"""

from airflow_provider_onedrive.transfers.models import DownloadResult, ProgressEvent, RemoteItem, UploadResult
from airflow_provider_onedrive.transfers.operations import CopyMonitor, OneDriveCopyTimeoutError
from airflow_provider_onedrive.transfers.writer import UploadSession

__all__ = [
    "CopyMonitor",
    "DownloadResult",
    "OneDriveCopyTimeoutError",
    "ProgressEvent",
    "RemoteItem",
    "UploadResult",
    "UploadSession",
]
