"""The ``onedrive://`` fsspec filesystem (works without Airflow) and its ObjectStoragePath adapter."""

from __future__ import annotations

from airflow_provider_onedrive.fs.onedrive import OneDriveFile, OneDriveFileSystem

__all__ = ["OneDriveFile", "OneDriveFileSystem"]
