"""Graph's drive endpoints: metadata, listing, folders, update/move, delete, copy (with its monitor), delta."""

from __future__ import annotations

import collections
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from airflow_provider_onedrive.testing.addressing import Target, parse_graph_path
from airflow_provider_onedrive.testing.batch import is_batch_path
from airflow_provider_onedrive.testing.identity import Principal, b64url, b64url_decode
from airflow_provider_onedrive.testing.render import Renderer, alias_origin, user_json
from airflow_provider_onedrive.testing.store import Drive, Item, Tombstone
from airflow_provider_onedrive.testing.wire import GraphError, Request, Response, iso_time, json_response, parse_time

if TYPE_CHECKING:
    from airflow_provider_onedrive.testing.parts import EmulatorParts

__all__ = ["CONFLICT_PARAM", "Call", "GraphApi", "conflict_value"]

CONFLICT_PARAM = "@microsoft.graph.conflictBehavior"


def conflict_value(value: Any, default: str) -> str:
    """A validated conflict behaviour (fail, replace, rename)."""
    if value is None or value == "":
        return default
    if value not in ("fail", "replace", "rename"):
        raise GraphError(400, "invalidRequest", f"Invalid value '{value}' for {CONFLICT_PARAM}.")
    return str(value)


@dataclass
class Call:
    """One Graph request with everything the endpoints need to answer it."""

    request: Request
    principal: Principal
    target: Target
    render: Renderer

    @property
    def drive(self) -> Drive:
        assert self.target.drive is not None
        return self.target.drive

    @property
    def actor(self) -> dict[str, str]:
        user = self.principal.user
        if user is None:
            return {"kind": "application", "id": self.principal.client_id, "displayName": "Airflow OneDrive app"}
        return {"kind": "user", "id": user.id, "displayName": user.display_name, "email": user.upn}

    def item_json(self, item: Item, select: set[str] | None = None) -> dict[str, Any]:
        return self.render.item(self.drive, self.target.prefix, item, select)


@dataclass
class _CopyJob:
    due: float
    run: Any
    status: str = "inProgress"
    resource_id: str | None = None
    error: GraphError | None = None


