"""What the emulator's Graph handlers use of the emulator, as a protocol: they depend on this, not on
:class:`~airflow_provider_onedrive.testing.emulator.GraphEmulator`, so no module imports the emulator back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airflow_provider_onedrive.testing.addressing import Directory
    from airflow_provider_onedrive.testing.identity import Identity
    from airflow_provider_onedrive.testing.render import UrlSigner
    from airflow_provider_onedrive.testing.settings import Clock, EmulatorSettings
    from airflow_provider_onedrive.testing.store import Store

__all__ = ["EmulatorParts"]


class EmulatorParts(Protocol):
    """The emulator's shared state and its sibling handlers (typed loosely where a handler is a sibling)."""

    settings: EmulatorSettings
    clock: Clock
    store: Store
    signer: UrlSigner
    identity: Identity
    directory: Directory
    spill_dir: Path
    graph: Any  # testing.graph_api.GraphApi
    transfers: Any  # testing.transfers.Transfers
    uploads: Any  # testing.uploads.Uploads
    sharing: Any  # testing.sharing.Sharing
    batches: Any  # testing.batch.Batches
    faults: Any  # testing.faults.Faults

    def fault_response(self, request: Any, rule: Any) -> Any: ...
