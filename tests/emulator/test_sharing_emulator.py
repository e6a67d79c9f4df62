"""The emulator's sharing endpoints against Microsoft's documentation, over raw HTTP.

- createLink: https://learn.microsoft.com/graph/api/driveitem-createlink
- permission: https://learn.microsoft.com/graph/api/resources/permission
- list permissions: https://learn.microsoft.com/graph/api/driveitem-list-permissions
- shares: https://learn.microsoft.com/graph/api/shares-get
- sharedWithMe: https://learn.microsoft.com/graph/api/drive-sharedwithme
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from tests.emulator.conftest import Graph, app_token, assert_graph_error, user_token


def encoded(url: str) -> str:
    """shares-get's encoding: ``u!`` + unpadded base64url of the sharing URL."""
    return "u!" + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def item_id(graph: Graph, path: str) -> str:
    response = graph.get(f"root:/{path}")
    assert response.status_code == 200, response.text
    return response.json()["id"]


@pytest.fixture
def alex(emu) -> Graph:
    """The second user, who has no access to the first user's drive."""
    return Graph(emu, user_token(emu, emu.users[1]), drive="/me/drive")


def test_create_link_answers_201_then_200_with_the_same_permission(emu, graph):
    """createLink: "201 Created if a new sharing link is created ... or 200 OK if an existing link is returned"."""
    graph.upload("r/q1.csv", b"a,b\n")
    target = f"items/{item_id(graph, 'r/q1.csv')}/createLink"
    first = graph.post(target, json={"type": "view", "scope": "organization"})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["roles"] == ["read"] and body["link"]["type"] == "view" and body["link"]["scope"] == "organization"
    assert body["link"]["webUrl"].startswith("https://") and body["link"]["application"]["id"] == emu.client_id
    assert body["shareId"].startswith("s!") and "hasPassword" not in body  # hasPassword: OneDrive Personal only
    second = graph.post(target, json={"type": "view", "scope": "organization"})
    assert second.status_code == 200 and second.json()["id"] == body["id"]
    assert second.json()["link"]["webUrl"] == body["link"]["webUrl"]
    edit = graph.post(target, json={"type": "edit", "scope": "organization"})
    assert edit.status_code == 201 and edit.json()["roles"] == ["write"] and edit.json()["id"] != body["id"]
    by_path = graph.post("root:/r/q1.csv:/createLink", json={"type": "edit", "scope": "organization"})
    assert by_path.status_code == 200 and by_path.json()["id"] == edit.json()["id"]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "download"},
        {"type": "view", "scope": "world"},
        {"type": "embed"},  # embed links: OneDrive Personal only
        {"type": "view", "scope": "anonymous", "password": "x"},  # passwords: OneDrive Personal only
        {"type": "view", "scope": "anonymous", "recipients": [{"email": "a@b.com"}]},
        {"type": "view", "expirationDateTime": "2001-01-01T00:00:00Z"},
        {"type": "view", "expirationDateTime": "soon"},
    ],
)
def test_create_link_refuses_what_graph_refuses(emu, graph, body):
    graph.upload("x.csv", b"x")
    response = graph.post(f"items/{item_id(graph, 'x.csv')}/createLink", json=body)
    assert_graph_error(response, 400, "invalidRequest")


def test_personal_mode_links(make_emulator):
    """Personal: anonymous by default, embed links for files (with webHtml), passwords, no organization scope."""
    emu = make_emulator(mode="personal")
    graph = Graph(emu, app_token(emu))
    graph.upload("p/a.txt", b"hello")
    file_id, folder_id = item_id(graph, "p/a.txt"), item_id(graph, "p")
    plain = graph.post(f"items/{file_id}/createLink", json={"type": "view"})
    assert plain.status_code == 201 and plain.json()["link"]["scope"] == "anonymous"
    assert plain.json()["hasPassword"] is False
    embed = graph.post(f"items/{file_id}/createLink", json={"type": "embed"})
    assert embed.status_code == 201 and "<iframe" in embed.json()["link"]["webHtml"]
    protected = graph.post(f"items/{file_id}/createLink", json={"type": "edit", "password": "pw"})
    assert protected.status_code == 201 and protected.json()["hasPassword"] is True
    assert_graph_error(graph.post(f"items/{folder_id}/createLink", json={"type": "embed"}), 400, "invalidRequest")
    org = graph.post(f"items/{file_id}/createLink", json={"type": "view", "scope": "organization"})
    assert_graph_error(org, 400, "invalidRequest")
    root = graph.get(f"/shares/{encoded(plain.json()['link']['webUrl'])}/root")
    assert root.status_code == 200 and root.json()["id"] == file_id  # personal-only relationship


