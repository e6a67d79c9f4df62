"""State of unfinished upload sessions, so a rerun (or a retry on another worker) continues instead of starting over.

One record per (source file, destination, drive, account), in a store:

- :class:`UploadStateStore`: a local folder only the user can read (0700; files 0600, written atomically). The
  default; enough when retries run on the same machine (LocalExecutor).
- :class:`FsspecStateStore`: any fsspec URL that every worker reaches (a shared volume ``file:///mnt/shared/x``,
  a bucket ``s3://bucket/prefix``), for Celery and Kubernetes, where a retry runs elsewhere.
- the Airflow metadata DB (Variables, encrypted with the Fernet key when one is configured): built by the hook,
  ``hooks.upload_state.VariableStateStore``.

The uploadUrl inside a record is a credential: it is never logged, and a record is deleted as soon as its upload
commits, is cancelled, or turns out to be expired. Each record is written whole (a reader sees the old record or
the new one, never half), so concurrent writers of one entry are safe: the last complete write wins.
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
from typing import Any, Protocol

from airflow_provider_onedrive.errors import OneDriveConfigError

__all__ = [
    "FsspecStateStore",
    "SessionState",
    "SessionStateStore",
    "UploadStateStore",
    "default_state_dir",
    "state_key",
    "state_store_for",
    "usable_record",
]

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

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SessionState:
        """Parse a record; raises ValueError or TypeError for anything that is not one."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a session record")
        return cls(**data)


def _write_private(directory: str, name: str, data: bytes) -> None:
    """Write ``directory/name`` whole, mode 0600: a temporary file, fsync, then rename (readers never see half)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, os.path.join(directory, name))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def state_key(source_path: str, destination: str, *, drive_id: str, identity: str) -> str:
    """A record's name: source file, Graph host and path, resolved drive id and account, hashed."""
    material = "\0".join((source_path, destination, drive_id, identity))
    return hashlib.sha256(material.encode()).hexdigest()[:32]


class SessionStateStore(Protocol):
    """Where unfinished sessions are remembered: ``load`` returns None for a missing, unreadable or expired record
    (deleting the latter two); ``save`` writes a record whole; ``forget`` deletes one (missing is fine)."""

    def load(self, key: str) -> SessionState | None: ...

    def save(self, key: str, state: SessionState) -> None: ...

    def forget(self, key: str) -> None: ...


def usable_record(store: SessionStateStore, key: str, text: str | None, where: str) -> SessionState | None:
    """The record in ``text``; None (and the record deleted) when it is unreadable or its session expired."""
    if text is None:
        return None
    try:
        state = SessionState.from_json(text)
    except (ValueError, TypeError):
        log.warning("ignoring an unreadable upload state record in %s", where)
        store.forget(key)
        return None
    if state.expired():
        store.forget(key)
        return None
    return state


class UploadStateStore:
    """Records in a private local folder (the default store)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_state_dir()

    key = staticmethod(state_key)

    def __repr__(self) -> str:
        return f"UploadStateStore({str(self.directory)!r})"

    def _file(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (self.directory.stat().st_mode & 0o777) != 0o700:
            os.chmod(self.directory, 0o700)

    def load(self, key: str) -> SessionState | None:
        path = self._file(key)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError:
            text = ""
        return usable_record(self, key, text, str(path))

    def save(self, key: str, state: SessionState) -> None:
        """Write atomically with mode 0600 (a reader sees the old record or the new one, never half)."""
        self._ensure_dir()
        _write_private(str(self.directory), f"{key}.json", state.to_json().encode())

    def forget(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._file(key).unlink()

    def prune_expired(self) -> int:
        """Delete state files whose session has expired; returns how many were removed."""
        removed = 0
        if not self.directory.is_dir():
            return 0
        for path in self.directory.glob("*.json"):
            if self.load(path.stem) is None:  # an expired or unreadable record is deleted by load
                removed += 1
        return removed


class FsspecStateStore:
    """Records under an fsspec URL every worker reaches (``file:///mnt/shared/uploads``, ``s3://bucket/x``...).

    Each record is one object, written under a temporary name and moved into place where the file system can
    (local and network file systems), or written in one ``pipe`` (object stores write an object whole).
    Keep the location private: the records hold upload URLs, credentials until their sessions expire.

    :param url: the folder's URL.
    :param storage_options: passed to fsspec (credentials of the bucket, ...).
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        if "://" not in url:
            raise OneDriveConfigError(f"upload state URL {url!r} needs a scheme, e.g. file:///mnt/shared/uploads")
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self._local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    def __repr__(self) -> str:
        return f"FsspecStateStore({self.url!r})"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}.json"

    def load(self, key: str) -> SessionState | None:
        try:
            text = self.fs.cat_file(self._path(key)).decode()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError):
            text = ""
        return usable_record(self, key, text, f"{self.url}/{key}.json")

    def save(self, key: str, state: SessionState) -> None:
        data = state.to_json().encode()
        if not self._local:
            self.fs.pipe_file(self._path(key), data)
            return
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        _write_private(self.root, f"{key}.json", data)

    def forget(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))


def state_store_for(spec: str | None, *, state_dir: str | os.PathLike[str] | None = None) -> SessionStateStore:
    """The store a connection's ``upload_state`` names: ``local`` (default) or ``local:/abs/path``, or an fsspec
    URL (``file:///mnt/shared/uploads``, ``s3://bucket/prefix``). ``airflow`` (the metadata DB) is built by the
    hook."""
    if spec is None or spec == "local":
        return UploadStateStore(state_dir)
    if spec.startswith("local:"):
        return UploadStateStore(spec[len("local:") :])
    if "://" in spec:
        return FsspecStateStore(spec)
    raise OneDriveConfigError(
        f"upload_state {spec!r} is not local, local:/absolute/path, airflow, or a URL such as "
        "file:///mnt/shared/onedrive-uploads"
    )
