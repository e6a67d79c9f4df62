"""Reserving a download's disk space before its first byte: ``fallocate(2)`` on the temporary file.

A download knows its size before it starts, so its temporary file gets its blocks at once: a full disk fails the
download before any byte is fetched (``OSError`` ENOSPC naming the folder), instead of after it has moved most of
the file, and the file is laid out in one piece instead of block by block as bytes arrive.

Only the system call is used: where it is missing (not Linux) or the file system does not support it (some
network and FUSE file systems), nothing is reserved and the download goes on as before; glibc's
``posix_fallocate`` would instead emulate it by writing into every block, which on such file systems is slow.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
from typing import Any

__all__ = ["reserve_space"]

log = logging.getLogger("airflow_provider_onedrive.transfers")

_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV, errno.EPERM}
_fallocate: Any = None


def _load() -> Any:
    """libc's ``fallocate`` (or False where there is none), looked up once."""
    global _fallocate
    if _fallocate is None:
        _fallocate = False
        if os.name == "posix":
            try:  # the symbols already loaded into this process (libc among them): no ldconfig subprocess
                function = ctypes.CDLL(None, use_errno=True).fallocate
            except (OSError, AttributeError):
                pass
            else:
                function.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong)
                function.restype = ctypes.c_int
                _fallocate = function
    return _fallocate


def reserve_space(fd: int, size: int, where: str) -> bool:
    """Give the open file ``fd`` its ``size`` bytes of blocks (its size becomes ``size``); False if the file system
    cannot. Raises ``OSError`` (ENOSPC) when ``where`` has not enough free space."""
    function = _load()
    if size <= 0 or not function:
        return False
    if function(fd, 0, 0, size) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSPC, errno.EDQUOT):
        raise OSError(code, f"not enough free space in {where} for a download of {size} bytes")
    if code not in _UNSUPPORTED:
        log.debug("fallocate failed (%s); downloading without reserving space", errno.errorcode.get(code, code))
    return False
