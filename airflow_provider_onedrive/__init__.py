"""Apache Airflow provider for Microsoft OneDrive and SharePoint (Microsoft Graph v1.0)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict:
    """Airflow provider metadata (imported lazily so importing the package stays cheap)."""
    from airflow_provider_onedrive.get_provider_info import get_provider_info as _info

    return _info()
