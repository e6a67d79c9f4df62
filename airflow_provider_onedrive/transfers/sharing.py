"""Sharing links (``createLink``), item permissions, and items addressed by a sharing URL (``/shares``).

Graph's documentation, which this module follows:

- ``driveItem: createLink``: https://learn.microsoft.com/graph/api/driveitem-createlink
  (201 for a new link, 200 when a link of the same type and scope already exists for the application)
- ``shares``: https://learn.microsoft.com/graph/api/shares-get (a sharing URL becomes ``u!`` + unpadded
  base64url of the URL; a share id such as ``s!...`` is used as it is; ``Prefer: redeemSharingLink``)
- ``permission``: https://learn.microsoft.com/graph/api/resources/permission
- ``drive: sharedWithMe`` (deprecated): https://learn.microsoft.com/graph/api/drive-sharedwithme

A sharing link of scope ``anonymous`` is a bearer credential: anyone holding the URL gets the item. Link URLs
and share tokens (an encoded URL can be decoded back) never appear in log lines or error messages here.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from airflow_provider_onedrive import paths
from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.transfers.context import DriveContext
from airflow_provider_onedrive.transfers.models import RemoteItem, parse_datetime

__all__ = [
    "LINK_SCOPES",
    "LINK_TYPES",
    "LinkOptions",
    "SharedItem",
    "Sharing",
    "SharingLink",
    "check_link_options",
    "encode_sharing_url",
    "share_token",
]

log = logging.getLogger("airflow_provider_onedrive.transfers.sharing")

#: Link types Graph v1.0 documents for createLink (``embed`` only for files in OneDrive Personal).
LINK_TYPES = ("view", "edit", "embed")
#: Link scopes (``organization`` and ``users`` only on OneDrive for Business and SharePoint).
LINK_SCOPES = ("anonymous", "organization", "users")
_BUSINESS_ONLY_SCOPES = ("organization", "users")


def encode_sharing_url(url: str) -> str:
    """Graph's share token of a sharing URL: ``u!`` + the URL's UTF-8 bytes in base64url without padding."""
    if not isinstance(url, str) or not url.strip():
        raise OneDriveValidationError("a sharing URL must be a non-empty string such as https://1drv.ms/...")
    url = url.strip()
    if not url.lower().startswith("https://"):
        raise OneDriveValidationError(
            "a sharing URL must start with https:// (copy the link from OneDrive's Share or Copy link dialog); "
            "a share id starts with s! or u!"
        )
    encoded = base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")
    return f"u!{encoded}"


def share_token(share: str) -> str:
    """The ``{shareIdOrEncodedSharingUrl}`` for ``share``: a sharing URL (encoded), or a share id (``s!...``,
    ``u!...``) used as it is. Refuses anything else before a request is sent."""
    if not isinstance(share, str) or not share.strip():
        raise OneDriveValidationError("share must be a sharing URL (https://...) or a share id (s!... or u!...)")
    share = share.strip()
    if share[:2].lower() in ("s!", "u!"):
        token = share[:2].lower() + share[2:]
        if len(token) < 3 or any(c in token for c in "/?#%\\ ") or any(ord(c) < 33 for c in token):
            raise OneDriveValidationError(
                "the share id is malformed: after s! or u! it may only hold the characters of a token "
                "(no '/', '?', '#', '%', spaces)"
            )
        return token
    return encode_sharing_url(share)


def _aware(moment: datetime | str, what: str) -> datetime:
    if isinstance(moment, str):
        parsed = parse_datetime(moment) if moment.strip() else None
        if parsed is None:
            raise OneDriveValidationError(f"{what} {moment!r} is not an ISO 8601 timestamp like 2030-01-31T00:00:00Z")
        return parsed
    if not isinstance(moment, datetime):
        raise OneDriveValidationError(f"{what} must be a datetime or ISO 8601 text, got {type(moment).__name__}")
    if moment.tzinfo is None:
        raise OneDriveValidationError(f"{what} must be timezone-aware (e.g. datetime(2030, 1, 31, tzinfo=UTC))")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class LinkOptions:
    """A validated createLink request (see :func:`check_link_options`)."""

    type: str
    scope: str | None
    expires: datetime | None
    password: str | None = field(default=None, repr=False)
    recipients: tuple[dict[str, str], ...] = ()
    retain_inherited_permissions: bool | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body Graph expects."""
        body: dict[str, Any] = {"type": self.type}
        if self.scope is not None:
            body["scope"] = self.scope
        if self.expires is not None:
            body["expirationDateTime"] = self.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.password is not None:
            body["password"] = self.password
        if self.recipients:
            body["recipients"] = [dict(r) for r in self.recipients]
        if self.retain_inherited_permissions is not None:
            body["retainInheritedPermissions"] = self.retain_inherited_permissions
        return body


