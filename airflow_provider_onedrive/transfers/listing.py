"""Listing helpers: the ``$select`` we ask for, and concurrent tree walks (globs live in :mod:`..matching`).

Walks list folders concurrently (a bounded pool, breadth-first, results in discovery order); a folder whose
``childCount`` is 0 is not listed at all, and folders deeper than ``max_depth`` are not listed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from airflow_provider_onedrive.transfers.models import RemoteItem

__all__ = ["LIST_SELECT", "walk_tree"]

#: Fields every listing asks for (what RemoteItem and the transfer engine use; not downloadUrl).
LIST_SELECT = (
    "id,name,size,eTag,cTag,createdDateTime,lastModifiedDateTime,webUrl,file,folder,fileSystemInfo,"
    "parentReference,root,package"
)

Lister = Callable[[RemoteItem | str], list[RemoteItem]]


def walk_tree(
    list_folder: Lister, top: RemoteItem | str, top_path: str, max_workers: int, max_depth: int | None = None
) -> Iterator[tuple[str, list[RemoteItem], list[RemoteItem]]]:
    """Yield ``(folder path, subfolders, files)`` for ``top`` and every folder below it, listing concurrently.

    :param max_depth: list at most this many levels (1 = ``top``'s children only); None = the whole tree.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="onedrive-walk")
    pending: deque[tuple[str, int, Future[list[RemoteItem]] | None]] = deque()
    try:
        pending.append((top_path, 1, pool.submit(list_folder, top)))
        while pending:
            folder, depth, future = pending.popleft()
            items = future.result() if future is not None else []
            dirs = [i for i in items if i.is_folder]
            files = [i for i in items if not i.is_folder]
            if max_depth is None or depth < max_depth:
                for sub in dirs:
                    empty = sub.child_count == 0
                    pending.append((sub.path, depth + 1, None if empty else pool.submit(list_folder, sub)))
            yield folder, dirs, files
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
