"""The emulator's directory at start: tenant, app registration, users with drives, sites with libraries, groups.

Ids are derived from names (and the seed), so they are stable across runs; credentials are random per emulator.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass, field

from airflow_provider_onedrive.testing.identity import DirectoryUser
from airflow_provider_onedrive.testing.settings import EmulatorSettings

__all__ = ["SeedData", "SiteSpec", "build_seed"]


@dataclass(frozen=True)
class SiteSpec:
    """A SharePoint site to create, with (library name, drive id) pairs; the first library is the default."""

    id: str
    name: str
    hostname: str
    path: str
    web_url: str
    libraries: tuple[tuple[str, str], ...]


@dataclass
class SeedData:
    """Names, ids and credentials of everything the emulator starts with."""

    tenant_id: str
    tenant_domain: str
    sharepoint_host: str
    client_id: str
    client_secret: str
    refresh_token: str
    personal: bool
    users: list[tuple[DirectoryUser, str]] = field(default_factory=list)
    sites: list[SiteSpec] = field(default_factory=list)
    groups: list[tuple[str, str, str]] = field(default_factory=list)  # (name, group id, drive id)

    def user_web_url(self, user: DirectoryUser) -> str:
        if self.personal:
            return f"https://onedrive.live.com/?cid={user.id.replace('-', '')[:16]}"
        mysite = self.sharepoint_host.replace(".sharepoint.com", "-my.sharepoint.com")
        slug = user.upn.replace("@", "_").replace(".", "_")
        return f"https://{mysite}/personal/{slug}/Documents"


def _guid(seed: int, *parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"graph-emulator/{seed}/" + "/".join(parts)))


def _drive_id(seed: int, personal: bool, *parts: str) -> str:
    digest = hashlib.sha256(f"{seed}/{'/'.join(parts)}".encode()).digest()
    if personal:
        return digest[:8].hex()
    return "b!" + base64.urlsafe_b64encode(digest + digest[:16]).rstrip(b"=").decode()[:64]


def build_seed(settings: EmulatorSettings) -> SeedData:
    """Derive the directory from ``settings`` (tenant name, users, sites, groups, mode)."""
    seed, personal = settings.seed, not settings.business
    domain = f"{settings.tenant}.onmicrosoft.com"
    host = f"{settings.tenant}.sharepoint.com"
    data = SeedData(
        tenant_id=_guid(seed, "tenant", domain),
        tenant_domain=domain,
        sharepoint_host=host,
        client_id=_guid(seed, "app"),
        client_secret="emu~" + secrets.token_urlsafe(30),
        refresh_token="0.A" + secrets.token_urlsafe(48),
        personal=personal,
    )
    upns = settings.users or (f"adele@{domain}", f"alex@{domain}")
    for upn in upns:
        local = upn.split("@")[0]
        user = DirectoryUser(upn, _guid(seed, "user", upn.lower()), local.replace(".", " ").title())
        data.users.append((user, _drive_id(seed, personal, "user", upn.lower())))
    if personal:
        return data
    root_guids = (_guid(seed, "site", "/"), _guid(seed, "web", "/"))
    data.sites.append(
        SiteSpec(
            f"{host},{root_guids[0]},{root_guids[1]}",
            "Communication site",
            host,
            "/",
            f"https://{host}",
            (("Documents", _drive_id(seed, False, "site", "/", "Documents")),),
        )
    )
    for name, libraries in settings.sites.items():
        path = f"/sites/{name}"
        libs = tuple((lib, _drive_id(seed, False, "site", path, lib)) for lib in (libraries or ("Documents",)))
        site_id = f"{host},{_guid(seed, 'site', path)},{_guid(seed, 'web', path)}"
        data.sites.append(SiteSpec(site_id, name, host, path, f"https://{host}{path}", libs))
    for name in settings.groups:
        data.groups.append((name, _guid(seed, "group", name), _drive_id(seed, False, "group", name)))
    return data
