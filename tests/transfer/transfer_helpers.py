"""Helpers for the transfer tests: an OneDriveClient against the emulator with small thresholds.

Tokens come from plain MSAL (client credentials) so these tests depend only on the Graph client and the
transfer engine. Small thresholds and 320 KiB fragments keep multi-fragment uploads to a few MB.
"""

from __future__ import annotations

import itertools
import os

import msal

from airflow_provider_onedrive.drive import OneDriveClient
from airflow_provider_onedrive.graph import GraphClient, make_session
from airflow_provider_onedrive.retry import RetryPolicy
from airflow_provider_onedrive.testing import GraphEmulator

KIB = 1024
FRAGMENT = 320 * KIB
THRESHOLD = 64 * KIB
_pacers = itertools.count()


class MsalTokens:
    """App-only tokens from MSAL; ``force_refresh`` drops the cache first."""

    def __init__(self, emu: GraphEmulator, session) -> None:
        self.app = msal.ConfidentialClientApplication(
            emu.client_id,
            client_credential=emu.client_secret,
            authority=emu.authority,
            http_client=session,
            instance_discovery=False,
        )
        self.scopes = ["https://graph.microsoft.com/.default"]
        self.refreshes = 0

    def get_token(self, *, force_refresh: bool = False) -> str:
        if force_refresh:
            self.refreshes += 1
            self.app.remove_tokens_for_client()
        result = self.app.acquire_token_for_client(scopes=self.scopes)
        return result["access_token"]


def make_graph(emu: GraphEmulator, **retry) -> GraphClient:
    session = make_session(verify=emu.ca_bundle)
    session.trust_env = False
    policy = RetryPolicy(**{"backoff_base": 0.01, "backoff_max": 0.2, "locked_backoff": 0.01, **retry})
    return GraphClient(
        MsalTokens(emu, session),
        graph_url=emu.graph_url,
        verify=emu.ca_bundle,
        session=session,
        retry=policy,
        pacer_key=f"test-{next(_pacers)}",
        timeout=(5.0, 30.0),
    )


def make_client(emu: GraphEmulator, state_dir, **options) -> OneDriveClient:
    settings = {
        "simple_upload_threshold": THRESHOLD,
        "fragment_size": FRAGMENT,
        "state_dir": state_dir,
        "progress_log_min_bytes": 256 * KIB,
        **options,
    }
    return OneDriveClient(make_graph(emu), f"drives/{emu.drive_id}", **settings)


def write(path, data: bytes, mtime: float | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def uploads(emu: GraphEmulator):
    """Fragment PUTs in the emulator's request log."""
    return [r for r in emu.requests if r.kind == "upload" and r.method == "PUT"]
