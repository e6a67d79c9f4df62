"""Graph's sharing endpoints: ``createLink``, ``permissions``, ``/shares/{token}`` and ``sharedWithMe``.

Modelled on Microsoft's documentation:

- createLink: https://learn.microsoft.com/graph/api/driveitem-createlink (a new link answers 201; asking again
  for a link of the same type and scope by the same application returns the existing one with 200; ``embed``
  only for files in OneDrive Personal; ``organization``/``users`` only in OneDrive for Business and SharePoint;
  ``password`` only in OneDrive Personal)
- permission resource: https://learn.microsoft.com/graph/api/resources/permission (``roles`` read/write,
  ``link`` facet, ``shareId``, ``expirationDateTime``, ``hasPassword``; Business omits ``inheritedFrom``)
- list permissions: https://learn.microsoft.com/graph/api/driveitem-list-permissions (owners see every
  permission; other callers only those that apply to them, without ``shareId`` or ``webUrl``)
- shares: https://learn.microsoft.com/graph/api/shares-get (``u!`` + unpadded base64url of the sharing URL, or a
  share id; ``/driveItem``, the personal-only ``/root``, ``?$expand=children``; ``Prefer: redeemSharingLink``
  grants durable access, ``redeemSharingLinkIfNecessary`` access for that request only)
- sharedWithMe (deprecated): https://learn.microsoft.com/graph/api/drive-sharedwithme (delegated only; every
  entry carries a ``remoteItem`` facet with ``parentReference.driveId``)

Access follows the link's scope: ``anonymous`` and ``organization`` links open for any caller of the tenant
(on Business, an application without access to the drive cannot open an anonymous link: it has no user context),
``users`` links only for their recipients (and whoever may use the whole drive). A redeemed link lets its holder
address the shared item (and what is below it) as ``/drives/{drive-id}/items/{item-id}``: read for ``view``
links, read and write for ``edit`` links. What an expired link answers is not documented: 403 accessDenied here.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_onedrive.testing.addressing import Target, check_drive_access
from airflow_provider_onedrive.testing.graph_api import Call
from airflow_provider_onedrive.testing.identity import Principal
from airflow_provider_onedrive.testing.store import Drive, Item
from airflow_provider_onedrive.testing.wire import GraphError, Request, Response, iso_time, json_response, parse_time

if TYPE_CHECKING:
    from airflow_provider_onedrive.testing.parts import EmulatorParts
    from airflow_provider_onedrive.testing.render import Renderer

__all__ = ["LinkPermission", "Sharing", "principal_key"]

_TYPES = ("view", "edit", "embed")
_SCOPES = ("anonymous", "organization", "users")
_SHARE_PATH = re.compile(r"^/v1\.0/shares/([^/]+)(?:/(driveItem|root|permission))?(?:/(children|content))?/?$")


def principal_key(principal: Principal) -> str:
    """Who holds a redeemed link: a user by object id, an application (app-only) by client id."""
    return principal.user.id if principal.user is not None else f"app:{principal.client_id}"


@dataclass
class LinkPermission:
    """A sharing link of one item."""

    id: str
    drive_id: str
    item_id: str
    type: str
    scope: str
    web_url: str
    share_id: str
    application: dict[str, str]
    expires: float | None = None
    has_password: bool = False
    recipients: list[dict[str, str]] = field(default_factory=list)
    redeemed_by: set[str] = field(default_factory=set)

    @property
    def roles(self) -> list[str]:
        return ["write"] if self.type == "edit" else ["read"]

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires

    def names(self, principal: Principal) -> bool:
        """``principal`` is one of the link's recipients."""
        user = principal.user
        if user is None:
            return False
        return any(
            r.get("objectId") == user.id or (r.get("email") or "").lower() == user.upn.lower() for r in self.recipients
        )

    def held_by(self, principal: Principal) -> bool:
        """``principal`` may use the link without presenting it again (a recipient, or it redeemed the link)."""
        return (self.scope == "users" and self.names(principal)) or principal_key(principal) in self.redeemed_by


