"""``airflow-onedrive emulator``: run the Graph emulator in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``emulator`` sub-command."""
    parser = subparsers.add_parser(
        "emulator",
        help="run a local Microsoft Graph + identity emulator for offline tests",
        description="Serve a local Microsoft Graph (drive API) and identity platform on loopback until "
        "interrupted. Prints (and with --info-file writes) a JSON document with the URLs, the CA bundle and "
        "ready-made Airflow connections.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port of the https listener (default: a free one)")
    parser.add_argument("--graph-http", action="store_true", help="serve Graph over plain HTTP on a second port")
    parser.add_argument("--graph-port", type=int, default=0, help="port of the plain-HTTP Graph listener")
    parser.add_argument("--mode", choices=("business", "personal"), default="business")
    parser.add_argument("--tenant", default="contoso", help="tenant name (domain NAME.onmicrosoft.com)")
    parser.add_argument("--user", action="append", dest="users", metavar="UPN", help="a user (repeatable)")
    parser.add_argument("--info-file", type=Path, help="write the info document (JSON, mode 0600) here")
    parser.add_argument("--faults", type=Path, help="JSON file with a list of fault rules")
    parser.add_argument("--seed", type=int, default=0, help="seed of ids and of probabilistic faults")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any emulator setting, VALUE as JSON (e.g. --set token_lifetime=60 --set honor_range=false)",
    )
    parser.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "graph_tls": not args.graph_http,
        "graph_port": args.graph_port,
        "mode": args.mode,
        "tenant": args.tenant,
        "seed": args.seed,
    }
    if args.users:
        overrides["users"] = tuple(args.users)
    for item in args.set:
        name, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"airflow-onedrive emulator: --set expects NAME=VALUE, got {item!r}")
        try:
            overrides[name.strip()] = json.loads(raw)
        except ValueError:
            overrides[name.strip()] = raw
    return overrides


def _temp_suffix() -> str:
    """Random part of the info file's temporary name (a function so tests can force a collision)."""
    return secrets.token_hex(8)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600, never following a symlink someone planted.

    The temporary file gets an unpredictable name in the same directory and is created with O_EXCL and
    O_NOFOLLOW (an existing file or symlink of that name makes us pick another name); it is fsynced, then
    ``os.replace``-d over ``path``, which replaces a symlink at ``path`` itself rather than writing through it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{_temp_suffix()}.tmp")
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(f"could not create a temporary file next to {path}")
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable where the platform allows opening a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def run(args: argparse.Namespace) -> int:
    """Start the emulator, publish its info document, and serve until SIGINT/SIGTERM; returns 0."""
    from airflow_provider_onedrive.testing import GraphEmulator
    from airflow_provider_onedrive.testing.faults import read_rules

    try:
        rules = read_rules(args.faults) if args.faults else []
        emulator = GraphEmulator(fault_rules=rules, **_overrides(args))
    except (OSError, TypeError, ValueError) as exc:
        print(f"airflow-onedrive emulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with emulator:
        document = json.dumps(emulator.info(), indent=2)
        if args.info_file:
            _write_private(args.info_file, document + "\n")
        print(document, flush=True)
        print(
            f"Graph emulator serving {emulator.graph_url} (identity {emulator.authority_host}); Ctrl-C to stop.",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    if args.info_file:
        args.info_file.unlink(missing_ok=True)
    print("Graph emulator stopped.", file=sys.stderr, flush=True)
    return 0
