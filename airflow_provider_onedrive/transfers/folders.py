"""Folder transfers: a local tree up, a remote tree down, with a bounded pool of workers.

Everything is checked before the first request: local names OneDrive refuses and names that would clash
case-insensitively (``Report.csv`` and ``report.csv`` in one folder) raise OneDriveValidationError. Every file
is attempted; if some fail, the first failure is raised once all are done, with a note counting the others.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_onedrive import paths
from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.transfers.common import check_workers
from airflow_provider_onedrive.transfers.context import check_streams
from airflow_provider_onedrive.transfers.listing import walk_tree
from airflow_provider_onedrive.transfers.models import DownloadResult, UploadResult
from airflow_provider_onedrive.transfers.mtimes import DeferredMtimes
from airflow_provider_onedrive.transfers.progress import ProgressCallback

if TYPE_CHECKING:
    from airflow_provider_onedrive.transfers.downloads import Downloader
    from airflow_provider_onedrive.transfers.operations import Operations
    from airflow_provider_onedrive.transfers.uploads import Uploader

__all__ = ["download_folder", "plan_upload", "upload_folder"]

R = TypeVar("R")


def plan_upload(local_dir: str, remote: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Remote folders to create and (local file, remote path) pairs, after validation and clash detection."""
    if not os.path.isdir(local_dir):
        raise OneDriveValidationError(f"{local_dir} is not a local directory")
    remote = paths.normalize(remote)
    folders: list[str] = []
    files: list[tuple[str, str]] = []
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    problems: list[str] = []
    for dirpath, dirnames, filenames in os.walk(local_dir):
        dirnames.sort()
        rel = os.path.relpath(dirpath, local_dir)
        rel_parts = [] if rel == "." else rel.split(os.sep)
        parent = "/".join([remote, *rel_parts]).strip("/")
        for name, is_dir in [(d, True) for d in dirnames] + [(f, False) for f in sorted(filenames)]:
            try:
                paths.validate_name(name, path=os.path.join(dirpath, name))
            except OneDriveValidationError as exc:
                problems.append(str(exc))
                continue
            seen[(parent.casefold(), name.casefold())].append(os.path.join(dirpath, name))
            target = f"{parent}/{name}" if parent else name
            if is_dir:
                folders.append(target)
            else:
                files.append((os.path.join(dirpath, name), target))
    clashes = [group for group in seen.values() if len(group) > 1]
    for group in clashes:
        problems.append(
            "these local names differ only by case and would be the same OneDrive item: " + ", ".join(sorted(group))
        )
    if problems:
        raise OneDriveValidationError(
            f"cannot upload {local_dir}: " + "; ".join(problems[:20]) + (" ..." if len(problems) > 20 else "")
        )
    for _, target in files:
        paths.normalize(target)  # checks the 400-character path limit
    return folders, files


def _run_all(pool: ThreadPoolExecutor, jobs: list[Callable[[], R]]) -> list[R]:
    """Run every job; raise the first failure (noting how many failed) after all have finished."""
    futures: list[Future[R]] = [pool.submit(job) for job in jobs]
    return _collect(futures)


def _collect(futures: list[Future[R]]) -> list[R]:
    results: list[R] = []
    errors: list[BaseException] = []
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:
            errors.append(exc)
    if errors:
        first = errors[0]
        if len(errors) > 1:
            first.add_note(f"{len(errors)} of {len(futures)} transfers failed; this is the first")
        raise first
    return results


def upload_folder(
    uploader: Uploader,
    operations: Operations,
    local_dir: str | os.PathLike[str],
    remote: str,
    *,
    conflict: str,
    max_workers: int | None,
    preserve_mtime: bool,
    progress: ProgressCallback | None,
) -> list[UploadResult]:
    local = os.fspath(local_dir)
    folders, files = plan_upload(local, remote)
    root = paths.normalize(remote)
    workers = check_workers(max_workers) or uploader.ctx.settings.max_workers
    with ThreadPoolExecutor(workers, thread_name_prefix="onedrive-up") as pool:
        if root:
            operations.mkdir(root, parents=True, exist_ok=True)
        by_depth: dict[int, list[str]] = defaultdict(list)
        for folder in folders:
            by_depth[folder.count("/")].append(folder)
        for depth in sorted(by_depth):
            _run_all(pool, [partial(operations.mkdir, f, parents=True, exist_ok=True) for f in by_depth[depth]])
        # Small files' modification times go 20 to a $batch request once their content is in (see mtimes.py).
        mtimes = DeferredMtimes(uploader.ctx) if preserve_mtime else None
        try:
            results = _run_all(
                pool,
                [
                    partial(
                        uploader.upload_file,
                        src,
                        dst,
                        conflict=conflict,
                        preserve_mtime=preserve_mtime,
                        progress=progress,
                        resume=True,
                        mtimes=mtimes,
                    )
                    for src, dst in files
                ],
            )
        finally:
            unset = mtimes.finish() if mtimes is not None else []
    if unset:
        first = unset[0][1]
        names = ", ".join(dest for dest, _ in unset[:5]) + (" ..." if len(unset) > 5 else "")
        first.add_note(
            f"the content of every file is uploaded, but the modification time of {len(unset)} could not be set: "
            f"{names}; upload again with conflict='replace', or preserve_mtime=False"
        )
        raise first
    return sorted(results, key=lambda r: r.path)


def download_folder(
    downloader: Downloader,
    remote: str,
    local_dir: str | os.PathLike[str],
    *,
    max_workers: int | None,
    overwrite: bool,
    progress: ProgressCallback | None,
    streams: int | None = None,
) -> list[DownloadResult]:
    top = paths.normalize(remote)
    if streams is not None:
        check_streams(streams)
    local = os.path.abspath(os.fspath(local_dir))
    os.makedirs(local, exist_ok=True)
    futures: list[Future[DownloadResult]] = []
    ctx = downloader.ctx
    workers = check_workers(max_workers) or ctx.settings.max_workers
    with ThreadPoolExecutor(workers, thread_name_prefix="onedrive-down") as pool:
        try:
            # Whole driveItems: each file's listed download URL saves it the /content redirect (one GET a file).
            lister = partial(ctx.list_folder, select=None)
            for folder, dirs, files in walk_tree(lister, top, top, workers):
                rel = folder[len(top) :].strip("/") if top else folder
                for sub in dirs:
                    os.makedirs(paths.local_child(local, paths.join(rel, sub.name)), exist_ok=True)
                for item in files:
                    futures.append(
                        pool.submit(
                            downloader.download_file,
                            item.path,
                            paths.local_child(local, paths.join(rel, item.name)),
                            overwrite=overwrite,
                            progress=progress,
                            item=item.raw,
                            streams=streams,
                        )
                    )
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        results = _collect(futures)
    return sorted(results, key=lambda r: r.path)
