"""A local Microsoft Graph (OneDrive / SharePoint drive API) and identity-platform emulator for offline tests.

``with GraphEmulator() as emu:`` serves Graph and the token endpoints on loopback; ``emu.connection("app")`` is
an Airflow connection pointing at it. The pytest plugin (``onedrive_emulator`` fixtures) and the
``airflow-onedrive emulator`` command wrap the same class. See docs/emulator.md.
"""

from __future__ import annotations

from airflow_provider_onedrive.testing.emulator import CONNECTION_KINDS, GraphEmulator
from airflow_provider_onedrive.testing.faults import FaultRule, Faults
from airflow_provider_onedrive.testing.server import RequestRecord
from airflow_provider_onedrive.testing.settings import EmulatorSettings

__all__ = ["CONNECTION_KINDS", "EmulatorSettings", "FaultRule", "Faults", "GraphEmulator", "RequestRecord"]
