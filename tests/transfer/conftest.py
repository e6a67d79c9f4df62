"""Fixtures: the plugin's Graph emulator (reset before each test) and an OneDriveClient against it."""

from __future__ import annotations

import random

import pytest

from airflow_provider_onedrive.drive import OneDriveClient
from airflow_provider_onedrive.testing import GraphEmulator
from tests.transfer.transfer_helpers import make_client


@pytest.fixture
def emu(onedrive_emulator: GraphEmulator) -> GraphEmulator:
    """The plugin's emulator, reset for this test."""
    return onedrive_emulator


@pytest.fixture
def client(emu, tmp_path) -> OneDriveClient:
    return make_client(emu, tmp_path / "upload-state")


@pytest.fixture
def payload():
    """Deterministic pseudo-random bytes of a given size."""

    def make(size: int, seed: int = 1) -> bytes:
        return random.Random(seed).randbytes(size)

    return make
