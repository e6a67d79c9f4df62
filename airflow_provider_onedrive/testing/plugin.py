"""pytest plugin (registered through the ``pytest11`` entry point): fixtures that run the Graph emulator.

One emulator serves the whole session; every test gets it freshly :meth:`~GraphEmulator.reset` (seeded drives,
default settings, no faults, empty request log), which takes milliseconds. Override the session-scoped
``onedrive_emulator_settings`` fixture (a dict of :class:`EmulatorSettings` fields) to change the defaults.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_onedrive.testing import GraphEmulator

__all__ = [
    "onedrive_emulator",
    "onedrive_emulator_connection",
    "onedrive_emulator_server",
    "onedrive_emulator_settings",
]


@pytest.fixture(scope="session")
def onedrive_emulator_settings() -> dict[str, Any]:
    """Emulator settings for the session (override in a conftest.py to change them)."""
    return {}


@pytest.fixture(scope="session")
def onedrive_emulator_server(onedrive_emulator_settings: dict[str, Any]) -> Iterator[GraphEmulator]:
    """The session's running emulator, NOT reset between tests (use ``onedrive_emulator`` in tests)."""
    from airflow_provider_onedrive.testing import GraphEmulator

    with GraphEmulator(**onedrive_emulator_settings) as emulator:
        yield emulator


@pytest.fixture
def onedrive_emulator(onedrive_emulator_server: GraphEmulator) -> GraphEmulator:
    """A running Graph emulator in its seeded state, with no faults and an empty request log."""
    onedrive_emulator_server.reset()
    return onedrive_emulator_server


@pytest.fixture
def onedrive_emulator_connection(onedrive_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> GraphEmulator:
    """The emulator, with ``AIRFLOW_CONN_ONEDRIVE_DEFAULT`` set to its app-only (client secret) connection."""
    monkeypatch.setenv("AIRFLOW_CONN_ONEDRIVE_DEFAULT", json.dumps(onedrive_emulator.connection("app")))
    return onedrive_emulator
