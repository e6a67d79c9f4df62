"""driveItem fidelity: addressing, encoding, listing, simple upload, folders, delete, move, copy, quota (delta:
test_delta.py)."""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_onedrive.hashing import quickxorhash
from airflow_provider_onedrive.testing import GraphEmulator
from tests.emulator.conftest import Graph, app_token, assert_graph_error

pytestmark = pytest.mark.timeout(120)


def enc(path: str) -> str:
    return "/".join(quote(segment, safe="") for segment in path.split("/"))


def test_item_json_shape_and_parent_reference(emu: GraphEmulator, graph: Graph) -> None:
    item = graph.upload("Reports/2024/q1.csv", b"a,b\n1,2\n")
    assert set(item) >= {
        "id",
        "name",
        "size",
        "eTag",
        "cTag",
        "createdDateTime",
        "lastModifiedDateTime",
        "webUrl",
        "parentReference",
        "file",
        "fileSystemInfo",
        "@microsoft.graph.downloadUrl",
    }
    assert item["name"] == "q1.csv" and item["size"] == 8
    assert item["file"] == {"mimeType": "text/csv", "hashes": {"quickXorHash": quickxorhash(b"a,b\n1,2\n")}}
    assert item["createdDateTime"].endswith("Z") and "folder" not in item
    parent = item["parentReference"]
    assert parent["driveId"] == emu.drive_id and parent["driveType"] == "business"
    assert parent["path"] == "/drive/root:/Reports/2024"
    folder = graph.get(f"items/{parent['id']}").json()
    assert folder["folder"] == {"childCount": 1} and folder["name"] == "2024" and "file" not in folder
    by_drive_id = Graph(emu, app_token(emu), drive=f"/drives/{emu.drive_id}")
    assert by_drive_id.get("root:/Reports/2024/q1.csv").json()["parentReference"]["path"] == (
        f"/drives/{emu.drive_id}/root:/Reports/2024"
    )
    top = graph.get("root:/Reports").json()
    assert top["parentReference"]["path"] == "/drive/root:"
    root = graph.get("root").json()
    assert root["root"] == {} and "path" not in root["parentReference"]


def test_path_forms_address_the_same_item(graph: Graph) -> None:
    item = graph.upload("a/b/c.txt", b"x")
    folder_id = item["parentReference"]["id"]
    for path in ("root:/a/b/c.txt", "root:/a/b/c.txt:", f"items/{item['id']}", f"items/{folder_id}:/c.txt:"):
        assert graph.get(path).json()["id"] == item["id"], path
    names = [c["name"] for c in graph.get("root:/a/b:/children").json()["value"]]
    assert names == ["c.txt"]
    relative = graph.put(f"items/{folder_id}:/d.txt:/content", b"dd")
    assert relative.status_code == 201 and relative.json()["parentReference"]["id"] == folder_id


def test_sdk_style_item_ids_root_alias_and_one_encoded_segment(graph: Graph) -> None:
    # The Graph SDKs send by_drive_item_id("root:/a/b c.txt:") as ONE percent-encoded segment, and use "root"
    # as an item id (items/root/children); Graph routes both like the plain forms.
    item = graph.upload("a/b c%.txt", b"x")
    folder_id = item["parentReference"]["id"]
    for path in (
        "items/root%3A%2Fa%2Fb%20c%25.txt%3A",
        f"items/{folder_id}%3a%2fb%20c%25.txt%3a",
        "items/root:/a/b%20c%25.txt:",
    ):
        assert graph.get(path).json()["id"] == item["id"], path
    assert graph.get("items/root%3A%2Fa%2Fb%20c%25.txt%3A/content").status_code == 302
    assert [c["name"] for c in graph.get("items/root%3A%2Fa%3A/children").json()["value"]] == ["b c%.txt"]
    assert [c["name"] for c in graph.get("items/root/children").json()["value"]] == ["a"]
    put = graph.put("items/root%3A%2Fa%2Fnew.txt%3A/content", b"n")
    assert put.status_code == 201 and put.json()["parentReference"]["id"] == folder_id
    assert_graph_error(graph.get("items/root%3A%2Fa%2Fmissing.txt%3A"), 404, "itemNotFound")


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"*:<>?/\\|'),
        min_size=1,
        max_size=40,
    ).filter(
        lambda n: n == n.strip(" ") and not n.endswith(".") and "_vti_" not in n.lower() and not n.startswith("~$")
    )
)
def test_names_round_trip_through_per_segment_encoding(emu: GraphEmulator, name: str) -> None:
    from airflow_provider_onedrive.testing.store import _RESERVED

    if name.lower() in _RESERVED:
        return
    graph = Graph(emu, app_token(emu))
    created = graph.put(f"root:/rt/{enc(name)}:/content", name.encode())
    assert created.status_code in (200, 201), (name, created.text)
    assert created.json()["name"] == name
    fetched = graph.get(f"root:/rt/{enc(name)}")
    assert fetched.json()["name"] == name and fetched.json()["size"] == len(name.encode())
    download = graph.get(f"items/{created.json()['id']}/content")
    assert graph.session.get(download.headers["Location"]).content == name.encode()


