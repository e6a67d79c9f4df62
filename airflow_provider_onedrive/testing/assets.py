"""Stand-ins for what Airflow's triggerer gives an event trigger, for tests and the demo (no triggerer there)."""

from __future__ import annotations

from typing import Any

__all__ = ["MemoryAssetStateStore"]


class MemoryAssetStateStore:
    """The asset state store the triggerer injects into event triggers (its ``aget`` / ``aset``), in memory.

    ``trigger.asset_state_store = MemoryAssetStateStore()`` lets a test run an ``OneDriveChangeTrigger`` outside
    a triggerer and read the feed position it keeps; ``writes`` counts the saves.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.writes += 1