def test_link_urls_resolve_back_through_shares(emu, graph, alex):
    graph.upload("team/a.csv", b"1")
    graph.upload("team/b.csv", b"22")
    folder = item_id(graph, "team")
    link = graph.post(f"items/{folder}/createLink", json={"type": "view", "scope": "organization"}).json()
    token = encoded(link["link"]["webUrl"])

    shared = alex.get(f"/shares/{token}/driveItem")
    assert shared.status_code == 200
    assert shared.json()["id"] == folder and shared.json()["parentReference"]["driveId"] == emu.drive_id
    assert alex.get(f"/shares/{link['shareId']}/driveItem").json()["id"] == folder
    meta = alex.get(f"/shares/{token}").json()
    assert meta["id"] == token and meta["name"] == "team" and "user" in meta["owner"]
    expanded = alex.get(f"/shares/{token}/driveItem", params={"$expand": "children"}).json()
    assert [c["name"] for c in expanded["children"]] == ["a.csv", "b.csv"]
    children = alex.get(f"/shares/{token}/driveItem/children").json()["value"]
    assert [c["name"] for c in children] == ["a.csv", "b.csv"]
    file_link = graph.post(f"items/{children[1]['id']}/createLink", json={"type": "view", "scope": "anonymous"})
    content = alex.get(f"/shares/{encoded(file_link.json()['link']['webUrl'])}/driveItem/content")
    assert content.status_code == 302 and emu.http_session().get(content.headers["Location"]).content == b"22"
    permission = alex.get(f"/shares/{token}/permission").json()
    assert permission["id"] == link["id"] and "webUrl" not in permission["link"]  # not the creator: no secrets
    assert_graph_error(alex.get(f"/shares/{token}/root"), 400, "invalidRequest")  # root: personal only


