"""File commands: ``ls``, ``get``, ``put``, ``rm``, ``mkdir``; ``share`` (a sharing link) and ``shared`` (items
shared with the signed-in user). ``--share URL`` makes ``ls``, ``get``, ``put`` and ``mkdir`` work below a shared
file or folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from airflow_provider_onedrive.commands.common import (
    EXIT_OK,
    EXIT_USAGE,
    ProgressBar,
    add_connection_arguments,
    resolve,
    run_safely,
)
from airflow_provider_onedrive.matching import has_magic
from airflow_provider_onedrive.transfers.common import CONFLICT_BEHAVIOURS
from airflow_provider_onedrive.transfers.sharing import LINK_SCOPES, LINK_TYPES

__all__ = ["register"]


def register(subparsers: Any) -> None:
    ls = subparsers.add_parser(
        "ls",
        help="list a folder",
        description="List a OneDrive folder (the drive root by default). Paths are relative to the drive root; "
        "'onedrive://' prefixes are accepted. A glob pattern ('inbox/**/*.csv') lists what matches.",
    )
    ls.add_argument("path", nargs="?", default="", help="folder or glob pattern (default: the drive root)")
    ls.add_argument("-R", "--recursive", action="store_true", help="list subfolders too")
    ls.add_argument("-l", "--long", action="store_true", help="show size, modification time and quickXorHash")
    ls.add_argument("--json", action="store_true", help="print one JSON object per item")
    _add_share_argument(ls)
    add_connection_arguments(ls)
    ls.set_defaults(func=lambda a: run_safely(_ls, a))

    get = subparsers.add_parser(
        "get",
        help="download a file or folder",
        description="Download a file (verified by size and quickXorHash, written atomically) or, with -r, a "
        "folder. LOCAL defaults to the remote name in the current directory.",
    )
    get.add_argument("remote", nargs="?", default="", help="remote file or folder ('' with --share: the shared item)")
    get.add_argument("local", nargs="?", help="local file or folder")
    get.add_argument("-r", "--recursive", action="store_true", help="download a folder with its contents")
    get.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    get.add_argument(
        "--streams",
        type=int,
        help="ranged streams for each file of 64 MiB or more (1-16; default: the connection's, else 4; 1 = off)",
    )
    _add_share_argument(get)
    add_connection_arguments(get)
    get.set_defaults(func=lambda a: run_safely(_get, a))

    put = subparsers.add_parser(
        "put",
        help="upload a file or folder",
        description="Upload a file (resumable upload session above the simple-upload threshold, verified by "
        "quickXorHash) or, with -r, a folder. REMOTE ending in '/' means 'into this folder'. Existing files "
        "are never overwritten unless --conflict replace is given.",
    )
    put.add_argument("local", help="local file or folder")
    put.add_argument("remote", nargs="?", default="", help="remote path or folder/ (default: the drive root)")
    put.add_argument("-r", "--recursive", action="store_true", help="upload a folder with its contents")
    put.add_argument(
        "--conflict",
        choices=CONFLICT_BEHAVIOURS,
        default="fail",
        help="when the remote name exists: fail (default; identical content counts as done), replace, rename",
    )
    put.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    _add_share_argument(put)
    add_connection_arguments(put)
    put.set_defaults(func=lambda a: run_safely(_put, a))

    rm = subparsers.add_parser(
        "rm",
        help="delete files or folders (to the recycle bin)",
        description="Delete items. They go to the drive's recycle bin unless --permanent (Business/SharePoint "
        "only). Folders need -r. The drive root is never deleted.",
    )
    rm.add_argument("paths", nargs="+", help="remote paths or glob patterns")
    rm.add_argument("-r", "--recursive", action="store_true", help="allow deleting folders with their contents")
    rm.add_argument("--missing-ok", action="store_true", help="do not fail on paths that do not exist")
    rm.add_argument("--permanent", action="store_true", help="skip the recycle bin (Business/SharePoint)")
    add_connection_arguments(rm)
    rm.set_defaults(func=lambda a: run_safely(_rm, a))

    mkdir = subparsers.add_parser(
        "mkdir",
        help="create a folder",
        description="Create a folder and any missing parents. An existing folder is fine; an existing file "
        "with that name is an error.",
    )
    mkdir.add_argument("path", help="remote folder path")
    _add_share_argument(mkdir)
    add_connection_arguments(mkdir)
    mkdir.set_defaults(func=lambda a: run_safely(_mkdir, a))

    share = subparsers.add_parser(
        "share",
        help="create (or get back) a sharing link for a file or folder",
        description="Create a sharing link with Graph's createLink and print its URL. Asking again for the same "
        "type and scope prints the same link. An anonymous link is a bearer credential: anyone with the URL "
        "gets the item. See docs/sharing.md.",
    )
    share.add_argument("path", help="remote file or folder")
    share.add_argument("--type", choices=LINK_TYPES, default="view", help="view (default), edit or embed")
    share.add_argument("--scope", choices=LINK_SCOPES, help="anonymous, organization or users (default: the org's)")
    share.add_argument("--expires", metavar="ISO8601", help="when the link stops working, e.g. 2030-01-31T00:00:00Z")
    share.add_argument(
        "--recipient", action="append", dest="recipients", metavar="EMAIL", help="a person, for --scope users"
    )
    share.add_argument("--json", action="store_true", help="print the whole link as JSON")
    add_connection_arguments(share)
    share.set_defaults(func=lambda a: run_safely(_share, a))

    shared = subparsers.add_parser(
        "shared",
        help="list items shared with the signed-in user (delegated connections)",
        description="List /me/drive/sharedWithMe. Delegated connections only; Microsoft has deprecated this API "
        "(it may return fewer items, or none): see docs/sharing.md.",
    )
    shared.add_argument("--json", action="store_true", help="print one JSON object per item")
    add_connection_arguments(shared)
    shared.set_defaults(func=lambda a: run_safely(_shared, a))


def _add_share_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--share",
        metavar="URL",
        help="work below a shared file or folder: a sharing URL (https://...) or share id (s!...); paths are "
        "then relative to it",
    )


def _client(args: argparse.Namespace) -> Any:
    client = resolve(args).client()
    share = getattr(args, "share", None)
    return client.for_share(share) if share else client


def _ls(args: argparse.Namespace) -> int:
    client = _client(args)
    items = iter(client.glob(args.path)) if has_magic(args.path) else client.ls(args.path, recursive=args.recursive)
    for item in items:
        if args.json:
            print(json.dumps(item.to_dict(), default=str))
        elif args.long:
            modified = item.modified.strftime("%Y-%m-%d %H:%M:%S") if item.modified else "-"
            kind = "d" if item.is_folder else "-"
            digest = item.quick_xor_hash or ""
            print(f"{kind} {item.size:>12} {modified} {digest:28} {item.path}{'/' if item.is_folder else ''}")
        else:
            print(f"{item.path}{'/' if item.is_folder else ''}")
    return EXIT_OK


def _get(args: argparse.Namespace) -> int:
    from airflow_provider_onedrive.errors import OneDriveValidationError

    client = resolve(args).client()
    remote_name = args.remote.rstrip("/").rsplit("/", 1)[-1]
    if args.share:
        shared = client.resolve_share(args.share)
        client = client.for_share(shared)
        remote_name = remote_name or shared.item.raw.get("name") or "onedrive"
    elif not args.remote:
        raise OneDriveValidationError("name the remote file or folder to download (or give --share URL)")
    bar = ProgressBar(enabled=not args.no_progress)
    local = Path(args.local) if args.local else Path(remote_name)
    if args.recursive:
        results = client.download_folder(args.remote, local, progress=bar, streams=args.streams)
        total = sum(r.size for r in results)
        print(f"downloaded {len(results)} files ({total} bytes) into {local}")
        return EXIT_OK
    if local.is_dir():
        local = local / remote_name
    result = client.download_file(args.remote, local, progress=bar, streams=args.streams)
    print(f"downloaded {result.path} -> {result.local_path} ({result.size} bytes, quickXorHash {result.hash})")
    return EXIT_OK


def _put(args: argparse.Namespace) -> int:
    source = Path(args.local)
    if not source.exists():
        print(f"error: local path {str(source)!r} does not exist", file=sys.stderr)
        return EXIT_USAGE
    if source.is_dir() and not args.recursive:
        print(f"error: {str(source)!r} is a folder; use -r to upload it with its contents", file=sys.stderr)
        return EXIT_USAGE
    client = _client(args)
    bar = ProgressBar(enabled=not args.no_progress)
    if source.is_dir():
        remote = args.remote.rstrip("/") or source.name
        results = client.upload_folder(source, remote, conflict=args.conflict, progress=bar)
        for result in results:
            print(f"{result.status:9} {result.path} ({result.size} bytes)")
        return EXIT_OK
    remote = args.remote
    if not remote or remote.endswith("/"):
        remote = f"{remote}{source.name}"
    result = client.upload_file(source, remote, conflict=args.conflict, progress=bar)
    print(f"{result.status} {result.path} ({result.size} bytes, quickXorHash {result.hash})")
    return EXIT_OK


def _rm(args: argparse.Namespace) -> int:
    from airflow_provider_onedrive.errors import OneDriveNotFoundError, OneDriveValidationError

    client = resolve(args).client()
    targets: list[str] = []
    for path in args.paths:
        if has_magic(path):
            matches = client.glob(path)
        else:
            try:
                matches = [client.info(path)]
            except OneDriveNotFoundError:
                if args.missing_ok:
                    continue
                raise
        for item in matches:
            if item.is_folder and not args.recursive:
                raise OneDriveValidationError(f"{item.path!r} is a folder; use -r to delete it with its contents")
            targets.append(item.path)
    deleted = client.delete(targets, missing_ok=args.missing_ok, permanent=args.permanent)
    where = "permanently" if args.permanent else "to the recycle bin"
    for path in deleted:
        print(f"deleted {path} ({where})")
    return EXIT_OK


def _mkdir(args: argparse.Namespace) -> int:
    item = _client(args).mkdir(args.path, parents=True, exist_ok=True)
    print(f"folder {item.path}/ ready (id {item.id})")
    return EXIT_OK


def _share(args: argparse.Namespace) -> int:
    from airflow_provider_onedrive.transfers.sharing import check_link_options

    check_link_options(type=args.type, scope=args.scope, expires=args.expires, recipients=args.recipients)
    link = (
        resolve(args)
        .client()
        .create_link(args.path, type=args.type, scope=args.scope, expires=args.expires, recipients=args.recipients)
    )
    if args.json:
        print(json.dumps(link.to_dict()))
    else:
        what = "created" if link.created else "existing"
        print(link.url)
        print(f"({what} {link.type} link, scope {link.scope or 'default'}, permission {link.id})", file=sys.stderr)
    return EXIT_OK


def _shared(args: argparse.Namespace) -> int:
    from airflow_provider_onedrive.transfers.sharing import remote_items

    for record in remote_items(resolve(args).client().shared_with_me()):
        if args.json:
            print(json.dumps(record))
        else:
            kind = "d" if record["is_folder"] else "-"
            print(f"{kind} {record['size']:>12} {record['drive_id']} {record['id']} {record['name']}")
    return EXIT_OK
