"""Sharing links and shared items through OneDriveClient, against the emulator over real HTTP.

Graph: createLink https://learn.microsoft.com/graph/api/driveitem-createlink, shares
https://learn.microsoft.com/graph/api/shares-get, sharedWithMe https://learn.microsoft.com/graph/api/drive-sharedwithme.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_onedrive.clients import drive_client
from airflow_provider_onedrive.config import ConnectionSettings
from airflow_provider_onedrive.errors import OneDrivePermissionError, OneDriveValidationError
from airflow_provider_onedrive.transfers.sharing import encode_sharing_url, share_token


def user_client(emu, user: str):
    """A delegated client acting as ``user`` (their own drive is ``me``)."""
    conn = emu.connection("delegated")
    extra = {**conn["extra"], "refresh_token": emu.issue_refresh_token(user), "token_store": "memory"}
    return drive_client(ConnectionSettings.from_connection_fields("as_" + user, conn["login"], None, extra))


def test_encoding_is_graphs_documented_u_bang_base64url_without_padding():
    """shares-get: base64 the URL, make it base64url (``+`` -> ``-``, ``/`` -> ``_``), drop ``=``, prefix ``u!``."""
    url = "https://onedrive.live.com/redir?resid=1231244193912!12&authKey=1201919!12921!1"
    token = encode_sharing_url(url)
    body = base64.b64encode(url.encode()).decode().rstrip("=").replace("/", "_").replace("+", "-")
    assert token == "u!" + body and "=" not in token
    assert share_token("s!AbC_-9") == "s!AbC_-9"  # a share id goes through unchanged
    for bad in ("", "ftp://x", "s!a/b", "u!a?b"):
        with pytest.raises(OneDriveValidationError):
            share_token(bad)


def test_create_link_returns_a_typed_link_and_reuses_it_on_retry(emu, client):
    emu.put_file("reports/q1.csv", b"region,units\nnorth,3\n")
    expires = datetime.now(UTC) + timedelta(days=7)

    first = client.create_link("reports/q1.csv", type="view", scope="organization", expires=expires)
    again = client.create_link("reports/q1.csv", type="view", scope="organization", expires=expires)

    assert first.created and not again.created  # 201, then Graph's 200 with the existing link
    assert (again.id, again.url) == (first.id, first.url)
    assert first.type == "view" and first.scope == "organization" and first.roles == ("read",)
    assert first.expires == expires.replace(microsecond=0)
    assert first.url.startswith("https://") and first.path == "reports/q1.csv"
    posts = [r for r in emu.requests if r.method == "POST" and r.path.endswith("/createLink")]
    assert len(posts) == 2 and all(f"/items/{first.item_id}/createLink" in r.path for r in posts)
    edit = client.create_link("reports/q1.csv", type="edit", scope="organization")
    assert edit.created and edit.id != first.id and edit.roles == ("write",)
    ids = {p["id"] for p in client.permissions("reports/q1.csv") if "link" in p}
    assert ids == {first.id, edit.id}
    assert first.to_dict()["url"] == first.url and "url" not in repr(first)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"type": "download"}, "link type"),
        ({"scope": "everyone"}, "link scope"),
        ({"type": "embed", "scope": "organization"}, "embed"),
        ({"scope": "anonymous", "recipients": ["a@contoso.com"]}, "recipients"),
        ({"scope": "users", "password": "x"}, "password"),
        ({"expires": datetime(2020, 1, 1, tzinfo=UTC)}, "in the past"),
        ({"expires": datetime(2099, 1, 1)}, "timezone-aware"),
        ({"expires": "next week"}, "ISO 8601"),
        ({"scope": "users", "recipients": ["not an address"]}, "email"),
    ],
)
def test_bad_link_options_fail_before_any_request(emu, client, options, words):
    with pytest.raises(OneDriveValidationError, match=words):
        client.create_link("anything.csv", **options)
    assert [r for r in emu.requests if r.kind == "graph"] == []


def test_drive_dependent_combinations_fail_before_the_link_is_made(emu, client):
    emu.put_file("a.csv", b"x")
    with pytest.raises(OneDriveValidationError, match="no embed links"):
        client.create_link("a.csv", type="embed")
    with pytest.raises(OneDriveValidationError, match="no link passwords"):
        client.create_link("a.csv", scope="anonymous", password="secret")
    assert not [r for r in emu.requests if r.path.endswith("/createLink")]


def test_a_shared_folder_is_listed_read_and_written_through_its_url(emu, client):
    emu.put_file("team/in/a.csv", b"id\n1\n")
    link = client.create_link("team", type="edit", scope="organization")
    alex = user_client(emu, emu.users[1])  # has no access to the drive itself

    shared = alex.resolve_share(link.url)
    assert shared.is_folder and shared.drive_id == emu.drive_id and shared.item.raw["name"] == "team"
    folder = alex.for_share(link.url)
    assert [i.path for i in folder.ls("", recursive=True)] == ["in", "in/a.csv"]
    assert folder.download_bytes("in/a.csv") == b"id\n1\n"
    result = folder.upload_bytes(b"id\n2\n", "in/b.csv")
    assert result.status == "created" and emu.read_file("team/in/b.csv") == b"id\n2\n"
    assert folder.mkdir("out").path == "out" and emu.item("team/out") is not None
    paths = [r.path for r in emu.requests if r.kind == "graph"]
    assert any(f"/drives/{emu.drive_id}/items/{shared.item_id}" in p for p in paths)  # by drive and item id
    assert any("Prefer" in r.headers or "prefer" in r.headers for r in emu.requests if "/shares/" in r.path)


def test_a_view_link_reads_but_never_writes(emu, client):
    emu.put_file("pub/a.csv", b"read me")
    link = client.create_link("pub", type="view", scope="anonymous")
    folder = user_client(emu, emu.users[1]).for_share(link.url)
    assert folder.download_bytes("a.csv") == b"read me"
    with pytest.raises(OneDrivePermissionError):
        folder.upload_bytes(b"no", "b.csv")
    assert emu.item("pub/b.csv") is None


def test_a_shared_file_is_the_root_of_its_client_and_a_share_id_works_too(emu, client, tmp_path):
    emu.put_file("deliveries/report.csv", b"total\n42\n")
    link = client.create_link("deliveries/report.csv", scope="anonymous")
    alex = user_client(emu, emu.users[1])
    file_client = alex.for_share(link.url)
    assert file_client.info("").is_file
    assert file_client.download_bytes("") == b"total\n42\n"
    local = tmp_path / "report.csv"
    assert file_client.download_file("", local).size == 9 and local.read_bytes() == b"total\n42\n"
    share_id = link.share_id
    assert share_id and share_id.startswith("s!")
    assert alex.for_share(share_id).download_bytes("") == b"total\n42\n"


def test_users_links_open_only_for_their_recipients_and_show_in_shared_with_me(emu, client):
    adele, alex = emu.users
    emu.put_file("hr/plan.xlsx", b"PK plan")
    link = client.create_link("hr/plan.xlsx", scope="users", recipients=[alex])
    assert link.scope == "users"
    alex_client = user_client(emu, alex)
    assert alex_client.for_share(link.url).download_bytes("") == b"PK plan"
    shared = alex_client.shared_with_me()
    assert [(s["name"], s["parentReference"]["driveId"]) for s in shared] == [("plan.xlsx", emu.drive_id)]

    other = client.create_link("hr", scope="users", recipients=[adele])  # adele owns the drive anyway
    with pytest.raises(OneDrivePermissionError):
        alex_client.resolve_share(other.url)


def test_a_redeemed_organization_link_lists_in_shared_with_me_only_when_redeemed(emu, client):
    alex = user_client(emu, emu.users[1])
    emu.put_file("wiki/page.md", b"# hi")
    link = client.create_link("wiki/page.md", scope="organization")
    alex.resolve_share(link.url, redeem=False)
    assert alex.shared_with_me() == []
    alex.resolve_share(link.url)
    assert [s["name"] for s in alex.shared_with_me()] == ["page.md"]


def test_shared_with_me_is_delegated_only(emu, client):
    from airflow_provider_onedrive.errors import OneDriveBadRequestError

    with pytest.raises(OneDriveBadRequestError):
        client.shared_with_me()


def test_link_urls_and_share_tokens_never_reach_log_lines_or_errors(emu, client, caplog):
    emu.put_file("secret/a.csv", b"x")
    link = client.create_link("secret/a.csv", scope="anonymous")
    token = share_token(link.url)
    alex = user_client(emu, emu.users[1])
    with caplog.at_level(logging.DEBUG):
        alex.for_share(link.url).download_bytes("")
        client.delete("secret/a.csv")
        with pytest.raises(FileNotFoundError) as failure:
            alex.resolve_share(link.url)
    text = caplog.text + str(failure.value)
    assert link.url not in text and token not in text and token[2:20] not in text
    assert "shares/<redacted>" in caplog.text  # urllib3's request lines keep the path, without the token


def test_personal_drives_take_passwords_and_embed_links_but_no_organization_scope(tmp_path):
    from airflow_provider_onedrive.testing import GraphEmulator
    from tests.transfer.transfer_helpers import make_client

    with GraphEmulator(mode="personal") as personal:
        personal.put_file("p/a.txt", b"hello")
        client = make_client(personal, tmp_path / "state")
        protected = client.create_link("p/a.txt", type="view", scope="anonymous", password="pw")
        assert protected.has_password and protected.scope == "anonymous"
        assert client.create_link("p/a.txt", type="embed").type == "embed"
        with pytest.raises(OneDriveValidationError, match="OneDrive Personal"):
            client.create_link("p/a.txt", scope="organization")
        with pytest.raises(OneDriveValidationError, match="only for files"):
            client.create_link("p", type="embed")
        client.close()
