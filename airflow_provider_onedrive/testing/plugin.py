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
    "onedrive_managed_identity",
    "onedrive_workload_identity",
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


@pytest.fixture
def onedrive_workload_identity(
    onedrive_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> GraphEmulator:
    """The emulator as an AKS pod with workload identity sees it: a projected service-account token (signed by the
    emulator's trusted issuer) in ``tmp_path``, ``AZURE_CLIENT_ID`` / ``AZURE_TENANT_ID`` /
    ``AZURE_FEDERATED_TOKEN_FILE`` / ``AZURE_AUTHORITY_HOST`` set, and ``AIRFLOW_CONN_ONEDRIVE_DEFAULT`` an
    ``auth_type`` workload_identity connection that leaves those fields to the variables. Rotate the token with
    ``emu.write_federated_token(os.environ["AZURE_FEDERATED_TOKEN_FILE"])``."""
    token_file = onedrive_emulator.write_federated_token(tmp_path / "azure-identity-token")
    for name, value in onedrive_emulator.workload_identity_env(token_file).items():
        monkeypatch.setenv(name, value)
    conn = onedrive_emulator.connection("app")
    extra = {k: v for k, v in conn["extra"].items() if k not in ("tenant_id", "authority_host")}
    extra["auth_type"] = "workload_identity"
    monkeypatch.setenv("AIRFLOW_CONN_ONEDRIVE_DEFAULT", json.dumps({"conn_type": "onedrive", "extra": extra}))
    return onedrive_emulator


@pytest.fixture(params=["vm"])
def onedrive_managed_identity(
    request: pytest.FixtureRequest, onedrive_emulator: GraphEmulator, monkeypatch: pytest.MonkeyPatch
) -> GraphEmulator:
    """The emulator as the managed identity endpoint of an Azure VM (``vm``, the default) or App Service
    (parametrize indirectly with ``app_service``), and ``AIRFLOW_CONN_ONEDRIVE_DEFAULT`` an ``auth_type``
    managed_identity connection (system-assigned; ``emu.managed_identities`` lists the user-assigned ones)."""
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_POD_IDENTITY_AUTHORITY_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in onedrive_emulator.managed_identity_env(request.param).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_CONN_ONEDRIVE_DEFAULT", json.dumps(onedrive_emulator.connection("managed_identity")))
    return onedrive_emulator
