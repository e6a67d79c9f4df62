"""Private on-disk state of unfinished upload sessions, so a rerun continues instead of starting over.

One JSON file per (source file, destination) pair, in a directory only the user can read (0700; files 0600,
written atomically). The uploadUrl inside is a credential: it is never logged, and a state file is deleted as
soon as its upload commits, is cancelled, or turns out to be expired.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SessionState", "UploadStateStore", "default_state_dir"]

log = logging.getLogger("airflow_provider_onedrive.transfers.state")

#: 2: states name the drive id and the account (tenant/object id) that created the session.
_VERSION = 2


def default_state_dir() -> Path:
    """``$XDG_CACHE_HOME/airflow-provider-onedrive/uploads`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "airflow-provider-onedrive" / "uploads"


@dataclass
class SessionState:
    """What is needed to continue an upload session from another process, and whose session it is."""

    upload_url: str = field(repr=False)  # a credential
    size: int
    fragment_size: int
    source_path: str
    source_mtime_ns: int
    destination: str
    conflict: str
    created: float
    expires: float | None
    drive_id: str = ""
    identity: str = ""
    version: int = _VERSION

    def matches(self, *, size: int, mtime_ns: int, conflict: str) -> bool:
        """True when the source file is unchanged and the upload asks for the same conflict behaviour."""
        return (
            self.version == _VERSION
            and self.size == size
            and self.source_mtime_ns == mtime_ns
            and self.conflict == conflict
        )

    def owned_by(self, *, drive_id: str, identity: str) -> bool:
        """True when the session was created in this drive by this account (resuming it lands the file there)."""
        return self.version == _VERSION and self.drive_id == drive_id and self.identity == identity

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (now or time.time()) >= self.expires


class UploadStateStore:
    """Load, save and forget :class:`SessionState` records keyed by source and destination."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_state_dir()

    @staticmethod
    def key(source_path: str, destination: str, *, drive_id: str, identity: str) -> str:
        """The record's name: source file, Graph host and path, resolved drive id and account, hashed."""
        material = "\0".join((source_path, destination, drive_id, identity))
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def _file(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (self.directory.stat().st_mode & 0o777) != 0o700:
            os.chmod(self.directory, 0o700)

    def load(self, key: str) -> SessionState | None:
        path = self._file(key)
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return SessionState(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            log.warning("ignoring unreadable upload state file %s", path)
            self.forget(key)
            return None

    def save(self, key: str, state: SessionState) -> None:
        """Write atomically with mode 0600 (a reader sees the old record or the new one, never half)."""
        self._ensure_dir()
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w") as handle:
                os.fchmod(handle.fileno(), 0o600)
                json.dump(asdict(state), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._file(key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def forget(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._file(key).unlink()

    def prune_expired(self) -> int:
        """Delete state files whose session has expired; returns how many were removed."""
        removed = 0
        if not self.directory.is_dir():
            return 0
        now = time.time()
        for path in self.directory.glob("*.json"):
            state = self.load(path.stem)
            if state is not None and state.expired(now):
                self.forget(path.stem)
                removed += 1
        return removed
