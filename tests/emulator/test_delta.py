"""Delta fidelity: the emulator's ``{item}/delta`` against Graph's documentation.

- driveItem: delta, https://learn.microsoft.com/en-us/graph/api/driveitem-delta (v1.0) and its OneDrive twin
  https://learn.microsoft.com/en-us/onedrive/developer/rest-api/api/driveitem_delta: pages with
  ``@odata.nextLink`` until one final page with ``@odata.deltaLink``; ``token=latest`` is an empty page with a
  deltaLink; deleted items carry the ``deleted`` facet and are tracked by id; the feed shows each item's
  latest state and may repeat items; ``parentReference`` has no ``path``; Business omits a deleted item's
  name; a token the service can no longer serve is ``410 Gone`` with a ``Location`` header holding a new
  nextLink that starts a fresh enumeration (error ``resyncChangesApplyDifferences``).
- Release notes, "View deltas", https://learn.microsoft.com/en-us/onedrive/developer/rest-api/getting-started/
  release-notes#view-deltas: on OneDrive for Business and SharePoint delta is only available on the root, and
  createdBy, cTag and lastModifiedBy are not returned.
"""

from __future__ import annotations

import email.utils
from typing import Any

from airflow_provider_onedrive.testing import GraphEmulator
from tests.emulator.conftest import Graph, app_token, assert_graph_error


def pages(graph: Graph, link: str, **params: str) -> list[dict[str, Any]]:
    """Every page of one delta round, following nextLink verbatim until the deltaLink."""
    found = [graph.get(link, params=params or None).json()]
    while "@odata.nextLink" in found[-1]:
        found.append(graph.get(found[-1]["@odata.nextLink"]).json())
    return found


def values(round_pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for page in round_pages for v in page["value"]]


def test_paging_ends_with_exactly_one_delta_link(emu: GraphEmulator, graph: Graph) -> None:
    """driveitem-delta: "continue calling with the @odata.nextLink until you no longer see an @odata.nextLink";
    the deltaLink is "returned instead of @odata.nextLink after all current changes have been returned"."""
    for name in ("d1/a.txt", "d1/b.txt", "d2/c.txt"):
        graph.upload(name, name.encode())
    round_pages = pages(graph, "root/delta", **{"$top": "2"})
    assert len(round_pages) == 3  # root, d1, d2, a, b, c in pages of two
    assert all("@odata.nextLink" in p and "@odata.deltaLink" not in p for p in round_pages[:-1])
    assert "@odata.deltaLink" in round_pages[-1] and "@odata.nextLink" not in round_pages[-1]
    names = [v["name"] for v in values(round_pages)]
    assert sorted(names) == ["a.txt", "b.txt", "c.txt", "d1", "d2", "root"]
    assert names.index("d1") < names.index("a.txt")  # parents before children
    assert graph.get(round_pages[-1]["@odata.deltaLink"]).json()["value"] == []


def test_token_latest_is_an_empty_page_with_a_delta_link(emu: GraphEmulator, graph: Graph) -> None:
    """driveitem-delta, "Retrieving the current deltaLink": ``?token=latest`` "returns empty response with
    latest delta token"; only later changes come back from it."""
    graph.upload("before.txt", b"existing")
    latest = graph.get("root/delta", params={"token": "latest"}).json()
    assert latest["value"] == [] and "@odata.nextLink" not in latest
    graph.upload("after.txt", b"new")
    names = {v["name"] for v in values(pages(graph, latest["@odata.deltaLink"]))}
    assert "after.txt" in names and "before.txt" not in names


