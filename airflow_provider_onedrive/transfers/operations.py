"""Item operations: create folders, delete, move and copy (with the copy monitor)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow_provider_onedrive import paths
from airflow_provider_onedrive.errors import (
    OneDriveBadRequestError,
    OneDriveConflictError,
    OneDriveError,
    OneDriveNotFoundError,
    OneDriveValidationError,
    error_from_response,
)
from airflow_provider_onedrive.transfers.common import CONFLICT_PARAM, check_conflict, retry_not_found
from airflow_provider_onedrive.transfers.context import DriveContext
from airflow_provider_onedrive.transfers.models import RemoteItem

__all__ = ["CopyMonitor", "OneDriveCopyTimeoutError", "Operations"]

log = logging.getLogger("airflow_provider_onedrive.transfers.operations")


class OneDriveCopyTimeoutError(OneDriveError, TimeoutError):
    """A server-side copy did not finish before the deadline (it may still complete later)."""


class CopyMonitor:
    """A running server-side copy. ``status()`` polls once; ``wait()`` polls until done or the deadline.

    The monitor URL is pre-authenticated (polled without Authorization) and treated as a secret.
    """

    def __init__(self, ctx: DriveContext, url: str, destination: str) -> None:
        self._ctx = ctx
        self._url = url
        self.destination = destination

    def status(self) -> dict[str, Any]:
        """The monitor's JSON (``status``: notStarted / inProgress / completed / failed, ``resourceId``...)."""
        response = self._ctx.graph.request(
            "GET", self._url, authenticated=False, allow_redirects=False, ok_statuses=(303,), action="copy monitor"
        )
        if response.status_code in (302, 303):
            return {"status": "completed"}
        try:
            return response.json()
        except ValueError:
            return {"status": "inProgress"}

    def wait(self, timeout: float = 300.0, poll: float = 0.2) -> RemoteItem:
        """Poll until the copy completes (returns the new item) or fails; raises after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.status()
            state = body.get("status")
            if state == "completed":
                return self._result(body.get("resourceId"))
            if state == "failed":
                error = body.get("error") or {}
                code = error.get("code") if isinstance(error, dict) else None
                message = error.get("message") if isinstance(error, dict) else None
                cls = OneDriveConflictError if code == "nameAlreadyExists" else OneDriveError
                raise cls(f"copy to {self.destination} failed: {message or code or 'unknown error'}", code=code)
            if time.monotonic() + poll > deadline:
                raise OneDriveCopyTimeoutError(
                    f"copy to {self.destination} still {state or 'running'} after {timeout:.0f} s; "
                    "it may complete later"
                )
            time.sleep(poll)
            poll = min(poll * 1.5, 2.0)

    def _result(self, resource_id: str | None) -> RemoteItem:
        ctx = self._ctx
        if resource_id:
            raw = retry_not_found(lambda: ctx.graph.get_json(ctx.by_id(resource_id)))
            parent = paths.parent_and_name(self.destination)[0]
            return RemoteItem.from_graph(raw, paths.join(parent, raw["name"]) if parent else raw["name"])
        return retry_not_found(lambda: ctx.info(self.destination))


class Operations:
    """mkdir / delete / move / copy in one drive (:class:`~.context.DriveContext`)."""

    def __init__(self, ctx: DriveContext) -> None:
        self.ctx = ctx

    # -- folders --------------------------------------------------------------------------------------
    def mkdir(self, path: str, *, parents: bool, exist_ok: bool) -> RemoteItem:
        path = paths.normalize(path)
        if not path:
            return self.ctx.info("")
        parent, name = paths.parent_and_name(path)
        try:
            return self._create_folder(parent, name, path, exist_ok)
        except OneDriveNotFoundError:
            if not parents:
                raise OneDriveNotFoundError(
                    f"cannot create {path}: its parent folder {parent or '/'} does not exist (pass parents=True)",
                    status=404,
                    code="itemNotFound",
                ) from None
        self.mkdir(parent, parents=True, exist_ok=True)
        return retry_not_found(lambda: self._create_folder(parent, name, path, exist_ok))

    def _create_folder(self, parent: str, name: str, path: str, exist_ok: bool) -> RemoteItem:
        ctx = self.ctx
        try:
            response = ctx.graph.request(
                "POST",
                paths.item_path(ctx.drive_base, parent, "children"),
                json={"name": name, "folder": {}, CONFLICT_PARAM: "fail"},
                action=f"create folder {path}",
            )
        except OneDriveConflictError as exc:
            existing = retry_not_found(lambda: ctx.info(path))
            if existing.is_folder and exist_ok:
                return existing
            what = "folder" if existing.is_folder else "file"
            raise OneDriveConflictError(
                f"cannot create folder {path}: a {what} with that name already exists",
                status=409,
                code=exc.code,
                request_id=exc.request_id,
            ) from None
        log.info("created folder %s", path)
        return RemoteItem.from_graph(response.json(), path)

    # -- delete ---------------------------------------------------------------------------------------
    def delete(self, targets: str | Iterable[str], *, missing_ok: bool, permanent: bool) -> list[str]:
        if isinstance(targets, str):
            items = [targets]
        elif isinstance(targets, list | tuple | set | frozenset):
            items = list(targets)
        else:
            raise OneDriveValidationError(
                f"paths to delete must be a path or a list of paths, got {type(targets).__name__}"
            )
        if not items:
            return []
        for item in items:
            if not isinstance(item, str):
                raise OneDriveValidationError(f"a path to delete must be a string, got {type(item).__name__}")
        normalized = [paths.normalize(p) for p in items]
        if any(not p for p in normalized):
            raise OneDriveValidationError("refusing to delete the drive root; delete the items inside it instead")
        if len(normalized) <= 1:
            done = [self._delete_one(p, missing_ok, permanent) for p in normalized]
        else:
            with ThreadPoolExecutor(self.ctx.settings.max_workers, thread_name_prefix="onedrive-delete") as pool:
                done = list(pool.map(lambda p: self._delete_one(p, missing_ok, permanent), normalized))
        return [p for p in done if p is not None]

    def _delete_one(self, path: str, missing_ok: bool, permanent: bool) -> str | None:
        ctx = self.ctx
        try:
            if permanent:
                ctx.graph.request(
                    "POST",
                    paths.item_path(ctx.drive_base, path, "permanentDelete"),
                    action=f"permanently delete {path}",
                )
            else:
                ctx.graph.request("DELETE", paths.item_path(ctx.drive_base, path), action=f"delete {path}")
        except OneDriveNotFoundError:
            if missing_ok:
                return None
            raise
        except OneDriveBadRequestError as exc:
            if permanent:
                raise OneDriveValidationError(
                    f"permanent delete of {path} refused ({exc}); OneDrive Personal does not support it: "
                    "use permanent=False (the item goes to the recycle bin)",
                    status=exc.status,
                    code=exc.code,
                    request_id=exc.request_id,
                ) from None
            raise
        log.info("%s %s", "permanently deleted" if permanent else "deleted", path)
        return path

    # -- move and copy --------------------------------------------------------------------------------
    def _destination(self, src: str, dst: str) -> tuple[str, dict[str, Any], str]:
        """(parent path, parent driveItem, name) for moving/copying ``src`` to ``dst``.

        ``dst`` ending with '/' (or naming an existing folder) means "into that folder, same name".
        """
        _, src_name = paths.parent_and_name(src)
        into = dst.rstrip().endswith("/")
        target = paths.normalize(dst)
        ctx = self.ctx
        if into or not target:
            return target, ctx.item(target), src_name
        try:
            existing = ctx.item(target)
        except OneDriveNotFoundError:
            existing = None
        if existing is not None and ("folder" in existing or "root" in existing):
            return target, existing, src_name
        parent, name = paths.parent_and_name(target)
        try:
            return parent, ctx.item(parent), name
        except OneDriveNotFoundError:
            raise OneDriveNotFoundError(
                f"destination folder {parent or '/'} does not exist; create it first (mkdir)",
                status=404,
                code="itemNotFound",
            ) from None

    def _check_source(self, src: str, verb: str) -> str:
        src = paths.normalize(src)
        if not src:
            raise OneDriveValidationError(f"cannot {verb} the drive root")
        return src

    def move(self, src: str, dst: str, *, conflict: str) -> RemoteItem:
        check_conflict(conflict)
        src = self._check_source(src, "move")
        if (paths.normalize(dst) + "/").lower().startswith(src.lower() + "/"):
            raise OneDriveValidationError(f"cannot move {src} into itself ({paths.normalize(dst)})")
        parent, parent_item, name = self._destination(src, dst)
        new_path = paths.join(parent, name) if parent else name
        ctx = self.ctx
        response = ctx.graph.request(
            "PATCH",
            paths.item_path(ctx.drive_base, src),
            params={CONFLICT_PARAM: conflict},
            json={"parentReference": {"id": parent_item["id"]}, "name": name},
            action=f"move {src} to {new_path}",
        )
        raw = response.json()
        final = paths.join(parent, raw.get("name", name)) if parent else raw.get("name", name)
        log.info("moved %s to %s", src, final)
        return RemoteItem.from_graph(raw, final)

    def copy(self, src: str, dst: str, *, conflict: str, wait: bool, timeout: float) -> RemoteItem | CopyMonitor:
        check_conflict(conflict)
        src = self._check_source(src, "copy")
        parent, parent_item, name = self._destination(src, dst)
        new_path = paths.join(parent, name) if parent else name
        reference: dict[str, Any] = {"id": parent_item["id"]}
        drive_id = (parent_item.get("parentReference") or {}).get("driveId")
        if drive_id:
            reference["driveId"] = drive_id
        ctx = self.ctx
        response = ctx.graph.request(
            "POST",
            paths.item_path(ctx.drive_base, src, "copy"),
            params={CONFLICT_PARAM: conflict},
            json={"parentReference": reference, "name": name},
            action=f"copy {src} to {new_path}",
        )
        location = response.headers.get("Location")
        if response.status_code != 202 or not location:
            raise error_from_response(response, f"copy {src} to {new_path}: expected 202 with a monitor URL")
        monitor = CopyMonitor(ctx, location, new_path)
        if not wait:
            return monitor
        item = monitor.wait(timeout)
        log.info("copied %s to %s", src, item.path)
        return item
