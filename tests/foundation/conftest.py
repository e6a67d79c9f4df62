"""Foundation tests run against one GraphEmulator per session (reset before each test) through real MSAL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_onedrive.auth import clear_credential_cache
from airflow_provider_onedrive.testing import GraphEmulator
from tests.foundation.foundation_helpers import settled_requests


@pytest.fixture(scope="session")
def _running_emulator() -> Iterator[GraphEmulator]:
    with GraphEmulator() as emulator:
        yield emulator


@pytest.fixture
def emu(_running_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    """The emulator in its seeded state, its connections exported as ``AIRFLOW_CONN_OD_<KIND>``."""
    settled_requests(_running_emulator)  # let the previous test's last requests reach the log before clearing it
    _running_emulator.reset()
    clear_credential_cache()
    for kind in ("app", "app_cert", "delegated", "site", "drive", "group"):
        monkeypatch.setenv(f"AIRFLOW_CONN_OD_{kind.upper()}", json.dumps(_running_emulator.connection(kind)))
    yield _running_emulator
    clear_credential_cache()