@pytest.mark.parametrize(
    "name",
    [
        'a"b',
        "a*b",
        "a:b",
        "a<b",
        "a>b",
        "a|b",
        "a\\b",
        " lead",
        "trail ",
        "dot.",
        "CON",
        "desktop.ini",
        "~$lock.docx",
        "x_vti_y",
        ".lock",
        "tab\there",  # control characters (U+0000-U+001F, U+007F-U+009F), as SharePoint Online refuses them
        "bell\x07.txt",
        "del\x7f.txt",
        "c1\x85.txt",
    ],
)
def test_names_graph_refuses(graph: Graph, name: str) -> None:
    response = graph.put(f"root:/{enc(name)}:/content", b"x")
    assert_graph_error(response, 400, "invalidRequest")
    folder = graph.post("root/children", {"name": name, "folder": {}})
    assert_graph_error(folder, 400, "invalidRequest")


def test_path_longer_than_400_characters_is_refused(graph: Graph) -> None:
    deep = "/".join(["d" * 99] * 4) + "/file.txt"
    assert_graph_error(graph.put(f"root:/{deep}:/content", b"x"), 400, "invalidRequest")


def test_names_match_case_insensitively_and_keep_their_case(graph: Graph) -> None:
    first = graph.upload("Docs/Report.CSV", b"one")
    assert graph.get("root:/docs/report.csv").json()["id"] == first["id"]
    replaced = graph.put("root:/DOCS/REPORT.csv:/content", b"two")
    assert replaced.status_code == 200 and replaced.json()["id"] == first["id"]
    assert replaced.json()["name"] == "Report.CSV"
    clash = graph.put("root:/docs/report.csv:/content", b"3", params={"@microsoft.graph.conflictBehavior": "fail"})
    assert_graph_error(clash, 409, "nameAlreadyExists")


def test_simple_upload_conflicts_and_status_codes(emu: GraphEmulator, graph: Graph) -> None:
    created = graph.put("root:/c.txt:/content", b"1")
    assert created.status_code == 201
    etag, ctag = created.json()["eTag"], created.json()["cTag"]
    replaced = graph.put("root:/c.txt:/content", b"22")
    assert replaced.status_code == 200 and replaced.json()["size"] == 2
    assert replaced.json()["eTag"] != etag and replaced.json()["cTag"] != ctag
    renamed = graph.put("root:/c.txt:/content", b"3", params={"@microsoft.graph.conflictBehavior": "rename"})
    assert renamed.status_code == 201 and renamed.json()["name"] == "c 1.txt"
    assert emu.read_file("c.txt") == b"22"
    by_id = graph.put(f"items/{created.json()['id']}/content", b"444")
    assert by_id.status_code == 200 and emu.read_file("c.txt") == b"444"
    bad = graph.put("root:/c.txt:/content", b"5", params={"@microsoft.graph.conflictBehavior": "explode"})
    assert_graph_error(bad, 400, "invalidRequest")
    assert graph.put("root:/empty.bin:/content", b"").json()["size"] == 0


def test_renaming_metadata_keeps_ctag(graph: Graph) -> None:
    item = graph.upload("m.txt", b"x")
    renamed = graph.patch(f"items/{item['id']}", {"name": "n.txt"}).json()
    assert renamed["eTag"] != item["eTag"] and renamed["cTag"] == item["cTag"]


def test_simple_upload_size_limit_and_parent_creation_setting(emu: GraphEmulator, graph: Graph) -> None:
    emu.settings.max_simple_upload_size = 1000
    response = graph.put("root:/big.bin:/content", b"x" * 1001)
    assert response.status_code == 413 and response.json()["error"]["code"] == "invalidRequest"
    assert emu.item("big.bin") is None
    emu.settings.simple_upload_creates_parents = False
    assert_graph_error(graph.put("root:/missing/x.txt:/content", b"x"), 404, "itemNotFound")
    emu.settings.simple_upload_creates_parents = True
    assert graph.put("root:/missing/x.txt:/content", b"x").status_code == 201


