"""Content in and out: simple upload (``PUT .../content``), the ``/content`` redirect, and the download host.

Bodies are streamed in blocks into a :class:`~.blobs.BlobWriter` (hashes computed as the bytes arrive) without
holding the store lock; only the commit takes it. Downloads are served from the alias host with a ``tempauth``
credential in the URL and support single byte ranges.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from airflow_provider_onedrive.testing.blobs import BlobWriter
from airflow_provider_onedrive.testing.graph_api import CONFLICT_PARAM, Call, conflict_value
from airflow_provider_onedrive.testing.store import Item, validate_name
from airflow_provider_onedrive.testing.wire import GraphError, Request, Response, json_response

if TYPE_CHECKING:
    from airflow_provider_onedrive.testing.parts import EmulatorParts

__all__ = ["Transfers"]

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Transfers:
    """Simple uploads and downloads."""

    def __init__(self, emulator: EmulatorParts) -> None:
        self.emu = emulator

    def writer(self) -> BlobWriter:
        emu = self.emu
        return BlobWriter(
            str(emu.spill_dir), personal=not emu.settings.business, memory_threshold=emu.settings.memory_threshold
        )

    def simple_upload(self, call: Call) -> Response:
        """``PUT {item}/content``: create or replace a file from the request body (streamed, lock-free)."""
        emu, store, request = self.emu, self.emu.store, call.request
        limit = emu.settings.max_simple_upload_size
        if request.body.length is not None and request.body.length > limit:
            raise GraphError(
                413,
                "invalidRequest",
                f"The request body exceeds the maximum simple-upload size ({limit} bytes); use an upload session.",
                "maxDocumentLengthExceeded",
            )
        conflict = conflict_value(request.query.get(CONFLICT_PARAM), "replace")
        target = call.target
        assert target.base is not None
        with store.lock:
            existing = emu.graph.find(call)
            if existing is not None and existing.is_folder:
                raise GraphError(409, "nameAlreadyExists", "A folder with the same name already exists.")
            if existing is None:
                if not target.segments:
                    raise GraphError(404, "itemNotFound", "The resource could not be found.")
                for name in target.segments:
                    validate_name(name)
                parent = store.find(call.drive, target.base, target.segments[:-1])
                if parent is None and not emu.settings.simple_upload_creates_parents:
                    raise GraphError(404, "itemNotFound", "The parent folder does not exist.")
            elif conflict == "fail":
                raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
            store.check_quota(call.drive, request.body.length or 0, existing)
        writer = self.writer()
        try:
            for block in request.body.blocks():
                writer.write(block)
                if writer.size > limit:
                    raise GraphError(413, "invalidRequest", "The request body exceeds the maximum simple-upload size.")
        except BaseException:
            writer.abort()
            raise
        blob = writer.finish()
        with store.lock:
            if existing is not None and not target.segments:
                item = store.replace_content(call.drive, existing, blob)
                created = False
            else:
                parent = store.ensure_folders(call.drive, target.base, target.segments[:-1], call.actor)
                item, created = store.put_file(call.drive, parent, target.segments[-1], blob, conflict, call.actor)
            return self._item_response(call, item, 201 if created else 200)

    def _item_response(self, call: Call, item: Item, status: int) -> Response:
        return json_response(status, call.item_json(item))

    def redirect(self, call: Call) -> Response:
        """``GET {item}/content``: 302 to a pre-authenticated URL on the download host alias."""
        item = self.emu.graph.require(call)
        if item.is_folder or item.blob is None:
            raise GraphError(404, "itemNotFound", "The specified item does not exist, or does not have content.")
        return Response(302, {"Location": call.render.download_url(call.drive, item)})

    def download(self, request: Request) -> Response:
        """Serve a download URL: no Authorization needed, ``tempauth`` checked, Range honoured."""
        emu = self.emu
        claims = emu.signer.verify(request.query.get("tempauth"))
        if claims is None or claims.get("k") != "dl" or claims.get("i") != request.query.get("UniqueId"):
            raise GraphError(401, "unauthenticated", "Invalid or missing tempauth credential.")
        if claims["e"] <= emu.clock.now():
            raise GraphError(401, "unauthenticated", "The download URL has expired; request a new one.")
        with emu.store.lock:
            drive = emu.store.drives.get(claims["d"])
            item = drive.items.get(claims["i"]) if drive else None
            blob = item.blob if item else None
            etag = f'"{{{item.uid}}},{item.content_version}"' if item else ""
        if blob is None:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", "ETag": etag}
        start, length, status = 0, blob.size, 200
        header = request.header("range")
        if header and emu.settings.honor_range:
            parsed = self._parse_range(header, blob.size)
            if parsed is None:
                headers["Content-Range"] = f"bytes */{blob.size}"
                return Response(416, headers)
            if isinstance(parsed, tuple):  # else "ignore": serve the whole file
                start, end = parsed
                length, status = end - start + 1, 206
                headers["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
        response = Response(status, headers, stream=lambda: blob.blocks(start, length), length=length)
        if blob.path is not None:
            response.file_slice = (blob.path, start, length)
        return response

    @staticmethod
    def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
        """(start, end) for a single ``bytes=`` range, None if unsatisfiable, "ignore" if not one we serve."""
        match = _RANGE_RE.match(header.strip())
        if match is None or (not match.group(1) and not match.group(2)):
            return "ignore"
        if not match.group(1):
            suffix = int(match.group(2))
            if suffix == 0 or size == 0:
                return None
            return max(0, size - suffix), size - 1
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else size - 1
        if start >= size or end < start:
            return None
        return start, min(end, size - 1)
