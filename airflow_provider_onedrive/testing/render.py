"""JSON shapes Graph returns: driveItem, drive, site, user, and the signed URLs embedded in them."""

from __future__ import annotations

import hashlib
import hmac
import json
import mimetypes
import secrets
from typing import Any
from urllib.parse import quote

from airflow_provider_onedrive.testing.identity import DirectoryUser, b64url, b64url_decode
from airflow_provider_onedrive.testing.store import Drive, Item, Store, Tombstone
from airflow_provider_onedrive.testing.wire import iso_time

__all__ = ["Renderer", "UrlSigner", "alias_origin"]


def alias_origin(origin: str) -> str:
    """The other loopback host name for ``origin`` (``127.0.0.1`` <-> ``localhost``), as download URLs use."""
    scheme, _, hostport = origin.partition("://")
    host, _, port = hostport.rpartition(":")
    other = "127.0.0.1" if host == "localhost" else "localhost"
    return f"{scheme}://{other}:{port}"


class UrlSigner:
    """Makes and checks the credentials pre-authenticated URLs carry (``tempauth``)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def sign(self, claims: dict[str, Any]) -> str:
        body = b64url(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:18]
        return f"v1.{body}.{b64url(mac)}"

    def verify(self, token: str | None) -> dict[str, Any] | None:
        """The claims of a valid token, or None."""
        try:
            _, body, mac = (token or "").split(".")
            expected = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:18]
            if not hmac.compare_digest(expected, b64url_decode(mac)):
                return None
            return json.loads(b64url_decode(body))
        except ValueError:
            return None


def actor_json(actor: dict[str, str]) -> dict[str, Any]:
    kind = actor.get("kind", "user")
    return {kind: {k: v for k, v in actor.items() if k != "kind"}}


def user_json(user: DirectoryUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "displayName": user.display_name,
        "userPrincipalName": user.upn,
        "mail": user.upn,
        "givenName": user.display_name.split()[0],
    }


class Renderer:
    """Turns store objects into Graph JSON for one request (its origin decides URLs)."""

    def __init__(self, store: Store, signer: UrlSigner, download_origin: str, url_lifetime: float) -> None:
        self.store = store
        self.signer = signer
        self.download_origin = download_origin
        self.url_lifetime = url_lifetime

    def download_url(self, drive: Drive, item: Item) -> str:
        token = self.signer.sign(
            {"k": "dl", "d": drive.id, "i": item.id, "e": self.store.clock.now() + self.url_lifetime}
        )
        return (
            f"{self.download_origin}/_layouts/15/download.aspx?UniqueId={quote(item.id, safe='')}"
            f"&Translate=false&tempauth={token}&ApiVersion=2.0"
        )

    def parent_path(self, drive: Drive, prefix: str, item: Item) -> str:
        names = self.store.names(drive, item)
        return f"{prefix}/root:" + "".join(f"/{n}" for n in names)

    def web_url(self, drive: Drive, names: list[str]) -> str:
        return drive.web_url + "".join("/" + quote(n) for n in names)

    def item(
        self, drive: Drive, prefix: str, item: Item, select: set[str] | None = None, download: bool = True
    ) -> dict[str, Any]:
        """The driveItem JSON; ``prefix`` is ``/drive`` or ``/drives/{id}`` as in ``parentReference.path``."""
        business = self.store.settings.business
        data: dict[str, Any] = {}
        if download and not item.is_folder:
            data["@microsoft.graph.downloadUrl"] = self.download_url(drive, item)
        data.update(
            {
                "createdDateTime": iso_time(item.created),
                "eTag": f'"{{{item.uid}}},{item.version}"',
                "id": item.id,
                "lastModifiedDateTime": iso_time(item.modified),
                "name": item.name,
                "webUrl": self.web_url(drive, self.store.names(drive, item)),
            }
        )
        if business and not item.is_folder:
            data["cTag"] = f'"c:{{{item.uid}}},{item.content_version}"'
        data["size"] = sum(i.size for i in self.store.walk(drive, item)) if item.is_folder else item.size
        data["createdBy"] = actor_json(item.created_by) if item.created_by else {}
        data["lastModifiedBy"] = data["createdBy"]
        reference: dict[str, Any] = {"driveType": drive.drive_type, "driveId": drive.id}
        if item.parent_id is not None:
            parent = drive.items[item.parent_id]
            reference.update(id=parent.id, path=self.parent_path(drive, prefix, parent))
            if parent.parent_id is not None:
                reference["name"] = parent.name
        if drive.site_id:
            reference["siteId"] = drive.site_id
        data["parentReference"] = reference
        if item.is_folder:
            data["fileSystemInfo"] = self._fs(item)
            data["folder"] = {"childCount": len(item.children)}
            if item.parent_id is None:
                data["root"] = {}
        else:
            mime = mimetypes.guess_type(item.name)[0] or "application/octet-stream"
            assert item.blob is not None
            data["file"] = {"mimeType": mime, "hashes": dict(item.blob.hashes)}
            data["fileSystemInfo"] = self._fs(item)
        if select:
            data = {k: v for k, v in data.items() if k in select}
        return data

    def _fs(self, item: Item) -> dict[str, str]:
        return {"createdDateTime": iso_time(item.fs_created), "lastModifiedDateTime": iso_time(item.fs_modified)}

    def tombstone(self, drive: Drive, stone: Tombstone) -> dict[str, Any]:
        reference = {"driveType": drive.drive_type, "driveId": drive.id}
        if stone.parent_id:
            reference["id"] = stone.parent_id
        data: dict[str, Any] = {"id": stone.id, "parentReference": reference, "deleted": {"state": "deleted"}}
        if not self.store.settings.business:
            data["name"] = stone.name  # Business omits the name of deleted items (driveitem-delta, Remarks)
        data["folder" if stone.is_folder else "file"] = {}
        return data

    def drive(self, drive: Drive) -> dict[str, Any]:
        used, total = drive.used, drive.quota_total
        ratio = used / total if total else 1.0
        state = "exceeded" if ratio >= 1 else "critical" if ratio >= 0.98 else "nearing" if ratio >= 0.9 else "normal"
        root = drive.root
        return {
            "id": drive.id,
            "name": drive.name,
            "description": drive.description,
            "driveType": drive.drive_type,
            "createdDateTime": iso_time(root.created),
            "lastModifiedDateTime": iso_time(root.modified),
            "webUrl": drive.web_url,
            "createdBy": {"user": {"displayName": "System Account"}},
            "owner": drive.owner,
            "quota": {
                "deleted": drive.deleted_bytes,
                "remaining": drive.remaining,
                "state": state,
                "total": total,
                "used": used,
            },
        }
