"""Sharing building blocks without a server: link options, item-rooted addressing, share-token redaction, and
the createLink request the client sends (requests-mock)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_onedrive import paths
from airflow_provider_onedrive.drive import OneDriveClient
from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.graph import GraphClient, redact_share_tokens
from airflow_provider_onedrive.transfers.sharing import check_link_options, share_token

GRAPH = "https://graph.microsoft.com/v1.0"
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_link_options_body_is_what_graph_documents():
    options = check_link_options(
        type="edit",
        scope="users",
        expires="2030-02-01T12:30:00+01:00",
        recipients=["a@contoso.com", {"objectId": "123"}],
        retain_inherited_permissions=False,
        now=NOW,
    )
    assert options.body() == {
        "type": "edit",
        "scope": "users",
        "expirationDateTime": "2030-02-01T11:30:00Z",
        "recipients": [{"email": "a@contoso.com"}, {"objectId": "123"}],
        "retainInheritedPermissions": False,
    }
    assert check_link_options(now=NOW).body() == {"type": "view"}  # scope omitted: the tenant's default
    assert "secret" not in repr(check_link_options(scope="anonymous", password="secret", now=NOW))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"expires": NOW},  # not in the future
        {"expires": NOW - timedelta(seconds=1)},
        {"recipients": "a@contoso.com", "scope": "users"},  # one string, not a list
        {"recipients": [{"email": "a@b.com", "objectId": "1"}], "scope": "users"},
        {"password": ""},
        {"retain_inherited_permissions": "no"},
    ],
)
def test_refused_link_options(kwargs):
    with pytest.raises(OneDriveValidationError):
        check_link_options(now=NOW, **kwargs)


def test_a_base_rooted_at_an_item_addresses_paths_below_it():
    base = "drives/b!x/items/01AB"
    assert paths.drive_part(base) == ("drives/b!x", "01AB")
    assert paths.drive_part("me/drive") == ("me/drive", None)
    assert paths.item_path(base, "") == base
    assert paths.item_path(base, "", "children") == f"{base}/children"
    assert paths.item_path(base, "in/a b.csv", "content") == f"{base}:/in/a%20b.csv:/content"
    assert paths.item_path("drives/b!x", "a.csv") == "drives/b!x/root:/a.csv"


def test_share_tokens_are_redacted_in_descriptions_and_urllib3_lines():
    token = share_token("https://contoso.sharepoint.com/:u:/g/abcdef")
    assert redact_share_tokens(f"shares/{token}/driveItem") == "shares/<redacted>/driveItem"
    graph = GraphClient(lambda: "t")
    assert graph.describe(f"{GRAPH}/shares/{token}/driveItem", "GET") == "GET shares/<redacted>/driveItem"
    from airflow_provider_onedrive.graph import _URL_REDACTION

    record = logging.LogRecord("urllib3", logging.DEBUG, "", 0, '"%s %s"', ("GET", f"/v1.0/shares/{token}"), None)
    _URL_REDACTION.filter(record)
    assert token not in record.getMessage() and "/v1.0/shares/<redacted>" in record.getMessage()


def test_create_link_looks_the_item_up_then_posts_by_id(requests_mock):
    requests_mock.get(
        f"{GRAPH}/drives/d1/root:/r/a.csv",
        json={"id": "01A", "name": "a.csv", "file": {}, "parentReference": {"driveType": "business"}},
    )
    requests_mock.post(
        f"{GRAPH}/drives/d1/items/01A/createLink",
        status_code=200,
        json={
            "id": "p1",
            "roles": ["read"],
            "link": {"type": "view", "scope": "organization", "webUrl": "https://x/y"},
        },
    )
    link = OneDriveClient(GraphClient(lambda: "t"), "drives/d1").create_link("r/a.csv", scope="organization")
    assert (link.id, link.url, link.created, link.item_id) == ("p1", "https://x/y", False, "01A")
    assert requests_mock.last_request.json() == {"type": "view", "scope": "organization"}


def test_for_share_roots_a_client_at_the_shared_item(requests_mock):
    token = share_token("https://contoso.sharepoint.com/:f:/g/team")
    requests_mock.get(
        f"{GRAPH}/shares/{token}/driveItem",
        json={"id": "01F", "name": "team", "folder": {}, "parentReference": {"driveId": "b!d"}},
    )
    requests_mock.get(f"{GRAPH}/drives/b!d/items/01F:/in/a.csv", json={"id": "01G", "name": "a.csv", "file": {}})
    shared = OneDriveClient(GraphClient(lambda: "t"), "me/drive").for_share("https://contoso.sharepoint.com/:f:/g/team")
    assert requests_mock.request_history[0].headers["Prefer"] == "redeemSharingLink"
    assert shared.drive_base == "drives/b!d/items/01F" and shared.drive_id == "b!d"
    assert shared.info("in/a.csv").id == "01G"
