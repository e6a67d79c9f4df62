"""Graph token checks, /me rules, permissions, and the drive / site / group addressing Graph documents."""

from __future__ import annotations

import pytest

from airflow_provider_onedrive.testing import GraphEmulator
from tests.emulator.conftest import Graph, app_token, assert_graph_error, user_token

pytestmark = pytest.mark.timeout(60)


def test_missing_token_is_401_with_challenge(emu: GraphEmulator) -> None:
    response = emu.http_session().get(f"{emu.graph_url}/drives/{emu.drive_id}/root")
    error = assert_graph_error(response, 401, "InvalidAuthenticationToken")
    assert error["message"] == "Access token is empty."
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_expired_token_is_401(emu: GraphEmulator) -> None:
    emu.settings.token_lifetime = 5
    graph = Graph(emu, app_token(emu))
    assert graph.get("root").status_code == 200
    emu.advance_time(6)
    error = assert_graph_error(graph.get("root"), 401, "InvalidAuthenticationToken")
    assert "expired" in error["message"]


def test_expire_tokens_helper(emu: GraphEmulator, graph: Graph) -> None:
    assert graph.get("root").status_code == 200
    emu.expire_tokens()
    assert_graph_error(graph.get("root"), 401, "InvalidAuthenticationToken")
    assert Graph(emu, app_token(emu)).get("root").status_code == 200


def test_wrong_audience_and_garbage_tokens(emu: GraphEmulator) -> None:
    other = Graph(emu, app_token(emu, "https://management.azure.com/.default"))
    assert assert_graph_error(other.get("root"), 401, "InvalidAuthenticationToken")["message"] == "Invalid audience."
    forged = app_token(emu)[:-4] + "AAAA"
    assert_graph_error(Graph(emu, forged).get("root"), 401, "InvalidAuthenticationToken")
    assert_graph_error(Graph(emu, "not-a-jwt").get("root"), 401, "InvalidAuthenticationToken")


def test_me_needs_a_delegated_token(emu: GraphEmulator, graph: Graph) -> None:
    error = assert_graph_error(graph.get("/me/drive"), 400, "BadRequest")
    assert error["message"] == "/me request is only valid with delegated authentication flow."
    assert_graph_error(graph.get("/me"), 400, "BadRequest")
    user = Graph(emu, user_token(emu))
    assert user.get("/me").json()["userPrincipalName"] == emu.user_upn
    assert user.get("/me/drive").json()["id"] == emu.drive_id
    assert user.get("/me/drive/root").json()["root"] == {}


def test_delegated_user_cannot_open_another_users_drive(emu: GraphEmulator) -> None:
    user = Graph(emu, user_token(emu))
    assert_graph_error(user.get(f"/users/{emu.users[1]}/drive"), 403, "accessDenied")
    assert user.get(f"/sites/{emu.site_id}/drive").status_code == 200


def test_sites_selected_style_grant(make_emulator: object) -> None:
    emu = make_emulator(app_allowed_drives=())  # type: ignore[operator]
    emu.settings.app_allowed_drives = (emu.site_id,)
    graph = Graph(emu, app_token(emu))
    assert graph.get(f"/sites/{emu.site_id}/drives").status_code == 200
    assert_graph_error(graph.get(f"/users/{emu.user_upn}/drive"), 403, "accessDenied")
    assert_graph_error(graph.get(f"/groups/{emu.group_id}/drive/root"), 403, "accessDenied")


def test_drive_resource_shape(emu: GraphEmulator, graph: Graph) -> None:
    drive = graph.get(f"/users/{emu.user_upn}/drive").json()
    assert drive["id"] == emu.drive_id and drive["driveType"] == "business"
    assert drive["owner"]["user"]["id"] == emu.user_id
    quota = drive["quota"]
    assert set(quota) >= {"total", "used", "remaining", "state", "deleted"}
    assert quota["total"] == quota["used"] + quota["remaining"] and quota["state"] == "normal"
    assert graph.get(f"/users/{emu.user_id}/drive").json()["id"] == emu.drive_id
    assert graph.get(f"/drives/{emu.drive_id}").json()["id"] == emu.drive_id
    assert [d["id"] for d in graph.get(f"/users/{emu.user_upn}/drives").json()["value"]] == [emu.drive_id]
    assert_graph_error(graph.get("/drives/b!nope"), 404, "itemNotFound")


