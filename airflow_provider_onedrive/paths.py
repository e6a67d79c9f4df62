"""Remote path normalisation, validation and per-segment encoding.

``reports/q1.csv``, ``/reports/q1.csv`` and ``onedrive://reports/q1.csv`` all mean the same item, relative to
the drive root. Names that OneDrive or SharePoint refuse are rejected here, before any request is sent, and each
segment is percent-encoded on its own (never the whole URL) so any valid name round-trips byte for byte.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_onedrive.errors import OneDriveValidationError

__all__ = [
    "MAX_PATH_LENGTH",
    "drive_part",
    "encode_path",
    "item_path",
    "join",
    "normalize",
    "parent_and_name",
    "validate_name",
]

MAX_PATH_LENGTH = 400
#: Longest item name OneDrive and SharePoint accept, in characters.
MAX_NAME_LENGTH = 255
_FORBIDDEN_CHARS = set('"*:<>?/\\|')
_RESERVED_NAMES = {".lock", "con", "prn", "aux", "nul", "desktop.ini"} | {
    f"{prefix}{n}" for prefix in ("com", "lpt") for n in range(10)
}
_SCHEME = re.compile(r"^onedrive://", re.IGNORECASE)


def validate_name(name: str, *, path: str | None = None) -> None:
    """Raise OneDriveValidationError if OneDrive/SharePoint would refuse ``name`` as an item name."""
    where = f" in path {path!r}" if path is not None else ""
    if not name:
        raise OneDriveValidationError(f"empty path segment{where}: remove the doubled or trailing '/'")
    if name in (".", ".."):
        raise OneDriveValidationError(
            f"'{name}' segment{where}: paths are relative to the drive root, write them without '.' or '..'"
        )
    bad = sorted({c for c in name if c in _FORBIDDEN_CHARS or ord(c) < 32 or 0x7F <= ord(c) < 0xA0})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise OneDriveValidationError(
            f"name {name!r}{where} contains {shown}, which OneDrive does not allow in names "
            '(forbidden: " * : < > ? / \\ | and control characters)'
        )
    if len(name) > MAX_NAME_LENGTH:
        raise OneDriveValidationError(
            f"name {name[:40]!r}...{where} is {len(name)} characters; OneDrive allows at most {MAX_NAME_LENGTH}"
        )
    if name != name.strip(" "):
        raise OneDriveValidationError(f"name {name!r}{where} starts or ends with a space, which OneDrive refuses")
    if name.endswith("."):
        raise OneDriveValidationError(f"name {name!r}{where} ends with '.', which OneDrive refuses")
    lowered = name.lower()
    if lowered in _RESERVED_NAMES:
        raise OneDriveValidationError(f"name {name!r}{where} is reserved by OneDrive; choose another name")
    if lowered.startswith("~$"):
        raise OneDriveValidationError(f"name {name!r}{where} starts with '~$', which OneDrive refuses")
    if "_vti_" in lowered:
        raise OneDriveValidationError(f"name {name!r}{where} contains '_vti_', which OneDrive refuses")


def check_listed_name(name: Any, *, folder: str = "") -> str:
    """A name the server returned, checked before it becomes part of any path: one non-empty segment, not
    ``.``/``..``, without ``/``, ``\\``, ``:`` or control characters. (Looser than :func:`validate_name`:
    listings may hold items OneDrive creates itself, such as ``~$`` lock files.)"""
    where = folder or "(drive root)"
    if not isinstance(name, str) or not name:
        raise OneDriveValidationError(f"an item listed in {where} has no name")
    if name in (".", "..") or any(c in "/\\:" or ord(c) < 32 or ord(c) == 127 for c in name):
        raise OneDriveValidationError(
            f"an item listed in {where} is named {name!r}, which no OneDrive item can be (a path separator, "
            "'..', ':' or a control character); it is not used as a path"
        )
    return name


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased: what must match before a bearer token is sent there."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def local_child(root: str, relative: str) -> str:
    """The local path of the remote ``relative`` path (``a/b.csv``) under the directory ``root``, refused unless it
    stays inside ``root``: checked before anything is created, whatever names the server sent."""
    segments = [check_listed_name(segment) for segment in relative.split("/")] if relative else []
    base = os.path.abspath(root)
    target = os.path.normpath(os.path.join(base, *segments))
    if os.path.commonpath([base, target]) != base:
        raise OneDriveValidationError(f"refusing to write {relative!r} outside the destination {root!r}")
    return target


def normalize(path: str | None) -> str:
    """Return the canonical form of a remote path: no scheme, no leading/trailing '/', '' for the root.

    :raises OneDriveValidationError: for a segment OneDrive refuses, '.'/'..', empty segments, or a path over
        400 characters.
    """
    if path is None:
        return ""
    if not isinstance(path, str):
        raise OneDriveValidationError(f"remote path must be a string, got {type(path).__name__}")
    original = path
    path = _SCHEME.sub("", path)
    path = path.strip("/")
    if not path:
        return ""
    for segment in path.split("/"):
        validate_name(segment, path=original)
    if len(path) + 1 > MAX_PATH_LENGTH:
        raise OneDriveValidationError(
            f"path {original[:60]!r}... is {len(path) + 1} characters; OneDrive allows at most {MAX_PATH_LENGTH}"
        )
    return path


def join(*parts: str) -> str:
    """Join remote path parts and normalise the result."""
    return normalize("/".join(p.strip("/") for p in parts if p and p.strip("/")))


def parent_and_name(path: str) -> tuple[str, str]:
    """Split a normalised path into its parent ('' for the root) and its last segment."""
    path = normalize(path)
    if not path:
        raise OneDriveValidationError("the drive root has no parent or name")
    parent, _, name = path.rpartition("/")
    return parent, name


def encode_path(path: str) -> str:
    """Percent-encode each segment of a normalised path (everything but RFC 3986 unreserved characters)."""
    return "/".join(quote(segment, safe="-._~") for segment in path.split("/"))


def drive_part(base: str) -> tuple[str, str | None]:
    """Split a drive base into the drive (``drives/abc``) and the item it is rooted at, if any.

    ``drives/abc/items/01XY`` (a shared folder addressed as the root of a client) gives
    ``("drives/abc", "01XY")``; every other base gives ``(base, None)``.
    """
    base = base.strip("/")
    head, sep, item_id = base.rpartition("/items/")
    if sep and item_id and "/" not in item_id and head:
        return head, item_id
    return base, None


def item_path(drive_base: str, path: str, suffix: str = "") -> str:
    """Graph path of an item addressed by its path, relative to the Graph base URL.

    ``item_path("drives/abc", "a b/c.csv", "content")`` -> ``drives/abc/root:/a%20b/c.csv:/content``;
    the root is addressed as ``drives/abc/root`` (``.../root/children`` with a suffix). A base rooted at an
    item (``drives/abc/items/01XY``, a shared folder) addresses paths below that item:
    ``drives/abc/items/01XY:/a%20b/c.csv:/content``.
    """
    path = normalize(path)
    base = drive_base.strip("/")
    root = base if drive_part(base)[1] is not None else f"{base}/root"
    if not path:
        return f"{root}/{suffix}" if suffix else root
    encoded = encode_path(path)
    return f"{root}:/{encoded}:/{suffix}" if suffix else f"{root}:/{encoded}"
