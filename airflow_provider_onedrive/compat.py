"""The one module that imports Airflow. Everything else Airflow-facing imports Airflow names from here.

Names resolve lazily on first access (``from airflow_provider_onedrive.compat import BaseHook`` imports
``airflow.sdk`` then, not when this module loads), so supporting another Airflow major is a change to this
file alone. Targets Airflow 3.x (``airflow.sdk``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import (
        BaseHook,
        BaseOperator,
        BaseSensorOperator,
        Connection,
        ObjectStoragePath,
        PokeReturnValue,
        Variable,
        conf,
    )
    from airflow.sdk.exceptions import AirflowException
    from airflow.sdk.log import mask_secret
    from airflow.triggers.base import BaseTrigger, TriggerEvent

__all__ = [
    "AirflowException",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "Connection",
    "ObjectStoragePath",
    "PokeReturnValue",
    "TriggerEvent",
    "Variable",
    "conf",
    "mask_secret",
]

_SOURCES: dict[str, str] = {
    "BaseHook": "airflow.sdk",
    "BaseOperator": "airflow.sdk",
    "BaseSensorOperator": "airflow.sdk",
    "Connection": "airflow.sdk",
    "ObjectStoragePath": "airflow.sdk",
    "PokeReturnValue": "airflow.sdk",
    "AirflowException": "airflow.sdk.exceptions",
    "Variable": "airflow.sdk",
    "conf": "airflow.sdk",
    "mask_secret": "airflow.sdk.log",
    "BaseTrigger": "airflow.triggers.base",
    "TriggerEvent": "airflow.triggers.base",
}


def __getattr__(name: str) -> Any:
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
