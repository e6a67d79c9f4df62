"""Static provider metadata read by Airflow's ProvidersManager (no imports beyond the package version)."""

from __future__ import annotations

from typing import Any

from airflow_provider_onedrive import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-onedrive",
        "name": "Microsoft OneDrive",
        "description": "Microsoft OneDrive and SharePoint through Microsoft Graph.",
        "versions": [__version__],
    }