class Sharing:
    """The sharing endpoints, on the emulator's store (links live in ``store.links``)."""

    def __init__(self, emulator: EmulatorParts) -> None:
        self.emu = emulator

    # -- createLink ------------------------------------------------------------------------------------------
    def create_link(self, call: Call) -> Response:
        item = self.emu.graph.require(call)
        data = call.request.json()
        business = self.emu.settings.business
        link_type = data.get("type")
        if link_type not in _TYPES:
            raise GraphError(400, "invalidRequest", f"Invalid value '{link_type}' for type: use view, edit or embed.")
        scope = data.get("scope") or ("organization" if business else "anonymous")
        if scope not in _SCOPES:
            raise GraphError(400, "invalidRequest", f"Invalid value '{scope}' for scope.")
        if link_type == "embed" and business:
            raise GraphError(400, "invalidRequest", "Embed links are only supported in OneDrive personal.")
        if link_type == "embed" and item.is_folder:
            raise GraphError(400, "invalidRequest", "Embed links are only available for files.")
        if scope in ("organization", "users") and not business:
            raise GraphError(
                400, "invalidRequest", f"Scope '{scope}' is only available in OneDrive for Business and SharePoint."
            )
        password = data.get("password")
        if password is not None and (business or not isinstance(password, str) or not password):
            raise GraphError(400, "invalidRequest", "A link password is only supported in OneDrive personal.")
        recipients = data.get("recipients") or []
        if recipients and scope != "users":
            raise GraphError(400, "invalidRequest", "Recipients can only be given for a link of scope 'users'.")
        people = [self._recipient(r) for r in recipients]
        expires = self._expiry(data.get("expirationDateTime"))
        app = {"id": call.principal.client_id, "displayName": "Airflow OneDrive app"}
        store = self.emu.store
        for existing in store.links.values():
            if (
                existing.item_id == item.id
                and existing.drive_id == call.drive.id
                and (existing.type, existing.scope, existing.application["id"]) == (link_type, scope, app["id"])
                and _same_people(existing.recipients, people)
                and not existing.expired(self.emu.clock.now())
            ):
                return json_response(200, self.permission_json(existing, call.drive, secrets_shown=True))
        link = LinkPermission(
            id=str(uuid.uuid4()),
            drive_id=call.drive.id,
            item_id=item.id,
            type=link_type,
            scope=scope,
            web_url=self._web_url(call.drive, item),
            share_id="s!" + secrets.token_urlsafe(24),
            application=app,
            expires=expires,
            has_password=password is not None,
            recipients=people,
        )
        store.links[link.id] = link
        return json_response(201, self.permission_json(link, call.drive, secrets_shown=True))

    def _recipient(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise GraphError(400, "invalidRequest", "Each recipient must be a driveRecipient object.")
        found = {k: str(value[k]) for k in ("email", "alias", "objectId") if value.get(k)}
        if not found:
            raise GraphError(400, "invalidRequest", "A driveRecipient needs email, alias or objectId.")
        for user, _ in self.emu.directory.users.values():  # resolve tenant users both ways
            if found.get("objectId") == user.id or (found.get("email") or "").lower() == user.upn.lower():
                return {"objectId": user.id, "email": user.upn}
        return found

    def _expiry(self, value: Any) -> float | None:
        if value is None:
            return None
        try:
            moment = parse_time(str(value))
        except ValueError as exc:
            raise GraphError(400, "invalidRequest", "Invalid expirationDateTime.") from exc
        if moment <= self.emu.clock.now():
            raise GraphError(400, "invalidRequest", "The expiration date and time must be in the future.")
        return moment

    def _web_url(self, drive: Drive, item: Item) -> str:
        code = secrets.token_urlsafe(24)
        if not self.emu.settings.business:
            return f"https://1drv.ms/{'f' if item.is_folder else 'u'}/s!{code}"
        host = urlsplit(drive.web_url).hostname or "contoso.sharepoint.com"
        return f"https://{host}/:{'f' if item.is_folder else 'u'}:/g/{code}"

    def permission_json(self, link: LinkPermission, drive: Drive, *, secrets_shown: bool) -> dict[str, Any]:
        """The permission resource of a link; ``webUrl`` and ``shareId`` only for callers who could create it."""
        facet: dict[str, Any] = {
            "type": link.type,
            "scope": link.scope,
            "application": dict(link.application),
            "preventsDownload": False,
        }
        body: dict[str, Any] = {"id": link.id, "roles": link.roles, "link": facet}
        if secrets_shown:
            facet["webUrl"] = link.web_url
            body["shareId"] = link.share_id
            if link.type == "embed":
                facet["webHtml"] = f'<iframe src="{link.web_url}" width="98" height="120" frameborder="0"></iframe>'
        if link.expires is not None:
            body["expirationDateTime"] = iso_time(link.expires)
        if not self.emu.settings.business:
            body["hasPassword"] = link.has_password
        if link.recipients:
            body["grantedToIdentitiesV2"] = [{"user": self._identity(r)} for r in link.recipients]
        return body

    def _identity(self, recipient: dict[str, str]) -> dict[str, str]:
        for user, _ in self.emu.directory.users.values():
            if recipient.get("objectId") == user.id:
                return {"id": user.id, "displayName": user.display_name, "email": user.upn}
        return {"email": recipient.get("email") or recipient.get("alias") or ""}

    # -- permissions -----------------------------------------------------------------------------------------
    def list_permissions(self, call: Call) -> Response:
        item = self.emu.graph.require(call)
        drive, store, now = call.drive, self.emu.store, self.emu.clock.now()
        chain = [item, *store.ancestors(drive, item)]
        owner = not call.target.shared_access
        values: list[dict[str, Any]] = []
        user = drive.owner.get("user")
        if owner and user:
            values.append({"id": "owner", "roles": ["owner"], "grantedToV2": {"user": dict(user)}})
        for link in store.links.values():
            if link.drive_id != drive.id or link.expired(now):
                continue
            holder = next((i for i in chain if i.id == link.item_id), None)
            if holder is None or (not owner and not link.held_by(call.principal)):
                continue
            body = self.permission_json(link, drive, secrets_shown=owner)
            if holder is not item and not self.emu.settings.business:  # Business does not return inheritedFrom
                body["inheritedFrom"] = {"driveId": drive.id, "id": holder.id}
            values.append(body)
        return json_response(200, {"value": values})

    # -- access through links --------------------------------------------------------------------------------
    def authorize(self, call: Call) -> None:
        """A caller without access to the drive reaches an item only through a link it holds; writes need an
        edit link."""
        target, store = call.target, self.emu.store
        denied = GraphError(
            403,
            "accessDenied",
            "Access denied. You do not have permission to perform this action or access this resource.",
        )
        if target.kind != "item" or target.base is None:
            raise denied
        chain = {target.base.id} | {a.id for a in store.ancestors(call.drive, target.base)}
        now = self.emu.clock.now()
        held = [
            link
            for link in store.links.values()
            if link.drive_id == call.drive.id
            and link.item_id in chain
            and not link.expired(now)
            and link.held_by(call.principal)
        ]
        if not held:
            raise denied
        if call.request.method not in ("GET", "HEAD") and not any("write" in link.roles for link in held):
            raise denied

    # -- /shares ---------------------------------------------------------------------------------------------
    def find(self, token: str) -> LinkPermission:
        """The link a share token names: ``u!`` + base64url of its URL, or its ``s!`` share id."""
        links = self.emu.store.links.values()
        if token.startswith("u!"):
            raw = token[2:]
            try:
                url = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
                raise GraphError(400, "invalidRequest", "The sharing token is not a valid encoded URL.") from exc
            found = next((link for link in links if link.web_url == url), None)
        elif token.startswith("s!"):
            found = next((link for link in links if link.share_id == token), None)
        else:
            raise GraphError(400, "invalidRequest", "Invalid shareId: use s!{id} or u!{encoded sharing URL}.")
        if found is None:
            raise GraphError(404, "itemNotFound", "The sharing link could not be found.")
        return found

    def shares(self, request: Request, principal: Principal, render: Renderer) -> Response:
        match = _SHARE_PATH.match(request.path)
        if match is None:
            rest = request.path[len("/v1.0/shares/") :].split("/", 1)
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[-1]}'.")
        if request.method not in ("GET", "HEAD"):
            raise GraphError(405, "BadRequest", "Specified HTTP method is not allowed for the request target.")
        token, relation, action = match.group(1), match.group(2) or "", match.group(3) or ""
        emu, store = self.emu, self.emu.store
        with store.lock:
            link = self.find(token)
            if link.expired(emu.clock.now()):
                raise GraphError(403, "accessDenied", "The sharing link has expired.")
            drive = store.drives[link.drive_id]
            item = drive.items.get(link.item_id)
            if item is None:
                raise GraphError(404, "itemNotFound", "The shared item no longer exists.")
            owner = check_drive_access(store, drive.id, principal)
            if principal.user is None and emu.settings.business and link.scope == "anonymous" and not owner:
                # shares-get remarks: on Business "the Shares API always requires authentication and cannot be
                # used to access anonymously shared content without a user context"
                raise GraphError(
                    403, "accessDenied", "Anonymously shared content cannot be accessed without a user context."
                )
            if link.scope == "users" and not (owner or link.names(principal)):
                raise GraphError(403, "accessDenied", "This link only works for the people it was shared with.")
            if relation == "root" and emu.settings.business:
                raise GraphError(400, "invalidRequest", "The root relationship is only available in OneDrive personal.")
            prefer = (request.header("prefer") or "").replace(" ", "").lower().split(",")
            if "redeemsharinglink" in prefer and not owner:
                link.redeemed_by.add(principal_key(principal))
            if relation == "permission":
                return json_response(200, self.permission_json(link, drive, secrets_shown=owner))
            if not relation:
                creator = item.created_by or {}
                return json_response(
                    200,
                    {
                        "id": token,
                        "name": item.name,
                        "owner": {"user": {"id": creator.get("id", ""), "displayName": creator.get("displayName", "")}},
                    },
                )
            target = Target("item", drive=drive, prefix=f"/drives/{drive.id}", base=item, action=action)
            call = Call(request, principal, target, render)
            if action == "children":
                return emu.graph.list_children(call)
            if action == "content":
                return emu.transfers.redirect(call)
            return emu.graph.get_item(call)

    # -- sharedWithMe ----------------------------------------------------------------------------------------
    def shared_with_me(self, call: Call) -> Response:
        principal = call.principal
        if principal.user is None:
            raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        store, now, values = self.emu.store, self.emu.clock.now(), []
        seen: set[tuple[str, str]] = set()
        for link in store.links.values():
            key = (link.drive_id, link.item_id)
            if key in seen or link.expired(now) or not link.held_by(principal):
                continue
            drive = store.drives[link.drive_id]
            item = drive.items.get(link.item_id)
            if item is None or check_drive_access(store, drive.id, principal):
                continue
            seen.add(key)
            remote = call.render.item(drive, f"/drives/{drive.id}", item, download=False)
            remote["shared"] = {"sharedDateTime": iso_time(item.created)}
            values.append({"id": item.id, "name": item.name, "remoteItem": remote})
        return json_response(200, {"value": values})


def _same_people(first: list[dict[str, str]], second: list[dict[str, str]]) -> bool:
    def key(people: list[dict[str, str]]) -> set[str]:
        return {(p.get("objectId") or p.get("email") or p.get("alias") or "").lower() for p in people}

    return key(first) == key(second)
