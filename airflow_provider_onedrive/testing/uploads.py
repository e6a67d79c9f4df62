"""Upload sessions: ``createUploadSession``, fragment PUTs to the uploadUrl, status, cancel, deferred commit.

The uploadUrl lives on the Graph listener and carries its own ``tempauth`` credential. Fragments must arrive in
order, each but the last a multiple of 320 KiB and under 60 MiB, all naming the same total. A fragment that is
cut short is forgotten (hash state and spill file rolled back) so the client can resend it.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_onedrive.testing.blobs import BlobWriter
from airflow_provider_onedrive.testing.graph_api import CONFLICT_PARAM, Call, conflict_value
from airflow_provider_onedrive.testing.store import Drive, Item, validate_name
from airflow_provider_onedrive.testing.wire import GraphError, Request, Response, iso_time, json_response, parse_time

if TYPE_CHECKING:
    from airflow_provider_onedrive.testing.faults import FaultRule
    from airflow_provider_onedrive.testing.parts import EmulatorParts

__all__ = ["UploadSession", "Uploads"]

_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


@dataclass
class UploadSession:
    """Server-side state of one upload session."""

    id: str
    drive: Drive
    call: Call
    base: Item
    segments: list[str]
    replace_item: Item | None
    conflict: str
    size: int | None
    fs_info: tuple[float | None, float | None]
    defer_commit: bool
    writer: BlobWriter
    expires: float
    key: tuple[str, str]
    received: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ranges(self) -> list[str]:
        if self.size is not None and self.received >= self.size:
            return []
        return [f"{self.received}-"]


def _not_found() -> GraphError:
    return GraphError(404, "itemNotFound", "The upload session was not found or has expired.", "uploadSessionNotFound")


class Uploads:
    """All live upload sessions of the emulator."""

    def __init__(self, emulator: EmulatorParts) -> None:
        self.emu = emulator
        self._sessions: dict[str, UploadSession] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.writer.abort()

    def expire_all(self) -> int:
        """Expire every live session (their uploadUrls then answer 404); returns how many."""
        with self._lock:
            for session in self._sessions.values():
                session.expires = 0.0
            return len(self._sessions)

    def active(self) -> list[UploadSession]:
        now = self.emu.clock.now()
        with self._lock:
            return [s for s in self._sessions.values() if s.expires > now]

    def create(self, call: Call) -> Response:
        """``POST {item}/createUploadSession``."""
        emu, store, target = self.emu, self.emu.store, call.target
        body = call.request.json()
        spec = body.get("item") or {}
        if not isinstance(spec, dict):
            raise GraphError(400, "invalidRequest", "Property 'item' must be an object.")
        default = emu.settings.upload_session_default_conflict
        conflict = conflict_value(spec.get(CONFLICT_PARAM, call.request.query.get(CONFLICT_PARAM)), default)
        assert target.base is not None
        existing = emu.graph.find(call)
        replace_item = existing if existing is not None and not target.segments else None
        if replace_item is None:
            if not target.segments:
                raise GraphError(404, "itemNotFound", "The resource could not be found.")
            for name in target.segments:
                validate_name(name)
            leaf = target.segments[-1]
            if spec.get("name") not in (None, leaf) and str(spec.get("name")).lower() != leaf.lower():
                raise GraphError(400, "invalidRequest", "item.name must match the name in the request path.")
            if store.find(call.drive, target.base, target.segments[:-1]) is None and not (
                emu.settings.simple_upload_creates_parents
            ):
                raise GraphError(404, "itemNotFound", "The parent folder does not exist.")
        if existing is not None and existing.is_folder:
            raise GraphError(409, "nameAlreadyExists", "A folder with the same name already exists.")
        if existing is not None and replace_item is None and conflict == "fail":
            raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
        size = spec.get("fileSize")
        if size is not None:
            if not isinstance(size, int) or size < 0:
                raise GraphError(400, "invalidRequest", "item.fileSize must be a non-negative integer.")
            if size == 0:
                raise GraphError(
                    400,
                    "invalidRequest",
                    "Zero-byte files cannot be uploaded with an upload session; use a simple upload.",
                )
            store.check_quota(call.drive, size, existing)
        fs = spec.get("fileSystemInfo") or {}
        try:
            fs_info = tuple(
                parse_time(fs[k]) if fs.get(k) else None for k in ("createdDateTime", "lastModifiedDateTime")
            )
        except (TypeError, ValueError) as exc:
            raise GraphError(400, "invalidRequest", "Invalid fileSystemInfo timestamp.") from exc
        path_key = (existing.id if existing else "/".join(target.segments)).lower()
        key = (call.drive.id, f"{target.base.id}/{path_key}")
        if emu.settings.rejects_concurrent_sessions and any(s.key == key for s in self.active()):
            # What OneDrive for Business answers while another session holds the file (reported in
            # microsoftgraph/microsoft-graph-docs#17631 and OneDrive/onedrive-api-docs#747, where Microsoft
            # explains that Business ties the session to the file; personal OneDrive opens another session).
            raise GraphError(
                409,
                "nameAlreadyExists",
                "A file with the same name is currently being uploaded. Change the filename and try to save again.",
            )
        session = UploadSession(
            id=secrets.token_hex(16),
            drive=call.drive,
            call=call,
            base=target.base,
            segments=list(target.segments),
            replace_item=replace_item,
            conflict=conflict,
            size=size,
            fs_info=(fs_info[0], fs_info[1]),
            defer_commit=bool(body.get("deferCommit")),
            writer=emu.transfers.writer(),
            expires=emu.clock.now() + emu.settings.upload_session_lifetime,
            key=key,
        )
        with self._lock:
            self._sessions[session.id] = session
        token = emu.signer.sign({"k": "up", "s": session.id})
        upload_url = (
            f"{call.request.origin}/_api/v2.0/drives/{call.drive.id}/uploadSession?guid={session.id}"
            f"&overwrite={conflict == 'replace'}&rename={conflict == 'rename'}&dc=0&tempauth={token}"
        )
        return json_response(
            200,
            {
                "@odata.context": f"{call.request.origin}/v1.0/$metadata#microsoft.graph.uploadSession",
                "uploadUrl": upload_url,
                "expirationDateTime": iso_time(session.expires),
                "nextExpectedRanges": ["0-"],
            },
        )

    def _session(self, request: Request) -> UploadSession:
        claims = self.emu.signer.verify(request.query.get("tempauth"))
        if claims is None or claims.get("k") != "up" or claims.get("s") != request.query.get("guid"):
            raise GraphError(401, "unauthenticated", "Invalid or missing tempauth credential.")
        with self._lock:
            session = self._sessions.get(claims["s"])
            if session is not None and session.expires <= self.emu.clock.now():
                del self._sessions[session.id]
                session.writer.abort()
                session = None
        if session is None:
            raise _not_found()
        return session

    def _drop(self, session: UploadSession) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def handle(self, request: Request, fault: FaultRule | None) -> Response:
        """Requests to an uploadUrl: PUT a fragment, GET status, DELETE cancel, POST commit (deferCommit)."""
        if fault is not None and fault.action == "upload_session_expired":
            guid = request.query.get("guid")
            with self._lock:
                if guid in self._sessions:
                    self._sessions[guid].expires = 0.0
        session = self._session(request)
        if request.header("authorization") and self.emu.settings.reject_authorization_on_upload:
            # Graph's createUploadSession remarks: a PUT with the Authorization header "may result in an HTTP 401
            # Unauthorized response". What the service sends then is {"code": "unauthenticated", "message":
            # "Unauthenticated"} (rclone/rclone#7405 and #8605 log "unauthenticated: Unauthenticated"; the raw body
            # is quoted in dtinit/data-transfer-project#1416), not Graph's InvalidAuthenticationToken.
            raise GraphError(401, "unauthenticated", "Unauthenticated")
        if request.method == "GET":
            return self._status(session, 200)
        if request.method == "DELETE":
            self._drop(session)
            session.writer.abort()
            return Response(204)
        if request.method == "POST":
            with session.lock:
                if session.size is None or session.received < session.size:
                    raise GraphError(
                        400, "invalidRequest", "The upload session is not complete.", "uploadSessionIncomplete"
                    )
                return self._commit(session)
        if request.method != "PUT":
            raise GraphError(405, "BadRequest", "Specified HTTP method is not allowed for the request target.")
        with session.lock:
            return self._fragment(session, request)

    def _status(self, session: UploadSession, status: int) -> Response:
        body: dict[str, Any] = {"expirationDateTime": iso_time(session.expires), "nextExpectedRanges": session.ranges()}
        return json_response(status, body)

    def _fragment(self, session: UploadSession, request: Request) -> Response:
        settings = self.emu.settings
        length = request.body.length
        if request.body.chunked or length is None:
            raise GraphError(411, "invalidRequest", "Content-Length is required for upload fragments.")
        match = _CONTENT_RANGE_RE.match(request.header("content-range", "") or "")
        if match is None:
            raise GraphError(
                400,
                "invalidRequest",
                "The Content-Range header is missing or malformed; expected 'bytes {start}-{end}/{total}'.",
                "invalidRange",
            )
        start, end, total = (int(g) for g in match.groups())
        if length >= settings.max_fragment_size:
            raise GraphError(
                413,
                "invalidRequest",
                f"Fragments must be smaller than {settings.max_fragment_size} bytes.",
                "maxDocumentLengthExceeded",
            )
        if end < start or end - start + 1 != length:
            raise GraphError(
                400,
                "invalidRequest",
                "The Content-Range length does not match Content-Length.",
                "fragmentLengthMismatch",
            )
        if session.size is not None and total != session.size:
            raise GraphError(
                400,
                "invalidRequest",
                f"The Content-Range total {total} does not match the upload session's file size {session.size}.",
                "invalidRange",
            )
        if end >= total:
            raise GraphError(416, "invalidRange", "The fragment ends past the file size.", "invalidRange")
        if start < session.received:
            raise GraphError(
                416,
                "invalidRange",
                "The uploaded fragment overlaps with data that has already been received.",
                "fragmentOverlap",
            )
        if start > session.received:
            raise GraphError(
                416,
                "invalidRange",
                f"The fragment is out of order; the next expected range starts at {session.received}.",
                "fragmentOutOfOrder",
            )
        if end + 1 < total and settings.enforce_fragment_alignment and length % settings.fragment_multiple:
            raise GraphError(
                400,
                "invalidRequest",
                f"Every fragment but the last must be a multiple of {settings.fragment_multiple} bytes.",
                "invalidRange",
            )
        session.size = total
        checkpoint = session.writer.checkpoint()
        try:
            for block in request.body.blocks():
                session.writer.write(block)
        except BaseException:
            session.writer.rollback(checkpoint)
            raise
        session.received = end + 1
        session.expires = self.emu.clock.now() + settings.upload_session_lifetime
        if session.received < total or session.defer_commit:
            return self._status(session, 202)
        return self._commit(session)

    def _commit(self, session: UploadSession) -> Response:
        store, call = self.emu.store, session.call
        self._drop(session)
        blob = session.writer.finish()
        with store.lock:
            if session.replace_item is not None:
                item = store.item(session.drive, session.replace_item.id)
                created = False
                store.check_quota(session.drive, blob.size, item)
                item = store.put_file(
                    session.drive,
                    store.item(session.drive, item.parent_id or ""),
                    item.name,
                    blob,
                    "replace",
                    call.actor,
                    session.fs_info,
                )[0]
            else:
                parent = store.ensure_folders(session.drive, session.base, session.segments[:-1], call.actor)
                item, created = store.put_file(
                    session.drive, parent, session.segments[-1], blob, session.conflict, call.actor, session.fs_info
                )
            return json_response(201 if created else 200, call.item_json(item))