def test_unknown_malformed_and_expired_links(emu, graph, alex):
    graph.upload("e.csv", b"e")
    assert_graph_error(
        alex.get(f"/shares/{encoded('https://contoso.sharepoint.com/:u:/g/nope')}/driveItem"), 404, "itemNotFound"
    )
    assert_graph_error(alex.get("/shares/u!%%%/driveItem"), 400, "invalidRequest")
    assert_graph_error(alex.get("/shares/plain/driveItem"), 400, "invalidRequest")
    soon = datetime.fromtimestamp(emu.clock.now() + 600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    link = graph.post(
        f"items/{item_id(graph, 'e.csv')}/createLink",
        json={"type": "view", "scope": "anonymous", "expirationDateTime": soon},
    ).json()
    assert link["expirationDateTime"] == soon
    assert alex.get(f"/shares/{link['shareId']}/driveItem").status_code == 200
    emu.advance_time(1200)  # past the link's expiry, within the access token's hour
    assert_graph_error(alex.get(f"/shares/{link['shareId']}/driveItem"), 403, "accessDenied")
    assert_graph_error(graph.post("/shares/x/driveItem", json={}), 405, "BadRequest")


def test_users_links_open_only_for_recipients(emu, graph, alex):
    graph.upload("hr/plan.txt", b"p")
    target = f"items/{item_id(graph, 'hr/plan.txt')}/createLink"
    for_alex = graph.post(target, json={"type": "view", "scope": "users", "recipients": [{"email": emu.users[1]}]})
    assert for_alex.status_code == 201
    granted = for_alex.json()["grantedToIdentitiesV2"]
    assert [g["user"]["email"] for g in granted] == [emu.users[1]]
    assert alex.get(f"/shares/{for_alex.json()['shareId']}/driveItem").status_code == 200
    for_other = graph.post(target, json={"type": "view", "scope": "users", "recipients": [{"email": "x@fabrikam.com"}]})
    assert for_other.status_code == 201 and for_other.json()["id"] != for_alex.json()["id"]
    assert_graph_error(alex.get(f"/shares/{for_other.json()['shareId']}/driveItem"), 403, "accessDenied")


def test_redeeming_grants_access_by_drive_and_item_id_with_the_links_role(emu, graph, alex):
    """``Prefer: redeemSharingLink`` grants durable access; ``redeemSharingLinkIfNecessary`` only for the call."""
    graph.upload("box/in.csv", b"i")
    folder = item_id(graph, "box")
    by_id = f"/drives/{emu.drive_id}/items/{folder}"
    view = graph.post(f"items/{folder}/createLink", json={"type": "view", "scope": "organization"}).json()
    assert_graph_error(alex.get(f"{by_id}/children"), 403, "accessDenied")
    peek = alex.get(f"/shares/{view['shareId']}/driveItem", headers={"Prefer": "redeemSharingLinkIfNecessary"})
    assert peek.status_code == 200
    assert_graph_error(alex.get(f"{by_id}/children"), 403, "accessDenied")
    alex.get(f"/shares/{view['shareId']}/driveItem", headers={"Prefer": "redeemSharingLink"})
    assert [c["name"] for c in alex.get(f"{by_id}/children").json()["value"]] == ["in.csv"]
    assert_graph_error(alex.put(f"{by_id}:/new.csv:/content", b"n"), 403, "accessDenied")  # a view link
    assert_graph_error(alex.get(f"/drives/{emu.drive_id}/root/children"), 403, "accessDenied")  # not shared

    edit = graph.post(f"items/{folder}/createLink", json={"type": "edit", "scope": "organization"}).json()
    alex.get(f"/shares/{edit['shareId']}/driveItem", headers={"Prefer": "redeemSharingLink"})
    assert alex.put(f"{by_id}:/new.csv:/content", b"n").status_code == 201
    assert emu.read_file("box/new.csv") == b"n"


def test_permissions_listing_owner_and_holder_views(emu, graph, alex):
    """Owners see every permission (inherited ones too); others only theirs, without webUrl and shareId."""
    graph.upload("docs/a.txt", b"a")
    folder, file_ = item_id(graph, "docs"), item_id(graph, "docs/a.txt")
    on_folder = graph.post(f"items/{folder}/createLink", json={"type": "view", "scope": "organization"}).json()
    on_file = graph.post(f"items/{file_}/createLink", json={"type": "edit", "scope": "anonymous"}).json()
    owner_view = graph.get(f"items/{file_}/permissions").json()["value"]
    links = {p["id"]: p for p in owner_view if "link" in p}
    assert set(links) == {on_folder["id"], on_file["id"]}
    assert all("webUrl" in p["link"] and p["shareId"] for p in links.values())
    assert "inheritedFrom" not in links[on_folder["id"]]  # Business does not return inheritedFrom
    assert any(p["roles"] == ["owner"] for p in owner_view)

    alex.get(f"/shares/{on_folder['shareId']}/driveItem", headers={"Prefer": "redeemSharingLink"})
    mine = alex.get(f"/drives/{emu.drive_id}/items/{file_}/permissions").json()["value"]
    assert [p["id"] for p in mine] == [on_folder["id"]]
    assert "webUrl" not in mine[0]["link"] and "shareId" not in mine[0]


def test_shared_with_me_lists_remote_items_for_delegated_callers(emu, graph, alex):
    graph.upload("s/one.csv", b"1")
    link = graph.post(f"items/{item_id(graph, 's/one.csv')}/createLink", json={"type": "view", "scope": "anonymous"})
    assert alex.get("sharedWithMe").json()["value"] == []
    alex.get(f"/shares/{link.json()['shareId']}/driveItem", headers={"Prefer": "redeemSharingLink"})
    entries = alex.get("sharedWithMe").json()["value"]
    assert len(entries) == 1
    remote = entries[0]["remoteItem"]
    assert remote["name"] == "one.csv" and remote["parentReference"]["driveId"] == emu.drive_id and "file" in remote
    assert_graph_error(graph.get("/me/drive/sharedWithMe"), 400, "BadRequest")  # app-only: not supported


def test_an_app_without_the_drive_cannot_open_anonymous_business_links(make_emulator):
    """shares-get remarks: on Business the shares API "cannot be used to access anonymously shared content
    without a user context"; an app granted only another drive (Sites.Selected) gets 403."""
    emu = make_emulator(app_allowed_drives=("b!elsewhere",))
    adele = Graph(emu, user_token(emu), drive="/me/drive")
    adele.upload("a.txt", b"a")
    anonymous = adele.post(f"items/{item_id(adele, 'a.txt')}/createLink", json={"type": "view", "scope": "anonymous"})
    organization = adele.post(
        f"items/{item_id(adele, 'a.txt')}/createLink", json={"type": "view", "scope": "organization"}
    )
    app = Graph(emu, app_token(emu))
    assert_graph_error(app.get(f"/shares/{anonymous.json()['shareId']}/driveItem"), 403, "accessDenied")
    assert app.get(f"/shares/{organization.json()['shareId']}/driveItem").status_code == 200
