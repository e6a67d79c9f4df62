"""Helpers for the connection tests (settings from the emulator's connections, request-log filters)."""

from __future__ import annotations

from airflow_provider_onedrive.config import ConnectionSettings
from airflow_provider_onedrive.testing import GraphEmulator


def settings_for(emu: GraphEmulator, kind: str = "app", **extra: object) -> ConnectionSettings:
    conn = emu.connection(kind)
    return ConnectionSettings.from_connection_fields(
        f"od_{kind}", conn.get("login"), conn.get("password"), {**conn["extra"], **extra}
    )


def token_requests(emu: GraphEmulator) -> list:
    return [r for r in emu.requests if r.method == "POST" and r.path.endswith("/oauth2/v2.0/token")]
