"""Globs, filters, and which folders to list: the one matching module of the provider (no Airflow, no HTTP).

The operators, the sensor, the trigger, the ``onedrive://`` filesystem and the CLI all parse patterns with
:class:`GlobPattern` and match with its regex, so a pattern selects the same items everywhere.

Glob semantics (paths are relative to the drive root, ``/`` separates folders):

- ``*`` matches any run of characters within one name (never ``/``); ``?`` one character; ``[abc]``, ``[a-z]``
  one character of the set, ``[!abc]`` (or ``[^abc]``) one character not in it. An unclosed ``[`` is literal.
- ``**`` as a whole segment matches any number of folders: ``data/**/x.csv`` matches ``data/x.csv`` and
  ``data/a/b/x.csv``. As the LAST segment it matches everything below (one or more levels), not the folder
  itself: ``data/**`` matches ``data/a`` and ``data/a/b.csv``, not ``data``; ``in/**/x/**`` does not match ``in/x``.
- Matching is case-insensitive by default, as OneDrive names are (``case_sensitive=True`` for exact case).
- The literal folders before the first wildcard are the base: only the base is listed, and only as deep as the
  pattern can reach (:attr:`GlobPattern.max_depth`).

The sensor and the trigger turn each driveItem into a compact dict with :func:`compact_item` and hand those to
:class:`FileCriteria`, so a poke and a deferred wait decide alike.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.paths import normalize, validate_name
from airflow_provider_onedrive.timestamps import parse_timestamp

__all__ = [
    "FileCriteria",
    "GlobPattern",
    "StabilityTracker",
    "compact_item",
    "has_literal",
    "has_magic",
    "parse_datetime",
    "segments_regex",
    "xcom_record",
]

_MAGIC = frozenset("*?[")


def has_magic(path: str) -> bool:
    """True when ``path`` holds a glob wildcard (``*``, ``?`` or ``[``)."""
    return any(c in _MAGIC for c in path)


def _translate_segment(segment: str) -> str:
    """Regex for one path segment: ``*`` and ``?`` never cross ``/``; ``[...]`` sets, ``[!...]`` negated."""
    out: list[str] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            while i + 1 < len(segment) and segment[i + 1] == "*":
                i += 1  # "a**b" inside a segment is "a*b"
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
                out.append(f"(?!/)[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def has_literal(segment: str) -> bool:
    """True when a glob segment names at least one literal character (``*.csv``: yes; ``?*``, ``[!~]*``: no)."""
    i = 0
    while i < len(segment):
        c = segment[i]
        if c in "*?":
            i += 1
            continue
        if c == "[":
            end = segment.find("]", i + 2)
            if end != -1:
                i = end + 1
                continue
        return True
    return False


@functools.lru_cache(maxsize=256)
def _compile(segments: tuple[str, ...], case_sensitive: bool) -> re.Pattern[str]:
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append("(?:[^/]+/)*[^/]+" if last else "(?:[^/]+/)*")
        else:
            parts.append(_translate_segment(segment) + ("" if last else "/"))
    return re.compile("".join(parts), 0 if case_sensitive else re.IGNORECASE)


def segments_regex(segments: tuple[str, ...] | list[str], *, case_sensitive: bool = False) -> re.Pattern[str]:
    """The compiled regex matching paths (relative to a pattern's base) against glob ``segments``."""
    return _compile(tuple(segments), case_sensitive)


def parse_datetime(value: datetime.datetime | str | None, *, what: str = "modified_after") -> datetime.datetime | None:
    """An aware UTC datetime from a datetime or ISO 8601 text (naive values are taken as UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parsed = parse_timestamp(value)
        if parsed is None:
            raise OneDriveValidationError(
                f"{what} {value!r} is not an ISO 8601 date-time (e.g. 2024-05-01T00:00:00+00:00 or "
                "{{ data_interval_start }})"
            )
        return parsed
    if not isinstance(value, datetime.datetime):
        raise OneDriveValidationError(f"{what} must be a datetime or ISO 8601 text, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


@dataclass(frozen=True)
class GlobPattern:
    """A remote path or glob split into the folder to list and the segments to match below it.

    ``incoming/*.csv`` lists ``incoming`` one level deep; ``data/**/x.csv`` walks ``data`` recursively;
    ``reports/q1.csv`` (no wildcard) is a single item looked up directly.
    """

    text: str
    base: str
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, pattern: str) -> GlobPattern:
        if not isinstance(pattern, str):
            raise OneDriveValidationError(f"path must be a string, got {type(pattern).__name__}")
        if not has_magic(pattern):
            path = normalize(pattern)
            if not path:
                raise OneDriveValidationError("path is the drive root; name a file, folder or glob below it")
            return cls(pattern, path, ())
        raw = pattern.strip()
        if raw.lower().startswith("onedrive://"):
            raw = raw[len("onedrive://") :]
        parts = raw.strip("/").split("/")
        first_magic = next(i for i, part in enumerate(parts) if has_magic(part))
        for part in parts[:first_magic]:
            validate_name(part, path=pattern)
        for part in parts[first_magic:]:
            if not part:
                raise OneDriveValidationError(f"empty segment in glob {pattern!r}: remove the doubled '/'")
        return cls(pattern, "/".join(parts[:first_magic]), tuple(parts[first_magic:]))

    @property
    def is_glob(self) -> bool:
        return bool(self.segments)

    @property
    def recursive(self) -> bool:
        """True when matching needs more than the base folder's direct children."""
        return len(self.segments) > 1 or "**" in self.segments

    @property
    def max_depth(self) -> int | None:
        """How many levels below the base can match (1 = the base's children); None = unbounded (``**``)."""
        if not self.segments:
            return 0
        return None if "**" in self.segments else len(self.segments)

    @property
    def sweeps_root(self) -> bool:
        """True for a glob at the drive root without one literal character (``*``, ``**``, ``?*``, ``[!~]*``,
        ``*/*``): it can match every item, so destructive operations refuse it."""
        return self.is_glob and not self.base and not any(has_literal(s) for s in self.segments)

    def regex(self, *, case_sensitive: bool = False) -> re.Pattern[str]:
        """The compiled regex of the segments, for paths relative to :attr:`base`."""
        return segments_regex(self.segments, case_sensitive=case_sensitive)

    def relative(self, path: str, *, case_sensitive: bool = False) -> str | None:
        """``path`` (drive-relative) relative to the base, or None when it is not below the base."""
        path = path.strip("/")
        if not self.base:
            return path
        prefix = f"{self.base}/"
        inside = path.startswith(prefix) if case_sensitive else path.lower().startswith(prefix.lower())
        return path[len(prefix) :] if inside else None

    def matches(self, path: str, *, case_sensitive: bool = False) -> bool:
        """True when the remote ``path`` (relative to the drive root) matches this pattern."""
        path = path.strip("/")
        if not self.is_glob:
            return path == self.base if case_sensitive else path.lower() == self.base.lower()
        rest = self.relative(path, case_sensitive=case_sensitive)
        return rest is not None and self.regex(case_sensitive=case_sensitive).fullmatch(rest) is not None


def compact_item(item: Any, *, parent: str | None = None) -> dict[str, Any]:
    """A small JSON-able dict describing a drive item (never its content): what sensors, triggers and the
    List operator hand to XCom.

    Accepts a Graph driveItem mapping (``parent`` = the folder path it was listed from) or the client's
    ``RemoteItem``. ``modified`` is the server's ``lastModifiedDateTime`` (when the item last changed in the
    drive), not the client-supplied file-system time, so freshness and stability checks cannot be fooled by
    preserved local timestamps.
    """
    if not isinstance(item, Mapping):
        raw = getattr(item, "raw", None) or {}
        record = _from_graph(raw, getattr(item, "path", "")) if raw else _from_attributes(item)
    else:
        name = item.get("name", "")
        path = f"{parent.strip('/')}/{name}".strip("/") if parent is not None else item.get("path", name)
        record = _from_graph(item, path)
    modified = record["modified"]
    if isinstance(modified, datetime.datetime):
        modified = modified.astimezone(datetime.UTC).isoformat()
    if isinstance(modified, str) and modified.endswith("+00:00"):
        modified = modified[: -len("+00:00")] + "Z"
    record["modified"] = modified
    return record


def xcom_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The public, compact form of a record (the eTag is for change detection only)."""
    return {k: v for k, v in record.items() if k != "etag"}


def _from_graph(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    hashes = (raw.get("file") or {}).get("hashes") or {}
    return {
        "path": path,
        "name": raw.get("name", ""),
        "size": int(raw.get("size") or 0),
        "modified": raw.get("lastModifiedDateTime"),
        "is_folder": "folder" in raw or "root" in raw,
        "id": raw.get("id"),
        "etag": raw.get("eTag"),
        "quick_xor_hash": hashes.get("quickXorHash"),
    }


def _from_attributes(item: Any) -> dict[str, Any]:
    return {
        "path": getattr(item, "path", ""),
        "name": getattr(item, "name", ""),
        "size": int(getattr(item, "size", 0) or 0),
        "modified": getattr(item, "modified", None),
        "is_folder": bool(getattr(item, "is_folder", False)),
        "id": getattr(item, "id", None),
        "etag": getattr(item, "etag", None),
        "quick_xor_hash": getattr(item, "quick_xor_hash", None),
    }


@dataclass
class StabilityTracker:
    """Remembers when each file was first seen with its current size and eTag.

    A file counts as stable once that pair has stayed unchanged for ``stable_for`` seconds, either as observed
    across pokes (this tracker) or by the server's last-modified time (works in reschedule mode too, where each
    poke is a new process).
    """

    stable_for: float
    _seen: dict[str, tuple[int, str | None, float]] = field(default_factory=dict)

    def is_stable(self, record: Mapping[str, Any], now: float) -> bool:
        """``now`` is epoch seconds (the caller's clock, injectable for tests)."""
        if self.stable_for <= 0:
            return True
        key = record["path"].lower()
        signature = (record["size"], record.get("etag"))
        seen = self._seen.get(key)
        if seen is None or seen[:2] != signature:
            self._seen[key] = (*signature, now)
            quiet_since = now
        else:
            quiet_since = seen[2]
        modified = parse_datetime(record.get("modified"), what="lastModifiedDateTime")
        if modified is not None:
            quiet_since = min(quiet_since, modified.timestamp())
        return now - quiet_since >= self.stable_for

    def forget_missing(self, present: Iterable[str]) -> None:
        """Drop files that are gone, so one that reappears starts its quiet period again."""
        keep = {p.lower() for p in present}
        for key in list(self._seen):
            if key not in keep:
                del self._seen[key]


@dataclass
class FileCriteria:
    """The sensor's conditions: a path or glob plus optional size, freshness and stability requirements.

    :param pattern: a remote path (``reports/q1.csv``) or glob (``incoming/*.csv``, ``data/**/*.parquet``).
    :param min_size: smallest acceptable size in bytes (``None``: any size, empty files included).
    :param modified_after: only files modified strictly after this moment count (a datetime or ISO 8601 text;
        parsed to an aware UTC datetime, also kept as ``cutoff``).
    :param stable_for: seconds a file's size and eTag must stay unchanged before it counts.
    :param case_sensitive: match names exactly (OneDrive itself is case-insensitive).
    """

    pattern: str
    min_size: int | None = None
    modified_after: datetime.datetime | str | None = None
    stable_for: float = 0.0
    case_sensitive: bool = False
    glob: GlobPattern = field(init=False)
    tracker: StabilityTracker = field(init=False)
    cutoff: datetime.datetime | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.glob = GlobPattern.parse(self.pattern)
        if self.min_size is not None and (not isinstance(self.min_size, int) or self.min_size < 0):
            raise OneDriveValidationError(f"min_size must be a non-negative integer of bytes, got {self.min_size!r}")
        self.modified_after = self.cutoff = parse_datetime(self.modified_after)
        if not isinstance(self.stable_for, int | float) or self.stable_for < 0:
            raise OneDriveValidationError(
                f"stable_for must be a non-negative number of seconds, got {self.stable_for!r}"
            )
        self.tracker = StabilityTracker(float(self.stable_for))

    def select(self, records: Iterable[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
        """The records that satisfy every condition, sorted by path (the sensor's XCom value)."""
        candidates = [r for r in records if self._wanted(r)]
        self.tracker.forget_missing(r["path"] for r in candidates)
        chosen = [xcom_record(r) for r in candidates if self._fresh_enough(r) and self.tracker.is_stable(r, now)]
        return sorted(chosen, key=lambda r: r["path"].lower())

    def _wanted(self, record: Mapping[str, Any]) -> bool:
        if not self.glob.matches(record["path"], case_sensitive=self.case_sensitive):
            return False
        if self.glob.is_glob and record.get("is_folder"):
            return False  # globs wait for files; a named path may be a folder
        return self.min_size is None or record.get("is_folder") or record["size"] >= self.min_size

    def _fresh_enough(self, record: Mapping[str, Any]) -> bool:
        if self.cutoff is None:
            return True
        modified = parse_datetime(record.get("modified"), what="lastModifiedDateTime")
        return modified is not None and modified > self.cutoff
