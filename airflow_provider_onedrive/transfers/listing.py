"""Listing helpers: the ``$select`` we ask for, concurrent tree walks, and glob patterns.

Walks list folders concurrently (a bounded pool, breadth-first, results in discovery order); a folder whose
``childCount`` is 0 is not listed at all. Glob patterns support ``*``, ``?``, ``[...]`` (``[!...]`` negates)
and ``**`` (any number of folders); matching is case-insensitive by default, as OneDrive names are.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.transfers.models import RemoteItem

__all__ = ["LIST_SELECT", "compile_glob", "split_glob", "walk_tree"]

#: Fields every listing asks for (what RemoteItem and the transfer engine use; not downloadUrl).
LIST_SELECT = (
    "id,name,size,eTag,cTag,createdDateTime,lastModifiedDateTime,webUrl,file,folder,fileSystemInfo,"
    "parentReference,root,package"
)
_MAGIC = re.compile(r"[*?\[]")

Lister = Callable[[RemoteItem | str], list[RemoteItem]]


def walk_tree(
    list_folder: Lister, top: RemoteItem | str, top_path: str, max_workers: int
) -> Iterator[tuple[str, list[RemoteItem], list[RemoteItem]]]:
    """Yield ``(folder path, subfolders, files)`` for ``top`` and every folder below it, listing concurrently."""
    pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="onedrive-walk")
    pending: deque[tuple[str, Future[list[RemoteItem]] | None]] = deque()
    try:
        pending.append((top_path, pool.submit(list_folder, top)))
        while pending:
            folder, future = pending.popleft()
            items = future.result() if future is not None else []
            dirs = [i for i in items if i.is_folder]
            files = [i for i in items if not i.is_folder]
            for sub in dirs:
                empty = sub.child_count == 0
                pending.append((sub.path, None if empty else pool.submit(list_folder, sub)))
            yield folder, dirs, files
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def has_magic(text: str) -> bool:
    return bool(_MAGIC.search(text))


def split_glob(pattern: str) -> tuple[str, list[str]]:
    """Split a pattern into its literal leading folders and the remaining segments.

    ``reports/2024/*.csv`` -> ``("reports/2024", ["*.csv"])``.
    """
    text = re.sub(r"^onedrive://", "", pattern, flags=re.IGNORECASE).strip("/")
    if not text:
        raise OneDriveValidationError("empty glob pattern")
    segments = text.split("/")
    if any(not s for s in segments):
        raise OneDriveValidationError(f"glob pattern {pattern!r} has an empty segment")
    literal: list[str] = []
    for segment in segments:
        if has_magic(segment):
            break
        literal.append(segment)
    return "/".join(literal), segments[len(literal) :]


def _translate_segment(segment: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < len(segment) and segment[j] in "!^":
                j += 1
            if j < len(segment) and segment[j] == "]":
                j += 1
            while j < len(segment) and segment[j] != "]":
                j += 1
            if j >= len(segment):
                out.append(re.escape(c))
            else:
                body = segment[i + 1 : j].replace("\\", "\\\\")
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_glob(segments: list[str], *, case_sensitive: bool = False) -> re.Pattern[str]:
    """A regex matching drive-relative paths (relative to the literal base) against glob ``segments``."""
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".*" if last else "(?:[^/]+/)*")
        else:
            parts.append(_translate_segment(segment) + ("" if last else "/"))
    return re.compile("".join(parts), 0 if case_sensitive else re.IGNORECASE)


def compile_segment(segment: str, *, case_sensitive: bool = False) -> re.Pattern[str]:
    return re.compile(_translate_segment(segment), 0 if case_sensitive else re.IGNORECASE)
