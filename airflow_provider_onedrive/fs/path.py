"""``UPath`` for ``onedrive://`` URLs, registered with universal_pathlib (which Airflow's ObjectStoragePath wraps).

Without a registered class universal_pathlib falls back to a generic one and warns, in every task log, that the
filesystem "may not be tested". Paths behave the same; this class is the one the provider's tests exercise.
"""

from __future__ import annotations

from upath import UPath

__all__ = ["OneDrivePath"]


class OneDrivePath(UPath):
    """A path in a drive, ``/``-separated from the drive root: ``onedrive://[conn_id@]/folder/file.csv``."""

    __slots__ = ()
