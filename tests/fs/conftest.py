"""Fixtures for the onedrive:// filesystem: the local Graph emulator, or the real service.

Set ``ONEDRIVE_TEST_CONNECTION`` to an Airflow connection in JSON form (``{"conn_type": "onedrive", "login":
..., "password": ..., "extra": {...}}``) to run these tests against Microsoft Graph; each test then works in its
own folder ``fsspec-tests-<random>`` at the drive root, removed afterwards. Unset, the emulator is used.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_onedrive.fs import OneDriveFileSystem

REAL_CONNECTION = os.environ.get("ONEDRIVE_TEST_CONNECTION")


def storage_options(connection: str | dict[str, Any]) -> dict[str, Any]:
    """The filesystem's storage options from an Airflow connection (JSON form): login, password and extra."""
    conn = json.loads(connection) if isinstance(connection, str) else dict(connection)
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra)
    return {"client_id": conn["login"], "client_secret": conn.get("password"), **extra}


@pytest.fixture
def fs_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Storage options for the service under test (the emulator's app-only connection by default)."""
    if REAL_CONNECTION:
        return storage_options(REAL_CONNECTION)
    emulator = request.getfixturevalue("onedrive_emulator")
    emulator.settings = emulator.settings.replace(copy_delay=0.0)  # server-side copies finish at once
    return storage_options(emulator.info()["connections"]["app"])


@pytest.fixture
def onedrive_fs(fs_options: dict[str, Any]) -> Iterator[OneDriveFileSystem]:
    """A fresh filesystem (no instance cache, no stale listings between tests)."""
    fs = OneDriveFileSystem(skip_instance_cache=True, **fs_options)
    yield fs
    fs.client.graph.close()


@pytest.fixture
def base(onedrive_fs: OneDriveFileSystem) -> Iterator[str]:
    """A folder for the test to work in: the emulator's fresh drive, or a unique folder on the real service."""
    folder = f"fsspec-tests-{uuid.uuid4().hex[:8]}"
    onedrive_fs.makedirs(folder)
    yield folder
    if onedrive_fs.exists(folder):
        onedrive_fs.rm(folder, recursive=True)