def test_chunked_simple_upload_is_accepted(emu: GraphEmulator, graph: Graph) -> None:
    response = graph.put("root:/stream.bin:/content", iter([b"ab", b"cd" * 1000]))  # type: ignore[arg-type]
    assert response.status_code == 201 and emu.read_file("stream.bin") == b"ab" + b"cd" * 1000


def test_children_paging_top_and_select(emu: GraphEmulator, graph: Graph) -> None:
    for i in range(450):
        emu.put_file(f"many/f{i:04d}.txt", b"x")
    first = graph.get("root:/many:/children").json()
    assert len(first["value"]) == 200
    next_link = first["@odata.nextLink"]
    assert urlsplit(next_link).scheme == "https" and "$skiptoken=" in next_link
    names = [v["name"] for v in first["value"]]
    while next_link:
        page = graph.get(next_link).json()
        names += [v["name"] for v in page["value"]]
        next_link = page.get("@odata.nextLink")
    assert names == [f"f{i:04d}.txt" for i in range(450)]
    big = graph.get("root:/many:/children", params={"$top": "1000"}).json()
    assert len(big["value"]) == 450 and "@odata.nextLink" not in big
    assert_graph_error(graph.get("root:/many:/children", params={"$top": "1001"}), 400, "invalidRequest")
    small = graph.get("root:/many:/children", params={"$top": "2", "$select": "id,name"}).json()
    assert [set(v) for v in small["value"]] == [{"id", "name"}] * 2
    assert "$select=id,name" in small["@odata.nextLink"] or "%24select=id%2Cname" in small["@odata.nextLink"]
    assert "$top=2" in small["@odata.nextLink"] or "%24top=2" in small["@odata.nextLink"]
    expanded = graph.get("root:/many", params={"$expand": "children"}).json()
    assert len(expanded["children"]) == 200


def test_create_folder_conflict_behaviours(graph: Graph) -> None:
    made = graph.post("root/children", {"name": "Folder", "folder": {}, "@microsoft.graph.conflictBehavior": "fail"})
    assert made.status_code == 201 and made.json()["folder"]["childCount"] == 0
    assert_graph_error(graph.post("root/children", {"name": "folder", "folder": {}}), 409, "nameAlreadyExists")
    renamed = [
        graph.post("root/children", {"name": "Folder", "folder": {}, "@microsoft.graph.conflictBehavior": "rename"})
        for _ in range(2)
    ]
    assert [r.json()["name"] for r in renamed] == ["Folder 1", "Folder 2"]
    graph.upload("report.final.csv", b"x")
    file_rename = graph.put(
        "root:/report.final.csv:/content", b"y", params={"@microsoft.graph.conflictBehavior": "rename"}
    )
    assert file_rename.json()["name"] == "report.final 1.csv"
    kept = graph.post("root/children", {"name": "Folder", "folder": {}, "@microsoft.graph.conflictBehavior": "replace"})
    assert kept.status_code in (200, 201) and kept.json()["name"] == "Folder"


def test_nested_create_with_patch(graph: Graph) -> None:
    created = graph.patch("root:/x/y/z", {"folder": {}})
    assert created.status_code == 201 and created.json()["name"] == "z"
    assert created.json()["parentReference"]["path"] == "/drive/root:/x/y"
    again = graph.patch("root:/x/y/z", {"folder": {}})
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    assert_graph_error(graph.patch("root:/nope/file", {"name": "q"}), 404, "itemNotFound")


def test_delete_to_recycle_bin_with_if_match(emu: GraphEmulator, graph: Graph) -> None:
    graph.upload("trash/a.txt", b"aaaa")
    folder = graph.get("root:/trash").json()
    assert_graph_error(graph.delete("root:/trash", headers={"If-Match": '"{0},1"'}), 412, "resourceModified")
    assert emu.item("trash/a.txt") is not None
    assert graph.delete("root:/trash", headers={"If-Match": folder["eTag"]}).status_code == 204
    assert_graph_error(graph.get("root:/trash/a.txt"), 404, "itemNotFound")
    assert_graph_error(graph.delete("root:/trash"), 404, "itemNotFound")
    assert emu.deleted_items() == ["trash"]
    quota = graph.get("/drives/" + emu.drive_id).json()["quota"]
    assert quota["deleted"] == 4 and quota["used"] == 4
    assert graph.delete("root").status_code == 403


