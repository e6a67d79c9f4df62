"""Fault injection (deterministic rules from Python and JSON) and the request log's redaction."""

from __future__ import annotations

import email.utils
import json
import time

import pytest
import requests

from airflow_provider_onedrive.testing import GraphEmulator
from tests.emulator.conftest import Graph, app_token, assert_graph_error

pytestmark = pytest.mark.timeout(60)


def test_status_faults_with_retry_after_variants(emu: GraphEmulator, graph: Graph) -> None:
    emu.faults.add("status", method="GET", path=r"/root$", status=429, retry_after=3, times=1)
    throttled = graph.get("root")
    assert_graph_error(throttled, 429, "TooManyRequests")
    assert throttled.headers["Retry-After"] == "3"
    assert graph.get("root").status_code == 200
    emu.faults.add("status", path=r"/root$", status=503, retry_after=0.5, times=1)
    assert graph.get("root").headers["Retry-After"] == "0.5"
    emu.faults.add("status", path=r"/root$", status=429, retry_after=10, retry_after_http_date=True, times=1)
    dated = graph.get("root").headers["Retry-After"]
    assert email.utils.parsedate_to_datetime(dated).timestamp() > time.time() + 5
    emu.faults.add("status", path=r"/root$", status=429, times=1)
    assert "Retry-After" not in graph.get("root").headers
    for status, code in ((500, "generalException"), (502, "BadGateway"), (504, "GatewayTimeout")):
        emu.faults.add("status", path=r"/root$", status=status, times=1)
        assert_graph_error(graph.get("root"), status, code)


def test_nth_every_and_times(emu: GraphEmulator, graph: Graph) -> None:
    emu.faults.add("status", path=r"/root$", nth=2, status=503)
    assert [graph.get("root").status_code for _ in range(4)] == [200, 503, 200, 200]
    emu.faults.clear()
    rule = emu.faults.add("status", path=r"/root$", every=3, times=2, status=500)
    assert [graph.get("root").status_code for _ in range(9)] == [200, 200, 500, 200, 200, 500, 200, 200, 200]
    assert rule.fired == 2


def test_probability_is_deterministic_per_seed(make_emulator: object) -> None:
    def pattern(seed: int) -> list[int]:
        emu = make_emulator(seed=seed)  # type: ignore[operator]
        emu.faults.add("status", path=r"/root$", probability=0.5, status=503)
        graph = Graph(emu, app_token(emu))
        return [graph.get("root").status_code for _ in range(20)]

    first, again, other = pattern(7), pattern(7), pattern(8)
    assert first == again and 200 in first and 503 in first
    assert first != other


def test_latency_per_rule_and_global(emu: GraphEmulator, graph: Graph) -> None:
    emu.faults.add("latency", path=r"/root$", seconds=0.3, times=1)
    started = time.perf_counter()
    assert graph.get("root").status_code == 200
    assert time.perf_counter() - started >= 0.3
    emu.faults.latency = 0.2
    started = time.perf_counter()
    graph.get("root")
    assert time.perf_counter() - started >= 0.2


@pytest.mark.parametrize("when", ["before", "after"])
def test_connection_reset(emu: GraphEmulator, graph: Graph, when: str) -> None:
    emu.faults.add("reset", method="PUT", path="reset.txt", when=when, times=1)
    with pytest.raises(requests.ConnectionError):
        graph.put("root:/reset.txt:/content", b"x")
    assert (emu.item("reset.txt") is not None) == (when == "after")
    assert graph.put("root:/reset.txt:/content", b"x").status_code in (200, 201)


def test_truncated_download(emu: GraphEmulator, graph: Graph) -> None:
    item = graph.upload("cut.bin", b"0123456789" * 1000)
    emu.faults.add("truncate", kind="download", after_bytes=100, times=1)
    location = graph.get(f"items/{item['id']}/content").headers["Location"]
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        emu.http_session().get(location).content  # noqa: B018
    assert len(emu.http_session().get(location).content) == 10_000
    record = next(r for r in emu.requests if r.kind == "download")
    assert record.fault == "truncate" and record.bytes_out == 100


def test_token_expired_and_upload_session_expired(emu: GraphEmulator, graph: Graph) -> None:
    emu.faults.add("token_expired", path=r"/root$", times=1)
    error = assert_graph_error(graph.get("root"), 401, "InvalidAuthenticationToken")
    assert "expired" in error["message"] and graph.get("root").status_code == 200
    url = graph.post("root:/s.bin:/createUploadSession", {}).json()["uploadUrl"]
    emu.faults.add("upload_session_expired", kind="upload", times=1)
    response = emu.http_session().put(url, data=b"abc", headers={"Content-Range": "bytes 0-2/3"})
    assert_graph_error(response, 404, "itemNotFound")


def test_eventual_consistency_404_after_create(emu: GraphEmulator, graph: Graph) -> None:
    emu.faults.add("eventual_404", method="PUT", path="fresh.txt", reads=2, times=1)
    created = graph.put("root:/fresh.txt:/content", b"new")
    assert created.status_code == 201
    assert graph.get("root:/fresh.txt").status_code == 404
    assert graph.get(f"items/{created.json()['id']}").status_code == 404
    assert graph.get("root:/fresh.txt").status_code == 200


def test_rules_validate_their_fields(emu: GraphEmulator) -> None:
    with pytest.raises(ValueError, match="action"):
        emu.faults.add("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most one"):
        emu.faults.add("status", nth=1, every=2)


def test_rules_from_json_survive_reset(make_emulator: object, tmp_path: object) -> None:
    from airflow_provider_onedrive.testing.faults import read_rules

    path = tmp_path / "rules.json"  # type: ignore[operator]
    path.write_text(json.dumps([{"action": "status", "status": 503, "path": "/root$", "nth": 1}]))
    emu = make_emulator(fault_rules=read_rules(path))  # type: ignore[operator]
    graph = Graph(emu, app_token(emu))
    assert [graph.get("root").status_code for _ in range(2)] == [503, 200]
    emu.reset()
    graph = Graph(emu, app_token(emu))
    assert [graph.get("root").status_code for _ in range(2)] == [503, 200]


def test_request_log_names_headers_and_redacts_credentials(emu: GraphEmulator) -> None:
    token = app_token(emu)
    graph = Graph(emu, token)
    item = graph.upload("log.txt", b"12345")
    location = graph.get(f"items/{item['id']}/content").headers["Location"]
    emu.http_session().get(location)
    url = graph.post("root:/up.bin:/createUploadSession", {}).json()["uploadUrl"]
    emu.http_session().put(url, data=b"abc", headers={"Content-Range": "bytes 0-2/3"})
    log = emu.requests
    dump = repr(log)
    for secret in (token, emu.client_secret, location.split("tempauth=")[1].split("&")[0]):
        assert secret not in dump
    download = next(r for r in log if r.kind == "download")
    assert "tempauth=REDACTED" in download.path and "tempauth" in download.query
    assert download.host.startswith("localhost:") and "authorization" not in download.headers
    upload = next(r for r in log if r.kind == "upload")
    assert upload.bytes_in == 3 and upload.status == 201 and "content-range" in upload.headers
    put = next(r for r in log if r.method == "PUT" and r.kind == "graph")
    assert put.bytes_in == 5 and put.status == 201 and "authorization" in put.headers
    token_call = next(r for r in log if r.kind == "identity")
    assert token_call.path.endswith("/oauth2/v2.0/token") and token_call.bytes_out > 0
