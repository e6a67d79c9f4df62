"""Connection tests (hook, credentials, provider registration) against the plugin's emulator through real MSAL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_onedrive.auth import clear_credential_cache
from airflow_provider_onedrive.testing import GraphEmulator


@pytest.fixture
def emu(onedrive_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    """The emulator in its seeded state, its connections exported as ``AIRFLOW_CONN_OD_<KIND>``."""
    clear_credential_cache()
    for kind in ("app", "app_cert", "delegated", "site", "drive", "group"):
        monkeypatch.setenv(f"AIRFLOW_CONN_OD_{kind.upper()}", json.dumps(onedrive_emulator.connection(kind)))
    yield onedrive_emulator
    clear_credential_cache()
