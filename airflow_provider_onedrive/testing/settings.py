"""Everything about the emulator that a test may want to change, with Microsoft's documented defaults."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Clock", "EmulatorSettings"]

KIB = 1024
MIB = 1024 * KIB


@dataclass
class EmulatorSettings:
    """Behaviour knobs. Items marked *unverified* in GRAPH.md are settings so tests can try both ways.

    :param mode: ``business`` (OneDrive for Business / SharePoint: quickXorHash only, cTag, sites and groups) or
        ``personal`` (consumer OneDrive: sha1Hash/sha256Hash too, no cTag, no permanentDelete).
    :param graph_tls: serve Graph (and download / upload URLs) over https; False puts them on a second
        plain-HTTP listener while the identity endpoints stay https (MSAL insists).
    :param app_allowed_drives: None grants app-only tokens every drive (``Files.ReadWrite.All``); a tuple of drive
        or site ids grants only those (``Sites.Selected``), other drives answer 403 ``accessDenied``.
    :param refresh_token_lifetime: seconds a refresh token stays valid after it was issued (90 days of inactivity,
        learn.microsoft.com "Refresh tokens in the Microsoft identity platform"); then ``invalid_grant``
        AADSTS700082. Redeeming one issues a fresh token with a fresh lifetime.
    :param federated_issuer: the external OIDC issuer the app registration's federated identity credential trusts
        (default: a generated ``https://oidc.airflow-onedrive.invalid/<guid>/``); ``federated_subject`` is the
        credential's subject (a Kubernetes service account: ``system:serviceaccount:<namespace>:<name>``).
    :param refresh_token_reuse: ``allowed`` (Microsoft's documented behaviour: the identity platform "doesn't
        revoke old refresh tokens when used to fetch new access tokens") or ``single_use``, an opt-in strict
        rotation where a redeemed token dies after ``refresh_token_reuse_grace`` seconds (``invalid_grant`` 70000).
    """

    host: str = "127.0.0.1"
    port: int = 0
    graph_tls: bool = True
    graph_port: int = 0
    mode: Literal["business", "personal"] = "business"
    tenant: str = "contoso"
    users: tuple[str, ...] = ()
    sites: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"Finance": ("Documents", "Reports")})
    groups: tuple[str, ...] = ("Marketing",)
    seed: int = 0
    # identity platform
    token_lifetime: float = 3600
    refresh_token_lifetime: float = 90 * 24 * 3600
    refresh_token_reuse: Literal["allowed", "single_use"] = "allowed"
    refresh_token_reuse_grace: float = 0.0  # single_use only
    device_code_lifetime: float = 900
    device_code_interval: int = 5
    device_code_enforce_interval: bool = False
    # workload identity federation: the trusted issuer ("" = a generated https URL) and the registered subject
    federated_issuer: str = ""
    federated_subject: str = "system:serviceaccount:airflow:airflow-worker"
    # Graph drive API
    page_size: int = 200
    max_page_size: int = 1000
    max_simple_upload_size: int = 250 * MIB
    simple_upload_creates_parents: bool = True  # unverified
    upload_session_default_conflict: Literal["fail", "replace", "rename"] = "fail"  # docs; users report replace
    upload_session_lifetime: float = 24 * 3600
    fragment_multiple: int = 320 * KIB
    enforce_fragment_alignment: bool = True
    max_fragment_size: int = 60 * MIB
    reject_authorization_on_upload: bool = True  # "may give 401"
    concurrent_upload_sessions: Literal["reject", "allow"] | None = None  # None: reject on business only
    folder_delta: Literal["reject", "allow"] | None = None  # None: reject on business only (release notes)
    download_url_lifetime: float = 3600
    honor_range: bool = True
    copy_delay: float = 0.2
    drive_quota: int = 1024**4
    app_allowed_drives: tuple[str, ...] | None = None
    folder_conflict_default: Literal["fail", "replace", "rename"] = "fail"
    # server
    latency: float = 0.0
    memory_threshold: int = 1 * MIB
    max_drain: int = 64 * MIB
    temp_dir: str | None = None  # parent of the emulator's temp dir (certificates, spilled content)

    @property
    def business(self) -> bool:
        return self.mode == "business"

    @property
    def rejects_concurrent_sessions(self) -> bool:
        if self.concurrent_upload_sessions is None:
            return self.business
        return self.concurrent_upload_sessions == "reject"

    @property
    def rejects_folder_delta(self) -> bool:
        """OneDrive for Business and SharePoint offer delta on the root only; a benchmark may allow folders."""
        if self.folder_delta is None:
            return self.business
        return self.folder_delta == "reject"

    def replace(self, **changes: Any) -> EmulatorSettings:
        """A copy with ``changes`` applied; unknown names raise ``TypeError`` naming the setting."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"unknown emulator setting(s): {', '.join(unknown)}")
        if "sites" in changes:
            changes["sites"] = {k: tuple(v) for k, v in dict(changes["sites"]).items()}
        for name in ("users", "groups", "app_allowed_drives"):
            if changes.get(name) is not None:
                changes[name] = tuple(changes[name])
        if changes.get("mode", self.mode) not in ("business", "personal"):
            raise ValueError("emulator setting 'mode' must be 'business' or 'personal'")
        if changes.get("refresh_token_reuse", self.refresh_token_reuse) not in ("allowed", "single_use"):
            raise ValueError("emulator setting 'refresh_token_reuse' must be 'allowed' or 'single_use'")
        return dataclasses.replace(self, **changes)


class Clock:
    """Wall-clock time that tests can move forward (token, session and URL lifetimes all read it)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