def test_items_in_latest_state_tracked_by_id_without_path(emu: GraphEmulator, graph: Graph) -> None:
    """driveitem-delta, Remarks: "The delta feed shows the latest state for each item, not each change";
    "parentReference ... will not include a value for path"; "you should always track items by id"."""
    link = graph.get("root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
    item = graph.upload("f/x.txt", b"1")
    graph.upload("f/x.txt", b"22")
    assert graph.patch(f"items/{item['id']}", json={"name": "renamed.txt"}).status_code == 200
    changes = values(pages(graph, link))
    [file] = [v for v in changes if v["id"] == item["id"]]
    assert (file["name"], file["size"]) == ("renamed.txt", 2)
    for value in changes:
        assert "path" not in value.get("parentReference", {}), value
        assert value["parentReference"]["driveId"] == emu.drive_id
    folder = graph.get("root:/f").json()
    assert file["parentReference"]["id"] == folder["id"]
    # a non-delta GET of the same item still has the path
    assert graph.get(f"items/{item['id']}").json()["parentReference"]["path"].endswith("root:/f")


def test_deleted_items_carry_the_deleted_facet_by_id(emu: GraphEmulator, graph: Graph) -> None:
    """driveitem-delta: "Deleted items are returned with the deleted facet"; on OneDrive for Business delete
    operations omit ``name`` (Remarks table); on OneDrive personal they keep it."""
    folder = graph.upload("d2/b.txt", b"b")
    parent = graph.get("root:/d2").json()
    link = graph.get("root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
    assert graph.delete("root:/d2").status_code == 204
    changes = {v["id"]: v for v in values(pages(graph, link))}
    assert changes[folder["id"]]["deleted"] == {"state": "deleted"}
    assert changes[parent["id"]]["deleted"] == {"state": "deleted"}
    assert all("name" not in changes[i] for i in (folder["id"], parent["id"]))  # Business: no name


def test_personal_deleted_items_keep_their_name(make_emulator) -> None:
    emu = make_emulator(mode="personal")
    graph = Graph(emu, app_token(emu))
    item = graph.upload("gone.txt", b"x")
    link = graph.get("root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
    assert graph.delete("root:/gone.txt").status_code == 204
    [change] = [v for v in values(pages(graph, link)) if v["id"] == item["id"]]
    assert change["deleted"] == {"state": "deleted"} and change["name"] == "gone.txt"


def test_business_delta_is_root_only_and_omits_created_by_and_ctag(emu: GraphEmulator, graph: Graph) -> None:
    """Release notes, "View deltas": "The delta action is only available on the root item of a drive"; createdBy,
    cTag and lastModifiedBy are not returned."""
    item = graph.upload("d1/a.txt", b"a")
    assert "cTag" in item and "createdBy" in item  # an ordinary answer has them
    assert_graph_error(graph.get("root:/d1:/delta"), 400, "invalidRequest")
    [change] = [v for v in values(pages(graph, "root/delta")) if v["id"] == item["id"]]
    assert not {"cTag", "createdBy", "lastModifiedBy"} & set(change)
    assert change["file"]["hashes"]["quickXorHash"]


def test_personal_delta_works_on_a_folder(make_emulator) -> None:
    """OneDrive personal supports delta on any folder (the release notes restrict only Business/SharePoint)."""
    emu = make_emulator(mode="personal")
    graph = Graph(emu, app_token(emu))
    graph.upload("d1/a.txt", b"a")
    graph.upload("d2/b.txt", b"b")
    assert {v["name"] for v in values(pages(graph, "root:/d1:/delta"))} == {"d1", "a.txt"}
    d1 = graph.get("root:/d1").json()
    assert {v["name"] for v in values(pages(graph, f"items/{d1['id']}/delta"))} == {"d1", "a.txt"}


def test_folder_delta_on_business_can_be_allowed_for_benchmarks(make_emulator) -> None:
    emu = make_emulator(folder_delta="allow")
    graph = Graph(emu, app_token(emu))
    graph.upload("d1/a.txt", b"a")
    assert {v["name"] for v in values(pages(graph, "root:/d1:/delta"))} == {"d1", "a.txt"}


def test_select_applies_to_delta_items(emu: GraphEmulator, graph: Graph) -> None:
    """driveitem-delta supports ``$select``: a selected answer carries no pre-authenticated download URL."""
    graph.upload("x.txt", b"x")
    for value in values(pages(graph, "root/delta", **{"$select": "id,name,eTag"})):
        assert set(value) <= {"id", "name", "eTag"}, value


def test_stale_token_is_410_with_a_location_that_starts_over(emu: GraphEmulator, graph: Graph) -> None:
    """driveitem-delta: "the service returns an HTTP 410 Gone error with an error response containing one of the
    error codes below, and a Location header containing a new nextLink that starts a fresh delta enumeration
    from scratch" (resyncChangesApplyDifferences)."""
    graph.upload("kept.txt", b"k")
    link = graph.get("root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
    emu.invalidate_delta_tokens()
    stale = graph.get(link)
    error = assert_graph_error(stale, 410, "resyncRequired")
    assert error["innerError"]["code"] == "resyncChangesApplyDifferences"
    location = stale.headers["Location"]
    assert location.startswith(emu.graph_url) and "/delta" in location and "token=" not in location
    fresh = pages(graph, location)
    assert {"root", "kept.txt"} <= {v["name"] for v in values(fresh)}  # everything, from scratch
    assert graph.get(fresh[-1]["@odata.deltaLink"]).status_code == 200


def test_date_header_follows_the_emulator_clock(emu: GraphEmulator, graph: Graph) -> None:
    """Timestamps and the Date header come from one clock, as they do from one service."""
    emu.advance_time(3 * 86400)
    response = graph.get("root/delta", params={"token": "latest"})
    served = email.utils.parsedate_to_datetime(response.headers["Date"]).timestamp()
    assert abs(served - emu.clock.now()) < 5
