"""Helpers for the foundation tests (settings from the emulator's connections, request-log filters)."""

from __future__ import annotations

import time

from airflow_provider_onedrive.config import ConnectionSettings
from airflow_provider_onedrive.testing import GraphEmulator


def settings_for(emu: GraphEmulator, kind: str = "app", **extra: object) -> ConnectionSettings:
    conn = emu.connection(kind)
    return ConnectionSettings.from_connection_fields(
        f"od_{kind}", conn.get("login"), conn.get("password"), {**conn["extra"], **extra}
    )


def settled_requests(emu: GraphEmulator, quiet: float = 0.05) -> list:
    """The request log once it stops growing: the emulator records a request after sending its response."""
    seen = -1
    while len(records := emu.requests) != seen:
        seen = len(records)
        time.sleep(quiet)
    return records


def token_requests(emu: GraphEmulator) -> list:
    return [r for r in settled_requests(emu) if r.method == "POST" and r.path.endswith("/oauth2/v2.0/token")]