def _recipient(value: Any) -> dict[str, str]:
    """A driveRecipient: an email address (text with ``@``), or a mapping with ``email``, ``alias`` or
    ``objectId``."""
    if isinstance(value, str):
        text = value.strip()
        if "@" not in text or text.startswith("@") or text.endswith("@") or " " in text:
            raise OneDriveValidationError(
                f"recipient {value!r} is not an email address; give an address, or "
                '{"objectId": "<user id>"} / {"alias": "..."}'
            )
        return {"email": text}
    if isinstance(value, Mapping):
        known = {k: str(v) for k, v in value.items() if k in ("email", "alias", "objectId") and v}
        unknown = sorted(set(value) - {"email", "alias", "objectId"})
        if unknown or len(known) != 1:
            raise OneDriveValidationError(
                f"recipient {dict(value)!r} must have exactly one of 'email', 'alias' or 'objectId'"
            )
        return known
    raise OneDriveValidationError(f"a recipient must be an email address or a mapping, got {type(value).__name__}")


def check_link_options(
    *,
    type: str = "view",
    scope: str | None = None,
    expires: datetime | str | None = None,
    password: str | None = None,
    recipients: Iterable[Any] | None = None,
    retain_inherited_permissions: bool | None = None,
    now: datetime | None = None,
) -> LinkOptions:
    """Validate a createLink request before anything is sent: values Graph documents, and combinations it
    refuses (an embed link with a Business-only scope, a password with a Business-only scope, recipients
    without scope ``users``, an expiration in the past).

    :param now: the current time (for tests); default ``datetime.now(UTC)``.
    """
    if type not in LINK_TYPES:
        raise OneDriveValidationError(f"link type {type!r} is not one of {', '.join(LINK_TYPES)}")
    if scope is not None and scope not in LINK_SCOPES:
        raise OneDriveValidationError(
            f"link scope {scope!r} is not one of {', '.join(LINK_SCOPES)} (or None: the organization's default)"
        )
    if type == "embed" and scope in _BUSINESS_ONLY_SCOPES:
        raise OneDriveValidationError(
            f"an embed link cannot have scope {scope!r}: embed links exist only in OneDrive Personal, scope "
            f"{scope!r} only in OneDrive for Business and SharePoint; use type 'view' or drop the scope"
        )
    if password is not None:
        if not isinstance(password, str) or not password:
            raise OneDriveValidationError("password must be non-empty text (or None for no password)")
        if scope in _BUSINESS_ONLY_SCOPES:
            raise OneDriveValidationError(
                f"a link password is only supported on OneDrive Personal, and scope {scope!r} only on OneDrive "
                "for Business and SharePoint; drop the password or use scope 'anonymous'"
            )
    if isinstance(recipients, str):
        raise OneDriveValidationError("recipients must be a list of email addresses, not one string")
    people = tuple(_recipient(r) for r in (recipients or ()))
    if people and scope != "users":
        raise OneDriveValidationError(
            f"recipients were given with scope {scope!r}; recipients only apply to scope 'users' (a link for "
            "specific people): set scope='users' or drop the recipients"
        )
    when = None
    if expires is not None:
        when = _aware(expires, "expires")
        if when <= (now or datetime.now(UTC)):
            raise OneDriveValidationError(
                f"expires {when.isoformat()} is in the past; give a future moment (or None for no expiry)"
            )
    if retain_inherited_permissions is not None and not isinstance(retain_inherited_permissions, bool):
        raise OneDriveValidationError("retain_inherited_permissions must be True, False or None")
    return LinkOptions(type, scope, when, password, people, retain_inherited_permissions)