def test_permanent_delete_frees_quota(emu: GraphEmulator, graph: Graph) -> None:
    item = graph.upload("p.bin", b"12345")
    assert graph.post(f"items/{item['id']}/permanentDelete").status_code == 204
    assert emu.deleted_items() == []
    assert graph.get(f"/drives/{emu.drive_id}").json()["quota"]["used"] == 0


def test_move_and_rename(emu: GraphEmulator, graph: Graph) -> None:
    item = graph.upload("src/file.txt", b"data")
    dest = graph.patch("root:/dest", {"folder": {}}).json()
    moved = graph.patch(f"items/{item['id']}", {"parentReference": {"id": dest["id"]}, "name": "renamed.txt"})
    assert moved.status_code == 200
    assert moved.json()["parentReference"]["path"] == "/drive/root:/dest" and moved.json()["name"] == "renamed.txt"
    assert emu.read_file("dest/renamed.txt") == b"data" and emu.item("src/file.txt") is None
    graph.upload("dest/other.txt", b"o")
    clash = graph.patch(f"items/{moved.json()['id']}", {"name": "OTHER.txt"})
    assert_graph_error(clash, 409, "nameAlreadyExists")
    by_path = graph.patch(f"items/{moved.json()['id']}", {"parentReference": {"path": "/drive/root:/src"}})
    assert by_path.json()["parentReference"]["path"] == "/drive/root:/src"
    assert_graph_error(
        graph.patch(f"items/{dest['id']}", {"parentReference": {"id": dest["id"]}}), 400, "invalidRequest"
    )
    stamp = {"fileSystemInfo": {"lastModifiedDateTime": "2020-01-02T03:04:05.678Z"}}
    assert graph.patch("root:/src/renamed.txt", stamp).json()["fileSystemInfo"]["lastModifiedDateTime"] == (
        "2020-01-02T03:04:05Z"
    )


def test_copy_with_monitor(emu: GraphEmulator, graph: Graph) -> None:
    emu.settings.copy_delay = 0.3
    graph.upload("orig/a.txt", b"A")
    graph.upload("orig/sub/b.txt", b"B")
    folder = graph.get("root:/orig").json()
    response = graph.post(
        f"items/{folder['id']}/copy",
        {"parentReference": {"driveId": emu.drive_id, "id": folder["parentReference"]["id"]}, "name": "copy"},
    )
    assert response.status_code == 202 and response.content == b""
    monitor = response.headers["Location"]
    anonymous = emu.http_session()
    first = anonymous.get(monitor).json()
    assert first["status"] == "inProgress" and "percentageComplete" in first
    deadline = time.monotonic() + 5
    status = first
    while status["status"] == "inProgress" and time.monotonic() < deadline:
        time.sleep(0.05)
        status = anonymous.get(monitor).json()
    assert status["status"] == "completed" and status["percentageComplete"] == 100.0
    assert graph.get(f"items/{status['resourceId']}").json()["name"] == "copy"
    assert emu.read_file("copy/sub/b.txt") == b"B"
    failing = graph.post(f"items/{folder['id']}/copy", {"name": "copy"})
    deadline = time.monotonic() + 5
    while (result := anonymous.get(failing.headers["Location"]).json())["status"] == "inProgress":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert result["status"] == "failed" and result["error"]["code"] == "nameAlreadyExists"


def test_cross_drive_copy(emu: GraphEmulator, graph: Graph) -> None:
    emu.settings.copy_delay = 0
    item = graph.upload("x.txt", b"cross")
    library = emu.libraries["Reports"]
    target_root = graph.get(f"/drives/{library}/root").json()
    response = graph.post(
        f"items/{item['id']}/copy", {"parentReference": {"driveId": library, "id": target_root["id"]}}
    )
    assert response.status_code == 202
    deadline = time.monotonic() + 5
    while emu.item("x.txt", drive_id=library) is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert emu.read_file("x.txt", drive_id=library) == b"cross"


def test_quota_limit_is_507(emu: GraphEmulator, graph: Graph) -> None:
    emu.set_quota(10)
    assert graph.put("root:/fits.bin:/content", b"x" * 10).status_code == 201
    assert_graph_error(graph.put("root:/over.bin:/content", b"y"), 507, "quotaLimitReached")
    drive = graph.get(f"/drives/{emu.drive_id}").json()
    assert drive["quota"]["remaining"] == 0 and drive["quota"]["state"] == "exceeded"
    assert graph.put("root:/fits.bin:/content", b"z" * 10).status_code == 200
