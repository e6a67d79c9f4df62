"""What every sub-command shares: where the connection comes from, exit codes, error reporting, progress bars.

A connection is taken, in this order, from ``--connection`` (JSON, or ``@file``; also the ``ONEDRIVE_CONNECTION``
environment variable), from ``--emulator-info`` (a file written by ``airflow-onedrive emulator``), or from
Airflow by ``--conn-id`` (environment variables, secrets backends, then the metadata DB).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from airflow_provider_onedrive.errors import (
    OneDriveAuthError,
    OneDriveConfigError,
    OneDriveError,
    OneDriveNotFoundError,
    OneDriveValidationError,
)

if TYPE_CHECKING:
    from airflow_provider_onedrive.config import ConnectionSettings
    from airflow_provider_onedrive.drive import OneDriveClient
    from airflow_provider_onedrive.token_stores import RefreshTokenStore
    from airflow_provider_onedrive.transfers.models import ProgressEvent

__all__ = [
    "EXIT_AUTH",
    "EXIT_FAILED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "ProgressBar",
    "Resolved",
    "add_connection_arguments",
    "load_connection_json",
    "resolve",
    "run_safely",
]

EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed at OneDrive / Graph, or the network
EXIT_USAGE = 2  # bad arguments or connection configuration (nothing was sent)
EXIT_AUTH = 3  # the identity platform refused the credentials
EXIT_NOT_FOUND = 4  # a path does not exist

CONNECTION_ENV = "ONEDRIVE_CONNECTION"


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose a connection, shared by every command that talks to OneDrive."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--conn-id",
        default="onedrive_default",
        help="Airflow connection id (default: onedrive_default); read from AIRFLOW_CONN_*, secrets backends or "
        "the metadata DB",
    )
    group.add_argument(
        "--connection",
        metavar="JSON|@FILE",
        help=f"a connection as JSON (the AIRFLOW_CONN_* JSON form), or @path to a file holding it; also read "
        f"from ${CONNECTION_ENV}. Needs no Airflow.",
    )
    group.add_argument(
        "--emulator-info",
        type=Path,
        metavar="FILE",
        help="use a connection from the info file written by 'airflow-onedrive emulator --info-file'",
    )
    group.add_argument(
        "--emulator-connection",
        default="app",
        metavar="KIND",
        help="which connection of the emulator info file: app, app_cert or delegated (default: app)",
    )


def load_connection_json(text: str) -> dict[str, Any]:
    """Parse a connection given as JSON text or ``@path``."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).expanduser().read_text()
        except OSError as exc:
            raise OneDriveConfigError(f"cannot read connection file {text[1:]!r}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OneDriveConfigError(f"--connection is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, dict):
        raise OneDriveConfigError("--connection must be a JSON object like the AIRFLOW_CONN_* JSON form")
    return value


@dataclass
class Resolved:
    """A connection ready to use: its settings, and ways to get a client or a token."""

    conn_id: str
    settings: ConnectionSettings
    client_factory: Callable[[], OneDriveClient]
    token_factory: Callable[[], str]
    hook: Any = None

    def client(self) -> OneDriveClient:
        return self.client_factory()


def _from_fields(conn_id: str, conn: dict[str, Any]) -> Resolved:
    from airflow_provider_onedrive.clients import drive_client, token_provider
    from airflow_provider_onedrive.config import ConnectionSettings
    from airflow_provider_onedrive.token_stores import store_for_settings

    conn_type = conn.get("conn_type")
    if conn_type not in (None, "onedrive"):
        raise OneDriveConfigError(f"connection {conn_id!r} has conn_type {conn_type!r}; expected 'onedrive'")
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra.strip() else {}
    settings = ConnectionSettings.from_connection_fields(conn_id, conn.get("login"), conn.get("password"), extra)
    store = _variable_store_of(settings) if settings.is_delegated and not settings.token_store else None
    provider = token_provider(settings, store=store or store_for_settings(settings, default="memory"))
    return Resolved(conn_id, settings, lambda: drive_client(settings, provider), provider.get_token)


