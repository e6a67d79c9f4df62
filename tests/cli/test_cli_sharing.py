"""``airflow-onedrive share``, ``shared`` and ``--share URL`` against the emulator."""

from __future__ import annotations

import json

import pytest

from airflow_provider_onedrive.cli import main
from airflow_provider_onedrive.commands.common import EXIT_USAGE


@pytest.fixture
def conn_args(onedrive_emulator, monkeypatch):
    monkeypatch.delenv("ONEDRIVE_CONNECTION", raising=False)
    return ["--connection", json.dumps(onedrive_emulator.connection("app"))]


@pytest.fixture
def alex_args(onedrive_emulator):
    conn = onedrive_emulator.connection("delegated")
    conn["extra"].update(
        refresh_token=onedrive_emulator.issue_refresh_token(onedrive_emulator.users[1]), token_store="memory"
    )
    return ["--connection", json.dumps(conn)]


def test_share_prints_the_link_and_the_same_one_again(onedrive_emulator, conn_args, capsys):
    onedrive_emulator.put_file("reports/q1.csv", b"a\n1\n")
    assert main(["share", "reports/q1.csv", "--scope", "organization", *conn_args]) == 0
    out = capsys.readouterr()
    url = out.out.strip()
    assert url.startswith("https://") and "created view link, scope organization" in out.err
    assert main(["share", "reports/q1.csv", "--scope", "organization", "--json", *conn_args]) == 0
    link = json.loads(capsys.readouterr().out)
    assert link["url"] == url and link["created"] is False


def test_share_refuses_bad_options_with_a_usage_exit(onedrive_emulator, conn_args, capsys):
    code = main(["share", "a.csv", "--scope", "anonymous", "--recipient", "x@contoso.com", *conn_args])
    assert code == EXIT_USAGE and "recipients only apply to scope 'users'" in capsys.readouterr().err
    assert not [r for r in onedrive_emulator.requests if r.kind == "graph"]


def test_share_option_lists_gets_and_puts_below_a_shared_folder(
    onedrive_emulator, conn_args, alex_args, tmp_path, capsys
):
    onedrive_emulator.put_file("team/a.csv", b"a\n")
    assert main(["share", "team", "--type", "edit", "--scope", "organization", *conn_args]) == 0
    url = capsys.readouterr().out.strip()

    assert main(["ls", "--share", url, *alex_args]) == 0
    assert capsys.readouterr().out.split() == ["a.csv"]
    target = tmp_path / "a.csv"
    assert main(["get", "a.csv", str(target), "--share", url, "--no-progress", *alex_args]) == 0
    assert target.read_bytes() == b"a\n"
    source = tmp_path / "b.csv"
    source.write_bytes(b"b\n")
    assert main(["put", str(source), "--share", url, "--no-progress", *alex_args]) == 0
    assert onedrive_emulator.read_file("team/b.csv") == b"b\n"


def test_get_of_a_shared_file_takes_its_name(onedrive_emulator, conn_args, alex_args, tmp_path, capsys, monkeypatch):
    onedrive_emulator.put_file("d/report.csv", b"r\n")
    assert main(["share", "d/report.csv", "--scope", "anonymous", *conn_args]) == 0
    url = capsys.readouterr().out.strip()
    monkeypatch.chdir(tmp_path)
    assert main(["get", "--share", url, "--no-progress", *alex_args]) == 0
    assert (tmp_path / "report.csv").read_bytes() == b"r\n"


def test_shared_lists_items_shared_with_the_signed_in_user(onedrive_emulator, conn_args, alex_args, capsys):
    onedrive_emulator.put_file("s/one.csv", b"1")
    assert main(["share", "s/one.csv", "--scope", "users", "--recipient", onedrive_emulator.users[1], *conn_args]) == 0
    capsys.readouterr()
    assert main(["shared", "--json", *alex_args]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["drive_id"], r["is_folder"]) for r in records] == [
        ("one.csv", onedrive_emulator.drive_id, False)
    ]


def test_the_demo_lists_links_without_their_urls(onedrive_emulator, conn_args, capsys):
    import io

    from airflow_provider_onedrive.commands.demo import print_links

    onedrive_emulator.put_file("deliveries/r.csv", b"r")
    assert (
        main(["share", "deliveries/r.csv", "--scope", "organization", "--expires", "2099-01-01T00:00:00Z", *conn_args])
        == 0
    )
    url = capsys.readouterr().out.strip()
    out = io.StringIO()
    print_links(onedrive_emulator, out)
    assert "deliveries/r.csv: view link, scope organization, expires 2099-01-01T00:00:00Z" in out.getvalue()
    assert url not in out.getvalue()
