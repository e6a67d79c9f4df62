"""``[core] hostname_callable`` of the deployment: a worker names itself (two machines on one loopback)."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """The worker's name from ``ONEDRIVE_DEPLOY_WORKER``; other processes use the machine's name."""
    return os.environ.get("ONEDRIVE_DEPLOY_WORKER") or socket.getfqdn()
