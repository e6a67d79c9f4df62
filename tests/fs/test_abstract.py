"""fsspec's shared abstract test suites (copy, get, put, open, pipe) against the onedrive:// filesystem."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

import fsspec.tests.abstract as abstract
import pytest

from airflow_provider_onedrive.fs import OneDriveFileSystem


class OneDriveFixtures(abstract.AbstractFixtures):
    @pytest.fixture
    def fs(self, onedrive_fs: OneDriveFileSystem) -> OneDriveFileSystem:
        return onedrive_fs

    @pytest.fixture
    def fs_join(self) -> Any:
        return posixpath.join

    @pytest.fixture
    def fs_path(self, base: str) -> Iterator[str]:
        yield base


class TestOneDriveCopy(abstract.AbstractCopyTests, OneDriveFixtures):
    pass


class TestOneDriveGet(abstract.AbstractGetTests, OneDriveFixtures):
    pass


class TestOneDrivePut(abstract.AbstractPutTests, OneDriveFixtures):
    pass


class TestOneDriveOpen(abstract.AbstractOpenTests, OneDriveFixtures):
    pass


class TestOneDrivePipe(abstract.AbstractPipeTests, OneDriveFixtures):
    pass