class GraphApi:
    """Answers ``/v1.0/...`` requests and the copy monitor."""

    def __init__(self, emulator: EmulatorParts) -> None:
        self.emu = emulator
        self._copies: dict[str, _CopyJob] = {}
        self._copy_lock = threading.Lock()
        #: Change lists of delta rounds being paged, so every page of a round sees the same snapshot.
        self._delta_rounds: collections.OrderedDict[tuple[Any, ...], list[Any]] = collections.OrderedDict()

    def reset(self) -> None:
        with self._copy_lock:
            self._copies.clear()
        self._delta_rounds.clear()

    def renderer(self, request: Request) -> Renderer:
        emu = self.emu
        return Renderer(emu.store, emu.signer, alias_origin(request.origin), emu.settings.download_url_lifetime)

    def handle(self, request: Request) -> Response:
        emu = self.emu
        principal = emu.identity.validate(request.header("authorization"))
        if is_batch_path(request.path):
            return emu.batches.handle(request)
        if request.path.startswith("/v1.0/shares/"):
            return emu.sharing.shares(request, principal, self.renderer(request))
        target = parse_graph_path(request.path[len("/v1.0") :], emu.directory, emu.store, principal)
        call = Call(request, principal, target, self.renderer(request))
        method = request.method
        if target.shared_access:
            emu.sharing.authorize(call)
        if target.kind == "sharedWithMe" and method == "GET":
            return emu.sharing.shared_with_me(call)
        if target.kind != "item":
            if method != "GET":
                raise GraphError(405, "BadRequest", "Specified HTTP method is not allowed for the request target.")
            return self._collection(call)
        action = target.action
        routes = {
            ("GET", ""): self.get_item,
            ("PATCH", ""): self.update_item,
            ("DELETE", ""): self.delete_item,
            ("GET", "children"): self.list_children,
            ("POST", "children"): self.create_folder,
            ("GET", "content"): emu.transfers.redirect,
            ("HEAD", "content"): emu.transfers.redirect,
            ("PUT", "content"): emu.transfers.simple_upload,
            ("POST", "createUploadSession"): emu.uploads.create,
            ("POST", "copy"): self.copy,
            ("GET", "delta"): self.delta,
            ("POST", "permanentDelete"): self.permanent_delete,
            ("POST", "createLink"): emu.sharing.create_link,
            ("GET", "permissions"): emu.sharing.list_permissions,
        }
        route = routes.get((method, action))
        if route is None:
            raise GraphError(405, "BadRequest", "Specified HTTP method is not allowed for the request target.")
        if (method, action) == ("PUT", "content"):
            return route(call)  # streams the body; takes the lock only to check and to commit
        with emu.store.lock:
            return route(call)

    # -- helpers ---------------------------------------------------------------------------------------------
    def find(self, call: Call) -> Item | None:
        target = call.target
        assert target.base is not None
        return self.emu.store.find(call.drive, target.base, target.segments)

    def require(self, call: Call) -> Item:
        """The addressed item, or 404 (also while a create is still "propagating")."""
        item = self.find(call)
        if item is None:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        if call.request.method in ("GET", "HEAD"):
            self.emu.store.consume_hidden_read(item)
        return item

    def _select(self, call: Call) -> set[str] | None:
        raw = call.request.query.get("$select")
        return {s.strip() for s in raw.split(",") if s.strip()} if raw else None

    def _page_size(self, call: Call) -> int:
        raw = call.request.query.get("$top")
        if raw is None:
            return self.emu.settings.page_size
        if not raw.isdigit() or int(raw) < 1:
            raise GraphError(400, "invalidRequest", f"Invalid value '{raw}' for $top.", "zeroOrFewerResultsRequested")
        if int(raw) > self.emu.settings.max_page_size:
            raise GraphError(
                400,
                "invalidRequest",
                f"$top may not exceed {self.emu.settings.max_page_size}.",
                "tooManyResultsRequested",
            )
        return int(raw)

    def _link(self, call: Call, **params: str) -> str:
        query = {k: v for k, v in call.request.query.items() if k not in ("$skiptoken", "token")}
        query.update(params)
        return f"{call.request.origin}{call.request.path}?{urlencode(query, safe='$,@')}"

    # -- collections -----------------------------------------------------------------------------------------
    def _collection(self, call: Call) -> Response:
        target, base = call.target, f"{call.request.origin}/v1.0"
        if target.kind == "drive":
            body = {"@odata.context": f"{base}/$metadata#drives/$entity", **call.render.drive(call.drive)}
        elif target.kind == "drives":
            body = {
                "@odata.context": f"{base}/$metadata#drives",
                "value": [call.render.drive(d) for d in target.payload],
            }
        elif target.kind == "user":
            body = {"@odata.context": f"{base}/$metadata#users/$entity", **user_json(target.payload)}
        elif target.kind == "site":
            body = {"@odata.context": f"{base}/$metadata#sites/$entity", **self.site_json(target.payload)}
        else:
            body = {"@odata.context": f"{base}/$metadata#sites", "value": [self.site_json(s) for s in target.payload]}
        return json_response(200, body)

    def site_json(self, site: Any) -> dict[str, Any]:
        root = self.emu.store.drives[site.drive_ids[0]].root
        return {
            "id": site.id,
            "name": site.name,
            "displayName": site.name,
            "webUrl": site.web_url,
            "createdDateTime": iso_time(root.created),
            "lastModifiedDateTime": iso_time(root.modified),
            "siteCollection": {"hostname": site.hostname},
        }

    # -- items -----------------------------------------------------------------------------------------------
    def get_item(self, call: Call) -> Response:
        item = self.require(call)
        body = call.item_json(item, self._select(call))
        if call.request.query.get("$expand", "").split("(")[0] == "children" and item.is_folder:
            kids = self.emu.store.children(item, call.drive)[: self.emu.settings.page_size]
            body["children"] = [call.item_json(k) for k in kids]
        return json_response(200, body, {"ETag": body.get("eTag", "")} if "eTag" in body else None)

    def list_children(self, call: Call) -> Response:
        if "$filter" in call.request.query:
            raise GraphError(400, "invalidRequest", "$filter is not supported when listing children.", "notSupported")
        item = self.require(call)
        size = self._page_size(call)
        offset = 0
        if "$skiptoken" in call.request.query:
            try:
                offset = int(b64url_decode(call.request.query["$skiptoken"]).decode().rpartition("=")[2])
            except ValueError as exc:
                raise GraphError(400, "invalidRequest", "Invalid $skiptoken.") from exc
        kids = self.emu.store.children(item, call.drive) if item.is_folder else []
        order = call.request.query.get("$orderby", "name").split()
        if order and order[0] in ("lastModifiedDateTime", "size"):
            kids.sort(key=lambda k: k.modified if order[0] == "lastModifiedDateTime" else k.size)
        if order[-1:] == ["desc"]:
            kids.reverse()
        select = self._select(call)
        body: dict[str, Any] = {
            "@odata.context": f"{call.request.origin}/v1.0/$metadata#drives('{call.drive.id}')"
            f"/items('{item.id}')/children",
            "value": [call.item_json(k, select) for k in kids[offset : offset + size]],
        }
        if offset + size < len(kids):
            token = b64url(f"Paged=TRUE&p_SortBehavior=0&p_ID={offset + size}".encode())
            body["@odata.nextLink"] = self._link(call, **{"$skiptoken": token})
        return json_response(200, body)

    def create_folder(self, call: Call) -> Response:
        parent = self.require(call)
        data = call.request.json()
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise GraphError(400, "invalidRequest", "Property 'name' is required to create an item.")
        if "folder" not in data:
            raise GraphError(400, "invalidRequest", "Only folders can be created here; upload files to :/content.")
        default = self.emu.settings.folder_conflict_default
        conflict = conflict_value(data.get(CONFLICT_PARAM, call.request.query.get(CONFLICT_PARAM)), default)
        folder, created = self.emu.store.create_folder(call.drive, parent, name, conflict, call.actor)
        return json_response(201 if created else 200, call.item_json(folder))

    def update_item(self, call: Call) -> Response:
        data = call.request.json()
        item = self.find(call)
        store = self.emu.store
        if item is None:
            if "folder" not in data or not call.target.segments:
                raise GraphError(404, "itemNotFound", "The resource could not be found.")
            assert call.target.base is not None
            folder = store.ensure_folders(call.drive, call.target.base, call.target.segments, call.actor)
            return json_response(201, call.item_json(folder))
        etag = call.item_json(item, {"eTag"}).get("eTag")
        if_match = call.request.header("if-match")
        if if_match not in (None, "*", etag):
            raise GraphError(412, "resourceModified", "ETag does not match current item's value", "resourceModified")
        conflict = conflict_value(data.get(CONFLICT_PARAM, call.request.query.get(CONFLICT_PARAM)), "fail")
        new_parent = self._parent_from_reference(call, data.get("parentReference"))
        fs = data.get("fileSystemInfo") or {}
        try:
            fs_info = tuple(
                parse_time(fs[k]) if fs.get(k) else None for k in ("createdDateTime", "lastModifiedDateTime")
            )
        except (TypeError, ValueError) as exc:
            raise GraphError(400, "invalidRequest", "Invalid fileSystemInfo timestamp.") from exc
        name = data.get("name")
        if name is not None and not isinstance(name, str):
            raise GraphError(400, "invalidRequest", "Property 'name' must be a string.")
        updated = store.update(call.drive, item, name, new_parent, conflict, (fs_info[0], fs_info[1]))
        return json_response(200, call.item_json(updated))

    def _parent_from_reference(self, call: Call, reference: Any) -> Item | None:
        if not reference:
            return None
        if not isinstance(reference, dict):
            raise GraphError(400, "invalidRequest", "parentReference must be an object.")
        if reference.get("driveId") not in (None, call.drive.id):
            raise GraphError(400, "invalidRequest", "Moving an item to another drive is not supported; use copy.")
        store = self.emu.store
        if reference.get("id"):
            return store.item(call.drive, reference["id"])
        path = reference.get("path")
        if isinstance(path, str) and "root:" in path:
            names = [n for n in path.split("root:", 1)[1].split("/") if n]
            found = store.find(call.drive, call.drive.root, names)
            if found is None:
                raise GraphError(404, "itemNotFound", "The parent folder could not be found.")
            return found
        raise GraphError(400, "invalidRequest", "parentReference needs an id or a path.")

    def delete_item(self, call: Call) -> Response:
        item = self.require(call)
        etag = call.item_json(item, {"eTag"})["eTag"]
        self.emu.store.delete(call.drive, item, False, call.request.header("if-match"), etag)
        return Response(204)

    def permanent_delete(self, call: Call) -> Response:
        if not self.emu.settings.business:
            raise GraphError(
                400,
                "invalidRequest",
                "permanentDelete is only available on OneDrive for Business and SharePoint.",
                "notSupported",
            )
        item = self.require(call)
        etag = call.item_json(item, {"eTag"})["eTag"]
        self.emu.store.delete(call.drive, item, True, call.request.header("if-match"), etag)
        return Response(204)

    # -- copy ------------------------------------------------------------------------------------------------
    def copy(self, call: Call) -> Response:
        item = self.require(call)
        data = call.request.json()
        reference = data.get("parentReference") or {}
        emu, store = self.emu, self.emu.store
        dest = call.drive
        if reference.get("driveId") and reference["driveId"] != call.drive.id:
            if reference["driveId"] not in store.drives:
                raise GraphError(400, "invalidRequest", "The destination drive does not exist.")
            dest = store.drives[reference["driveId"]]
        if reference.get("id"):
            parent = store.item(dest, reference["id"])
        elif item.parent_id is not None and dest is call.drive:
            parent = call.drive.items[item.parent_id]
        else:
            raise GraphError(400, "invalidRequest", "parentReference with the destination folder id is required.")
        name = data.get("name") or item.name
        conflict = conflict_value(call.request.query.get(CONFLICT_PARAM, data.get(CONFLICT_PARAM)), "fail")
        source_drive, actor = call.drive, call.actor
        job_id = secrets.token_hex(16)
        job = _CopyJob(due=emu.clock.now() + emu.settings.copy_delay, run=None)

        def run() -> None:
            with self._copy_lock:
                if job.status != "inProgress":
                    return
                try:
                    with store.lock:
                        copy = store.copy_tree(source_drive, item, dest, parent, name, conflict, actor)
                    job.status, job.resource_id = "completed", copy.id
                except GraphError as error:
                    job.status, job.error = "failed", error

        job.run = run
        with self._copy_lock:
            self._copies[job_id] = job
        timer = threading.Timer(emu.settings.copy_delay, run)
        timer.daemon = True
        timer.start()
        monitor = f"{call.request.origin}/_api/v2.0/monitor/{job_id}"
        return Response(202, {"Location": monitor})

    def monitor(self, request: Request) -> Response:
        job_id = request.path.rsplit("/", 1)[-1]
        with self._copy_lock:
            job = self._copies.get(job_id)
        if job is None:
            raise GraphError(404, "itemNotFound", "The monitor could not be found.")
        if job.status == "inProgress" and self.emu.clock.now() >= job.due:
            job.run()
        body: dict[str, Any] = {
            "@odata.context": f"{request.origin}/_api/v2.0/$metadata#oneDrive.asynchronousOperationStatus",
            "operation": "ItemCopy",
            "status": job.status,
            "percentageComplete": 100.0 if job.status == "completed" else 0.0,
        }
        if job.resource_id:
            body["resourceId"] = job.resource_id
        if job.error is not None:
            body["error"] = {"code": job.error.code, "message": job.error.message}
        return json_response(200, body)

    # -- delta -----------------------------------------------------------------------------------------------
    def delta(self, call: Call) -> Response:
        """``GET {item}/delta`` as documented at https://learn.microsoft.com/en-us/graph/api/driveitem-delta:
        pages end with a nextLink until exactly one final page carries the deltaLink; items come in their
        latest state, without ``parentReference.path``; deleted items carry the ``deleted`` facet; a stale
        token is 410 with a ``Location`` that starts a fresh enumeration. On OneDrive for Business and
        SharePoint, delta is only available on the root (https://learn.microsoft.com/en-us/onedrive/developer/
        rest-api/getting-started/release-notes#view-deltas)."""
        scope = self.require(call)
        store = self.emu.store
        if self.emu.settings.rejects_folder_delta and scope.parent_id is not None:
            raise GraphError(
                400,
                "invalidRequest",
                "Delta is only supported on the root of a OneDrive for Business or SharePoint drive.",
                "notSupported",
            )
        raw = call.request.query.get("token")
        since: int | None
        if raw == "latest":
            return self._delta_page(call, [], store.seq, final=True, upto=store.seq)
        if raw:
            try:
                since, upto, offset = (int(x) if x != "n" else None for x in b64url_decode(raw).decode().split(":"))
            except ValueError as exc:
                raise GraphError(400, "invalidRequest", "Invalid delta token.") from exc
        else:
            since, upto, offset = None, store.seq, 0
        assert upto is not None and offset is not None
        if offset == 0 and since is not None:
            upto = store.seq  # a deltaLink: everything since then
        key = (call.drive.id, scope.id, since, upto)
        changes = self._delta_rounds.get(key) if offset else None
        if changes is None:
            try:
                changes = store.delta(call.drive, scope, since, upto)
            except GraphError as error:
                error.headers["Location"] = self._link(call)
                raise
            self._delta_rounds[key] = changes
            while len(self._delta_rounds) > 16:
                self._delta_rounds.popitem(last=False)
        size = self._page_size(call)
        page = [c for c in changes[offset : offset + size] if not isinstance(c, Item) or c.id in call.drive.items]
        final = offset + size >= len(changes)
        select = self._select(call)
        values = [self._delta_item(call, c, select) for c in page]
        if final:
            return self._delta_page(call, values, upto, final=True, upto=upto)
        token = b64url(f"{'n' if since is None else since}:{upto}:{offset + size}".encode())
        return self._delta_page(call, values, token, final=False, upto=upto)

    def _delta_item(self, call: Call, change: Item | Tombstone, select: set[str] | None) -> dict[str, Any]:
        """One change as delta reports it: no ``parentReference.path`` (renaming a folder does not return its
        descendants), and on Business no createdBy, lastModifiedBy or cTag (release notes, "View deltas")."""
        if isinstance(change, Tombstone):
            return call.render.tombstone(call.drive, change)
        data = call.item_json(change, select)
        reference = data.get("parentReference")
        if isinstance(reference, dict):
            data["parentReference"] = {k: v for k, v in reference.items() if k != "path"}
        if self.emu.settings.business:
            for name in ("createdBy", "lastModifiedBy", "cTag"):
                data.pop(name, None)
        return data

    def _delta_page(self, call: Call, values: list[Any], token: Any, final: bool, upto: int) -> Response:
        body: dict[str, Any] = {
            "@odata.context": f"{call.request.origin}/v1.0/$metadata#Collection(driveItem)",
            "value": values,
        }
        if final:
            body["@odata.deltaLink"] = self._link(call, token=b64url(f"{upto}:{upto}:0".encode()))
        else:
            body["@odata.nextLink"] = self._link(call, token=token)
        return json_response(200, body)
