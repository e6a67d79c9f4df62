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
    from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException
    from airflow.sdk.log import mask_secret
    from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent
    from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

__all__ = [
    "AdvanceItem",
    "AirflowException",
    "AirflowNotFoundException",
    "BaseEventTrigger",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseTrigger",
    "Connection",
    "ObjectStoragePath",
    "PokeReturnValue",
    "SharedStreamProducer",
    "TriggerEvent",
    "Variable",
    "conf",
    "delete_variable",
    "get_variable",
    "mask_secret",
    "set_variable",
    "variable_keys",
]

_SOURCES: dict[str, str] = {
    "BaseHook": "airflow.sdk",
    "BaseOperator": "airflow.sdk",
    "BaseSensorOperator": "airflow.sdk",
    "Connection": "airflow.sdk",
    "ObjectStoragePath": "airflow.sdk",
    "PokeReturnValue": "airflow.sdk",
    "AirflowException": "airflow.sdk.exceptions",
    "AirflowNotFoundException": "airflow.sdk.exceptions",
    "Variable": "airflow.sdk",
    "conf": "airflow.sdk",
    "mask_secret": "airflow.sdk.log",
    "BaseEventTrigger": "airflow.triggers.base",
    "BaseTrigger": "airflow.triggers.base",
    "TriggerEvent": "airflow.triggers.base",
    "AdvanceItem": "airflow.triggers.shared_stream",  # Airflow 3.3+: shared streams in ack mode
    "SharedStreamProducer": "airflow.triggers.shared_stream",
}


def __getattr__(name: str) -> Any:
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def _in_task() -> bool:
    """True inside a running task (the Task SDK talks to its supervisor); False in servers, CLIs, scripts."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:
        return False
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def get_variable(key: str) -> str | None:
    """An Airflow Variable's value or None: through the Task SDK in a task, else the metadata DB."""
    if _in_task():
        from airflow.sdk import Variable as SdkVariable

        return SdkVariable.get(key, default=None)
    from airflow.models.variable import Variable as DbVariable

    return DbVariable.get(key, default_var=None)


def set_variable(key: str, value: str, description: str | None = None) -> None:
    """Create or update an Airflow Variable: through the Task SDK in a task, else the metadata DB."""
    if _in_task():
        from airflow.sdk import Variable as SdkVariable

        SdkVariable.set(key, value, description=description)
        return
    from airflow.models.variable import Variable as DbVariable

    DbVariable.set(key, value, description=description)


def variable_keys(prefix: str) -> list[str]:
    """Keys of the Variables whose names start with ``prefix``, from the metadata DB (servers and CLIs only:
    a task cannot list Variables)."""
    from airflow.models.variable import Variable as DbVariable
    from airflow.utils.session import create_session

    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with create_session() as session:
        rows = session.query(DbVariable.key).filter(DbVariable.key.like(pattern, escape="\\")).all()
    return sorted(row[0] for row in rows)


def delete_variable(key: str) -> None:
    """Delete an Airflow Variable (a missing one is fine): through the Task SDK in a task, else the metadata DB."""
    if _in_task():
        from airflow.sdk import Variable as SdkVariable

        SdkVariable.delete(key)
        return
    from airflow.models.variable import Variable as DbVariable

    DbVariable.delete(key)


def __dir__() -> list[str]:
    return sorted(__all__)
