"""JSON batching as https://learn.microsoft.com/graph/json-batching describes it."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_onedrive.testing import GraphEmulator
from tests.emulator.conftest import Graph, assert_graph_error

pytestmark = pytest.mark.timeout(60)

JSON = {"Content-Type": "application/json"}


def batch(graph: Graph, requests: list[dict[str, Any]]) -> Any:
    return graph.post("/$batch", json={"requests": requests})


def by_id(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {r["id"]: r for r in response.json()["responses"]}


def test_requests_answered_by_id_whatever_their_status(emu: GraphEmulator, graph: Graph) -> None:
    graph.upload("b/a.txt", b"hello")
    drive = graph.drive
    response = batch(
        graph,
        [
            {
                "id": "1",
                "method": "PATCH",
                "url": f"{drive}/root:/b/a.txt",
                "headers": JSON,
                "body": {"fileSystemInfo": {"lastModifiedDateTime": "2020-01-02T03:04:05Z"}},
            },
            {"id": "2", "method": "GET", "url": f"{drive}/root:/b/missing.txt"},
            {"id": "3", "method": "GET", "url": f"{drive.lstrip('/')}/root:/b:/children?$select=name"},
        ],
    )
    answers = by_id(response)
    assert [r["id"] for r in response.json()["responses"]] != ["1", "2", "3"]  # order is not the requests'
    assert answers["1"]["status"] == 200
    assert answers["1"]["body"]["fileSystemInfo"]["lastModifiedDateTime"] == "2020-01-02T03:04:05Z"
    assert answers["2"]["status"] == 404 and answers["2"]["body"]["error"]["code"] == "itemNotFound"
    assert answers["3"]["status"] == 200 and answers["3"]["body"]["value"] == [{"name": "a.txt"}]
    assert graph.get("root:/b/a.txt").json()["fileSystemInfo"]["lastModifiedDateTime"] == "2020-01-02T03:04:05Z"


def test_batch_shape_errors_fail_the_whole_batch(emu: GraphEmulator, graph: Graph) -> None:
    get_root = {"method": "GET", "url": f"{graph.drive}/root"}
    too_many = [{"id": str(i), **get_root} for i in range(21)]
    assert_graph_error(batch(graph, too_many), 400, "BadRequest")
    assert by_id(batch(graph, too_many[:20]))["19"]["status"] == 200
    assert_graph_error(batch(graph, [{"id": "a", **get_root}, {"id": "A", **get_root}]), 400, "BadRequest")
    assert_graph_error(batch(graph, [{"method": "GET", "url": "/me"}]), 400, "BadRequest")
    assert_graph_error(batch(graph, []), 400, "BadRequest")
    assert_graph_error(graph.get("/$batch"), 405, "BadRequest")


def test_per_request_errors_and_dependencies(emu: GraphEmulator, graph: Graph) -> None:
    drive = graph.drive
    answers = by_id(
        batch(
            graph,
            [
                {"id": "abs", "method": "GET", "url": f"{emu.graph_url}{drive}/root"},
                {"id": "nobody", "method": "PATCH", "url": f"{drive}/root", "body": {"name": "x"}},
                {"id": "nested", "method": "POST", "url": "/$batch", "headers": JSON, "body": {"requests": []}},
                {"id": "missing", "method": "GET", "url": f"{drive}/root:/nope"},
                {"id": "after", "method": "GET", "url": f"{drive}/root", "dependsOn": ["missing"]},
            ],
        )
    )
    assert {k: v["status"] for k, v in answers.items()} == {
        "abs": 400,
        "nobody": 400,
        "nested": 400,
        "missing": 404,
        "after": 424,
    }


def test_the_batch_is_authorised_once_for_all_its_requests(emu: GraphEmulator, graph: Graph) -> None:
    anonymous = emu.http_session().post(
        f"{emu.graph_url}/$batch", json={"requests": [{"id": "1", "method": "GET", "url": "/me"}]}
    )
    assert_graph_error(anonymous, 401, "InvalidAuthenticationToken")


def test_each_request_is_throttled_on_its_own(emu: GraphEmulator, graph: Graph) -> None:
    graph.upload("t/a.txt", b"a")
    graph.upload("t/b.txt", b"b")
    emu.faults.add("status", method="PATCH", path=r"/b\.txt$", status=429, retry_after=2, times=1)
    steps = [
        {
            "id": n,
            "method": "PATCH",
            "url": f"{graph.drive}/root:/t/{n}.txt",
            "headers": JSON,
            "body": {"description": n},
        }
        for n in ("a", "b")
    ]
    answers = by_id(batch(graph, steps))
    assert answers["a"]["status"] == 200
    assert answers["b"]["status"] == 429 and answers["b"]["headers"]["Retry-After"] == "2"
    assert by_id(batch(graph, steps[1:]))["b"]["status"] == 200