@dataclass(frozen=True)
class SharingLink:
    """A sharing link (a permission with a ``link`` facet) of an item.

    ``url`` is what to hand out; for scope ``anonymous`` it is a bearer credential (anyone with it gets the
    item). ``created`` is False when Graph returned an existing link of the same type and scope (HTTP 200).
    """

    url: str = field(repr=False)
    id: str
    type: str
    scope: str | None
    roles: tuple[str, ...]
    expires: datetime | None
    has_password: bool
    share_id: str | None = field(default=None, repr=False)
    path: str = ""
    item_id: str = ""
    created: bool = True

    @classmethod
    def from_permission(
        cls, raw: Mapping[str, Any], *, path: str = "", item_id: str = "", created: bool = True
    ) -> SharingLink:
        link = raw.get("link") or {}
        expires = parse_datetime(raw.get("expirationDateTime")) if raw.get("expirationDateTime") else None
        if expires is not None and expires.year <= 1:  # DateTime.MinValue: no expiration
            expires = None
        return cls(
            url=str(link.get("webUrl") or ""),
            id=str(raw.get("id") or ""),
            type=str(link.get("type") or ""),
            scope=link.get("scope"),
            roles=tuple(raw.get("roles") or ()),
            expires=expires,
            has_password=bool(raw.get("hasPassword")),
            share_id=raw.get("shareId"),
            path=path,
            item_id=item_id,
            created=created,
        )

    @property
    def is_anonymous(self) -> bool:
        return self.scope == "anonymous"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields, the link URL included (it is what was asked for)."""
        return {
            "url": self.url,
            "id": self.id,
            "type": self.type,
            "scope": self.scope,
            "roles": list(self.roles),
            "expires": self.expires.isoformat() if self.expires else None,
            "has_password": self.has_password,
            "path": self.path,
            "item_id": self.item_id,
            "created": self.created,
        }


@dataclass(frozen=True)
class SharedItem:
    """What a share resolves to: the item, and the drive and item ids that address it (``drives/{drive_id}
    /items/{item_id}``)."""

    drive_id: str
    item_id: str
    item: RemoteItem

    @property
    def is_folder(self) -> bool:
        return self.item.is_folder

    @property
    def base(self) -> str:
        """The Graph-relative base a client rooted at this item uses."""
        return f"drives/{_segment(self.drive_id)}/items/{_segment(self.item_id)}"


def _segment(value: str) -> str:
    return quote(value, safe="-._~!$'()*+,;=@")


class Sharing:
    """createLink, permissions, shares and sharedWithMe for one drive (:class:`~.context.DriveContext`)."""

    def __init__(self, ctx: DriveContext) -> None:
        self.ctx = ctx

    def create_link(self, path: str, options: LinkOptions) -> SharingLink:
        """Create (or get back) a sharing link of ``path``; checks what depends on the drive and the item
        (embed links: files in OneDrive Personal; organization/users scopes: Business; passwords: Personal)."""
        path = paths.normalize(path)
        ctx = self.ctx
        item = ctx.graph.get_json(
            paths.item_path(ctx.drive_base, path), params={"$select": "id,name,file,folder,root,parentReference"}
        )
        drive_type = (item.get("parentReference") or {}).get("driveType")
        where = path or "(drive root)"
        if drive_type == "personal":
            if options.scope in _BUSINESS_ONLY_SCOPES:
                raise OneDriveValidationError(
                    f"{where} is in OneDrive Personal, which has no {options.scope!r} links; use scope 'anonymous'"
                )
        elif drive_type in ("business", "documentLibrary"):
            if options.type == "embed":
                raise OneDriveValidationError(
                    f"{where} is in OneDrive for Business/SharePoint, which has no embed links; use type 'view'"
                )
            if options.password is not None:
                raise OneDriveValidationError(
                    f"{where} is in OneDrive for Business/SharePoint, where Graph sets no link passwords; "
                    "drop the password"
                )
        if options.type == "embed" and "file" not in item:
            raise OneDriveValidationError(f"embed links exist only for files; {where} is a folder")
        response = ctx.graph.request(
            "POST",
            ctx.by_id(item["id"], "createLink"),
            json=options.body(),
            action=f"create a {options.type} link for {where}",
        )
        link = SharingLink.from_permission(
            response.json(), path=path, item_id=item["id"], created=response.status_code == 201
        )
        log.info(
            "%s %s link (scope %s) for %s: permission %s%s",
            "created" if link.created else "reused the existing",
            link.type,
            link.scope or "default",
            where,
            link.id,
            f", expires {link.expires.isoformat()}" if link.expires else "",
        )
        return link

    def permissions(self, path: str) -> list[dict[str, Any]]:
        """The item's permissions as Graph returns them (its own, and inherited ones)."""
        return list(self.ctx.graph.iter_values(paths.item_path(self.ctx.drive_base, path, "permissions")))

    def resolve(self, share: str, *, redeem: bool = True) -> SharedItem:
        """The item a sharing URL or share id names.

        :param redeem: send ``Prefer: redeemSharingLink`` (durable access, like opening the link in a browser),
            so the item can then be addressed by its drive and item id; False sends
            ``redeemSharingLinkIfNecessary`` (access for this one request only).
        """
        token = share_token(share)
        prefer = "redeemSharingLink" if redeem else "redeemSharingLinkIfNecessary"
        response = self.ctx.graph.request(
            "GET", f"shares/{token}/driveItem", headers={"Prefer": prefer}, action="resolve a sharing link"
        )
        raw = response.json()
        drive_id = (raw.get("parentReference") or {}).get("driveId")
        if not drive_id or not raw.get("id"):
            raise OneDriveValidationError("the shared item Graph returned has no parentReference.driveId or id")
        item = RemoteItem.from_graph(raw, "")
        return SharedItem(str(drive_id), str(raw["id"]), item)

    def shared_with_me(self) -> Iterator[dict[str, Any]]:
        """``/me/drive/sharedWithMe`` (delegated only; deprecated by Microsoft): the ``remoteItem`` of each
        entry, with ``driveId`` and ``id`` to address it."""
        for entry in self.ctx.graph.iter_values("me/drive/sharedWithMe"):
            remote = entry.get("remoteItem") or entry
            yield remote


def remote_items(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Compact, JSON-able records of sharedWithMe entries (name, ids, size, folder or not, web URL)."""
    records = []
    for remote in entries:
        reference = remote.get("parentReference") or {}
        records.append(
            {
                "name": remote.get("name"),
                "id": remote.get("id"),
                "drive_id": reference.get("driveId"),
                "size": int(remote.get("size") or 0),
                "is_folder": "folder" in remote,
                "web_url": remote.get("webUrl"),
            }
        )
    return records
