"""The ``airflow-onedrive`` command.

Each sub-command lives in its own module exposing ``register(subparsers)``; that function adds its parser and
sets ``func`` (called with the parsed arguments, returning an exit code). Modules are imported only when the
command line is built, and import nothing heavy at module level.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from airflow_provider_onedrive import __version__

#: Modules that contribute sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "airflow_provider_onedrive.commands.files",
    "airflow_provider_onedrive.commands.account",
    "airflow_provider_onedrive.commands.demo",
    "airflow_provider_onedrive.testing.command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-onedrive",
        description="Move files between Apache Airflow and Microsoft OneDrive / SharePoint, and run a local "
        "Microsoft Graph emulator for offline tests.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