def _variable_store_of(settings: ConnectionSettings) -> RefreshTokenStore | None:
    """Where Airflow keeps this delegated connection's newest token, when Airflow and its DB are here."""
    try:
        from airflow_provider_onedrive.hooks.onedrive import variable_store_descending_from
    except ImportError:
        return None
    return variable_store_descending_from(settings.refresh_token)


def resolve(args: argparse.Namespace) -> Resolved:
    """The connection the command line asks for (validated; nothing is sent yet)."""
    text = args.connection or os.environ.get(CONNECTION_ENV)
    if text:
        return _from_fields(args.conn_id, load_connection_json(text))
    if args.emulator_info:
        try:
            info = json.loads(Path(args.emulator_info).read_text())
        except (OSError, ValueError) as exc:
            raise OneDriveConfigError(f"cannot read emulator info file {str(args.emulator_info)!r}: {exc}") from None
        connections = info.get("connections") or {}
        if args.emulator_connection not in connections:
            raise OneDriveConfigError(
                f"emulator info has no connection {args.emulator_connection!r}; choose one of "
                f"{', '.join(sorted(connections)) or '(none)'}"
            )
        return _from_fields(args.conn_id, connections[args.emulator_connection])
    try:
        from airflow_provider_onedrive.hooks.onedrive import OneDriveHook
    except ImportError:
        raise OneDriveConfigError(
            "Airflow is not installed: pass --connection JSON (or set ONEDRIVE_CONNECTION) instead of --conn-id"
        ) from None
    hook = OneDriveHook(onedrive_conn_id=args.conn_id)
    settings = _airflow_settings(hook, args.conn_id)
    return Resolved(args.conn_id, settings, hook.get_conn, hook.get_token, hook=hook)


def _airflow_settings(hook: Any, conn_id: str) -> ConnectionSettings:
    from airflow_provider_onedrive.compat import AirflowNotFoundException

    try:
        return hook.get_settings()
    except AirflowNotFoundException:
        raise OneDriveConfigError(
            f"connection {conn_id!r} is not defined in Airflow; create it (UI, AIRFLOW_CONN_{conn_id.upper()}, "
            "or 'airflow-onedrive login') or pass --connection JSON"
        ) from None


def run_safely(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command, turning our errors into a one-line message on stderr and a documented exit code."""
    try:
        return func(args)
    except OneDriveAuthError as exc:
        print(f"error: authentication failed: {exc}", file=sys.stderr)
        return EXIT_AUTH
    except (OneDriveConfigError, OneDriveValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OneDriveNotFoundError as exc:
        print(f"error: not found: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except OneDriveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


class ProgressBar:
    """A one-line progress bar on a terminal (a plain line every few seconds when not a terminal)."""

    def __init__(self, stream: TextIO = sys.stderr, *, width: int = 30, enabled: bool = True) -> None:
        self.stream = stream
        self.width = width
        self.enabled = enabled
        self.tty = stream.isatty()
        self._last = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        if not self.enabled:
            return
        from airflow_provider_onedrive.transfers.progress import human_bytes

        now = time.monotonic()
        finished = event.total is not None and event.bytes_done >= event.total
        if not finished and now - self._last < (0.1 if self.tty else 5.0):
            return
        self._last = now
        fraction = event.fraction
        rate = f"{human_bytes(event.rate)}/s"
        if fraction is None:
            line = f"{event.path}: {human_bytes(event.bytes_done)} {rate}"
        else:
            filled = int(self.width * fraction)
            bar = "#" * filled + "-" * (self.width - filled)
            line = f"{event.path} [{bar}] {fraction:6.1%} {human_bytes(event.bytes_done)} {rate}"
        if self.tty:
            self.stream.write("\r" + line[:200] + ("\n" if finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