def test_sites_by_id_path_and_root_with_libraries(emu: GraphEmulator, graph: Graph) -> None:
    hostname = emu.site_id.split(",")[0]
    by_path = graph.get(f"/sites/{hostname}:/sites/Finance").json()
    assert by_path["id"] == emu.site_id and by_path["webUrl"] == emu.site_url
    assert len(by_path["id"].split(",")) == 3
    assert graph.get(f"/sites/{emu.site_id}").json()["name"] == "Finance"
    root = graph.get("/sites/root").json()
    assert root["webUrl"] == f"https://{hostname}" and root["id"] != emu.site_id
    drives = graph.get(f"/sites/{emu.site_id}/drives").json()["value"]
    assert [d["name"] for d in drives] == ["Documents", "Reports"]
    assert {d["driveType"] for d in drives} == {"documentLibrary"}
    default = graph.get(f"/sites/{emu.site_id}/drive").json()
    assert default["id"] == drives[0]["id"] == emu.libraries["Documents"]
    via_path = graph.get(f"/sites/{hostname}:/sites/Finance:/drive").json()
    assert via_path["id"] == default["id"]
    reports = emu.libraries["Reports"]
    created = graph.put(f"/sites/{emu.site_id}/drives/{reports}/root:/q1.csv:/content", b"a,b\n")
    assert created.status_code == 201 and created.json()["parentReference"]["driveId"] == reports
    assert created.json()["parentReference"]["path"] == f"/drives/{reports}/root:"
    assert_graph_error(graph.get(f"/sites/{hostname}:/sites/Nope"), 404, "itemNotFound")


def test_group_drive(emu: GraphEmulator, graph: Graph) -> None:
    drive = graph.get(f"/groups/{emu.group_id}/drive").json()
    assert drive["id"] == emu.group_drive_id and drive["driveType"] == "documentLibrary"
    assert graph.put(f"/groups/{emu.group_id}/drive/root:/plan.txt:/content", b"x").status_code == 201


def test_unknown_segments_and_versions_are_400(emu: GraphEmulator, graph: Graph) -> None:
    error = assert_graph_error(graph.get("/bogus"), 400, "BadRequest")
    assert error["message"] == "Resource not found for the segment 'bogus'."
    assert_graph_error(graph.get("root/bogus"), 400, "BadRequest")
    response = graph.session.get(f"{emu.graph_origin}/v9.9/me")
    assert_graph_error(response, 400, "BadRequest")


def test_personal_mode_hashes_and_no_ctag(make_emulator: object) -> None:
    emu = make_emulator(mode="personal")  # type: ignore[operator]
    graph = Graph(emu, user_token(emu), drive="/me/drive")
    item = graph.upload("hello.txt", b"hello world")
    hashes = item["file"]["hashes"]
    assert hashes["quickXorHash"] == "aCgDG9jwBhDc4Q1yawMZAAAAAAA="
    assert hashes["sha1Hash"] == "2AAE6C35C94FCFB415DBE95F408B9CE91EE846ED"
    assert hashes["sha256Hash"] == "B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9"
    assert "cTag" not in item
    assert graph.get("/me/drive").json()["driveType"] == "personal"
    assert_graph_error(graph.post(f"items/{item['id']}/permanentDelete"), 400, "invalidRequest")


def test_business_mode_has_only_quickxor_and_ctag(graph: Graph) -> None:
    item = graph.upload("hello.txt", b"hello world")
    assert item["file"]["hashes"] == {"quickXorHash": "aCgDG9jwBhDc4Q1yawMZAAAAAAA="}
    assert item["cTag"].startswith('"c:')
