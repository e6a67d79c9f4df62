"""Fixtures: one Graph emulator per session (reset before each test) and an OneDriveClient against it."""

from __future__ import annotations

import random

import pytest

from airflow_provider_onedrive.drive import OneDriveClient
from airflow_provider_onedrive.testing import GraphEmulator
from tests.transfer.transfer_helpers import make_client


@pytest.fixture(scope="session")
def emulator_server():
    with GraphEmulator() as emu:
        yield emu


@pytest.fixture
def emu(emulator_server):
    emulator_server.reset()
    yield emulator_server
    emulator_server.reset()


@pytest.fixture
def client(emu, tmp_path) -> OneDriveClient:
    return make_client(emu, tmp_path / "upload-state")


@pytest.fixture
def payload():
    """Deterministic pseudo-random bytes of a given size."""

    def make(size: int, seed: int = 1) -> bytes:
        return random.Random(seed).randbytes(size)

    return make
