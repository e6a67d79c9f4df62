"""Account commands: ``login`` (device code), ``token``, ``test``, ``revoke``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import quote

from airflow_provider_onedrive.commands.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_connection_arguments,
    resolve,
    run_safely,
)
from airflow_provider_onedrive.config import DELEGATED_SCOPES

__all__ = ["build_login_connection", "register"]

DEFAULT_DELEGATED_SCOPES = " ".join(DELEGATED_SCOPES)


def register(subparsers: Any) -> None:
    login = subparsers.add_parser(
        "login",
        help="sign in with a device code and create a delegated connection",
        description="Delegated sign-in (device-code flow): prints a code and a URL, waits until you sign in on "
        "any device, then stores an 'onedrive' connection holding the refresh token in the Airflow metadata "
        "DB, or prints it as AIRFLOW_CONN_* JSON or URI for environment variables and secrets backends.",
    )
    login.add_argument("--client-id", required=True, help="Application (client) ID of a public-client app")
    login.add_argument(
        "--tenant",
        default="organizations",
        help="tenant id or domain; 'organizations' (work/school, default), 'consumers' (personal), 'common'",
    )
    login.add_argument("--conn-id", default="onedrive_default", help="connection id to create or update")
    login.add_argument("--scopes", default=DEFAULT_DELEGATED_SCOPES, help=f"default: {DEFAULT_DELEGATED_SCOPES}")
    login.add_argument("--cloud", choices=("global", "us_gov", "us_gov_dod", "china"), default="global")
    login.add_argument("--authority-host", help="identity platform base URL (overrides --cloud)")
    login.add_argument("--graph-url", help="Graph base URL ending in /v1.0 (overrides --cloud)")
    login.add_argument("--ca-bundle", help="CA bundle (PEM) for TLS verification")
    login.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the sign-in (default 600)")
    login.add_argument(
        "--output",
        choices=("auto", "db", "json", "uri"),
        default="auto",
        help="db: store in the Airflow metadata DB; json/uri: print for AIRFLOW_CONN_* or a secrets backend; "
        "auto (default): the DB when Airflow and its DB are available, else json",
    )
    login.set_defaults(func=lambda a: run_safely(_login, a))

    token = subparsers.add_parser(
        "token",
        help="print a short-lived Graph access token (sensitive)",
        description="Print a Microsoft Graph access token for the connection on stdout. It is a credential "
        "valid for about an hour: do not paste it into logs, tickets or chats.",
    )
    add_connection_arguments(token)
    token.set_defaults(func=lambda a: run_safely(_token, a))

    test = subparsers.add_parser(
        "test",
        help="test a connection",
        description="Get a token and read the connection's drive; prints what works (drive, owner, quota) or "
        "what to fix. Exit code 0 on success, 1 on failure.",
    )
    add_connection_arguments(test)
    test.set_defaults(func=lambda a: run_safely(_test, a))

    revoke = subparsers.add_parser(
        "revoke",
        help="forget the stored refresh tokens of a connection",
        description="Delete the rotated refresh tokens this provider persisted for a connection (Airflow "
        "Variable or token file) and, with --delete-connection, the connection itself. Microsoft has no "
        "per-app revoke endpoint: remove the app's access in the account's security settings as well.",
    )
    revoke.add_argument("--conn-id", default="onedrive_default", help="connection id (default onedrive_default)")
    revoke.add_argument("--delete-connection", action="store_true", help="also delete the connection from the DB")
    revoke.set_defaults(func=lambda a: run_safely(_revoke, a))


def build_login_connection(args: argparse.Namespace, refresh_token: str | None) -> dict[str, Any]:
    """The connection (AIRFLOW_CONN_* JSON form) that a device-code sign-in produces."""
    extra: dict[str, Any] = {"tenant_id": args.tenant, "auth_type": "refresh_token", "drive_type": "me"}
    if refresh_token:
        extra["refresh_token"] = refresh_token
    extra["scopes"] = args.scopes
    if args.cloud != "global":
        extra["cloud"] = args.cloud
    for key in ("authority_host", "graph_url", "ca_bundle"):
        if getattr(args, key):
            extra[key] = getattr(args, key)
    return {"conn_type": "onedrive", "login": args.client_id, "extra": extra}


def _login_settings(args: argparse.Namespace) -> Any:
    from airflow_provider_onedrive.config import ConnectionSettings

    # Before the sign-in there is no refresh token yet: a memory token store makes that a valid connection.
    extra = {**build_login_connection(args, None)["extra"], "token_store": "memory"}
    return ConnectionSettings.from_connection_fields(args.conn_id, args.client_id, None, extra)


def _login(args: argparse.Namespace) -> int:
    from airflow_provider_onedrive.auth import DeviceCodeFlow

    flow = DeviceCodeFlow(_login_settings(args))
    started = flow.initiate()
    print(started["message"], flush=True)
    print(f"user code: {started['user_code']}", flush=True)
    result = flow.poll(timeout=args.timeout)
    connection = build_login_connection(args, result["refresh_token"])
    claims = result.get("id_token_claims") or {}
    who = claims.get("preferred_username") or claims.get("name") or "the signed-in user"
    print(f"signed in as {who}", file=sys.stderr)
    output = args.output
    if output in ("auto", "db"):
        stored = _store_in_db(args.conn_id, connection, required=output == "db")
        if stored:
            print(f"connection {args.conn_id!r} saved in the Airflow metadata DB (refresh token in its extra)")
            return EXIT_OK
        output = "json"
    env = f"AIRFLOW_CONN_{args.conn_id.upper()}"
    print(
        "The connection holds a refresh token: keep it in a secrets backend or a protected environment.",
        file=sys.stderr,
    )
    if output == "json":
        print(f"{env}='{json.dumps(connection)}'")
    else:
        print(f"{env}='{_connection_uri(connection)}'")
    return EXIT_OK


def _connection_uri(connection: dict[str, Any]) -> str:
    extra = quote(json.dumps(connection["extra"]), safe="")
    return f"onedrive://{quote(connection['login'], safe='')}@/?__extra__={extra}"


def _store_in_db(conn_id: str, connection: dict[str, Any], *, required: bool) -> bool:
    """Create or update the connection in the metadata DB; False (or raise if ``required``) when unavailable."""
    try:
        from airflow.models import Connection
        from airflow.utils.session import create_session

        with create_session() as session:
            existing = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
            conn = existing or Connection(conn_id=conn_id, conn_type="onedrive")
            conn.conn_type = "onedrive"
            conn.login = connection["login"]
            conn.set_extra(json.dumps(connection["extra"]))
            if existing is None:
                session.add(conn)
        return True
    except Exception as exc:
        if required:
            raise
        print(
            f"note: the Airflow metadata DB is not available ({type(exc).__name__}); printing instead", file=sys.stderr
        )
        return False


def _token(args: argparse.Namespace) -> int:
    token = resolve(args).token_factory()
    print("warning: this is a live Microsoft Graph access token; treat it like a password", file=sys.stderr)
    print(token)
    return EXIT_OK


def _test(args: argparse.Namespace) -> int:
    resolved = resolve(args)
    if resolved.hook is not None:
        ok, message = resolved.hook.test_connection()
    else:
        ok, message = _test_without_airflow(resolved)
    print(message if ok else f"connection test failed: {message}", file=sys.stdout if ok else sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED


def _test_without_airflow(resolved: Any) -> tuple[bool, str]:
    from airflow_provider_onedrive.errors import OneDriveError

    try:
        client = resolved.client()
        drive = client.graph.get_json(client.drive_base)
    except OneDriveError as exc:
        return False, str(exc)
    owner = ((drive.get("owner") or {}).get("user") or {}).get("displayName") or "unknown owner"
    quota = drive.get("quota") or {}
    return True, (
        f"connected to drive {drive.get('name')!r} ({drive.get('driveType')}) of {owner}; "
        f"{quota.get('used', '?')} of {quota.get('total', '?')} bytes used"
    )


def _revoke(args: argparse.Namespace) -> int:
    from airflow_provider_onedrive.hooks.onedrive import OneDriveHook, variable_name

    forgotten: list[str] = []
    name = variable_name(args.conn_id)
    from airflow.models import Variable

    if Variable.delete(name):
        forgotten.append(f"Airflow Variable {name}")
    hook = OneDriveHook(onedrive_conn_id=args.conn_id)
    try:
        settings = hook.get_settings()
    except Exception:
        settings = None
    if settings is not None and settings.token_store and settings.token_store.startswith("file:"):
        import os

        path = settings.token_store[len("file:") :]
        for candidate in (path, path + ".lock"):
            if os.path.exists(candidate):
                os.remove(candidate)
                forgotten.append(f"token file {candidate}")
    if args.delete_connection:
        from airflow.models import Connection
        from airflow.utils.session import create_session

        with create_session() as session:
            deleted = session.query(Connection).filter(Connection.conn_id == args.conn_id).delete()
        if deleted:
            forgotten.append(f"connection {args.conn_id}")
    print("forgot: " + (", ".join(forgotten) if forgotten else "nothing was stored"))
    print(
        "Microsoft keeps the app's consent: remove it at https://myaccount.microsoft.com (work/school) or "
        "https://account.live.com/consent/Manage (personal accounts), which also invalidates refresh tokens."
    )
    return EXIT_OK
