"""DriveLocator: drive bases, SharePoint site URL and library resolution (cached, thread-safe)."""

from __future__ import annotations

import threading

import pytest

from airflow_provider_onedrive.drives import DriveLocator
from airflow_provider_onedrive.errors import OneDriveConfigError
from airflow_provider_onedrive.graph import GraphClient

GRAPH = "https://graph.microsoft.com/v1.0"
SITE_ID = "contoso.sharepoint.com,1111,2222"


@pytest.fixture
def graph():
    return GraphClient(lambda: "token", sleep=lambda s: None)


@pytest.mark.parametrize(
    ("locator", "base"),
    [
        (DriveLocator("me"), "me/drive"),
        (DriveLocator("user", "adele vance@contoso.com"), "users/adele%20vance@contoso.com/drive"),
        (DriveLocator("drive", "b!a/b"), "drives/b!a%2Fb"),
        (DriveLocator("group", "g-1"), "groups/g-1/drive"),
        (DriveLocator("site", SITE_ID), f"sites/{SITE_ID}/drive"),
    ],
)
def test_static_bases_need_no_request(locator, base, graph, requests_mock):
    assert locator.resolve(graph) == base
    assert requests_mock.request_history == []


def test_site_url_resolved_once(graph, requests_mock):
    site = requests_mock.get(
        f"{GRAPH}/sites/contoso.sharepoint.com:/sites/Finance%20Team", json={"id": SITE_ID, "webUrl": "x"}
    )
    locator = DriveLocator("site", "https://contoso.sharepoint.com/sites/Finance Team/")
    results = []
    threads = [threading.Thread(target=lambda: results.append(locator.resolve(graph))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [f"sites/{SITE_ID}/drive"] * 6
    assert site.call_count == 1


def test_library_by_name_or_url_segment(graph, requests_mock):
    requests_mock.get(f"{GRAPH}/sites/contoso.sharepoint.com:/sites/Finance", json={"id": SITE_ID})
    requests_mock.get(
        f"{GRAPH}/sites/{SITE_ID}/drives",
        json={
            "value": [
                {"id": "b!docs", "name": "Documents", "webUrl": "https://c/sites/Finance/Shared%20Documents"},
                {"id": "b!rep", "name": "Reports", "webUrl": "https://c/sites/Finance/Reports"},
            ]
        },
    )
    url = "https://contoso.sharepoint.com/sites/Finance"
    assert DriveLocator("site", url, library="reports").resolve(graph) == "drives/b!rep"
    assert DriveLocator("site", url, library="Shared Documents").resolve(graph) == "drives/b!docs"
    with pytest.raises(OneDriveConfigError) as info:
        DriveLocator("site", url, library="Archive").resolve(graph)
    assert "'Documents', 'Reports'" in str(info.value)


def test_site_not_found(graph, requests_mock):
    requests_mock.get(
        f"{GRAPH}/sites/contoso.sharepoint.com:/sites/Nope",
        status_code=404,
        json={"error": {"code": "itemNotFound", "message": "Requested site could not be found"}},
    )
    with pytest.raises(OneDriveConfigError, match=r"SharePoint site .* was not found"):
        DriveLocator("site", "https://contoso.sharepoint.com/sites/Nope").resolve(graph)


def test_invalid_locators():
    with pytest.raises(OneDriveConfigError):
        DriveLocator("tape", "x")
    with pytest.raises(OneDriveConfigError):
        DriveLocator("user")
    with pytest.raises(OneDriveConfigError):
        DriveLocator("drive", "d", library="Docs")
    assert DriveLocator("user", "a") == DriveLocator("user", "a")
    assert "library='L'" in repr(DriveLocator("site", "s", library="L"))
