"""The fault matrix: every injected failure either completes byte-exact (hash equal, bytes sent bounded) or
fails with a clear typed error, leaving no partial local file and no forgotten upload session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_provider_onedrive.errors import (
    OneDriveLockedError,
    OneDriveNotFoundError,
    OneDriveServerError,
    OneDriveTransportError,
)
from airflow_provider_onedrive.hashing import quickxorhash
from tests.transfer.transfer_helpers import FRAGMENT, make_client, uploads, write

SIZE = 4 * FRAGMENT + 1000  # five fragments


def no_partials(directory: Path) -> bool:
    return not [p for p in os.listdir(directory) if p.endswith(".partial")]


def assert_uploaded(emu, result, data, path="f/x.bin"):
    assert emu.read_file(path) == data
    assert result.hash == quickxorhash(data) and result.size == len(data)
    assert emu.uploads.active() == []


RETRY_AFTER_FORMS = [
    pytest.param({"retry_after": 1}, id="retry-after-int"),
    pytest.param({"retry_after": 0.3}, id="retry-after-fractional"),
    pytest.param({"retry_after": 1, "retry_after_http_date": True}, id="retry-after-http-date"),
    pytest.param({"retry_after": None}, id="retry-after-missing"),
]


@pytest.mark.parametrize("form", RETRY_AFTER_FORMS)
def test_429_on_fragment_and_metadata(client, emu, payload, form):
    data = payload(SIZE)
    fragment_rule = emu.faults.add("status", status=429, kind="upload", method="PUT", nth=2, **form)
    graph_rule = emu.faults.add("status", status=429, kind="graph", method="POST", nth=1, **form)
    result = client.upload_bytes(data, "f/x.bin")
    assert_uploaded(emu, result, data)
    assert (fragment_rule.fired, graph_rule.fired) == (1, 1)
    puts = uploads(emu)
    assert len(puts) == 6 and sum(r.bytes_in for r in puts if r.status < 400) == SIZE


@pytest.mark.parametrize("status", [500, 503, 504])
def test_5xx_on_upload_and_download(client, emu, payload, tmp_path, status):
    data = payload(SIZE)
    emu.faults.add("status", status=status, kind="upload", nth=3, times=2)
    emu.faults.add("status", status=status, kind="download", nth=1)
    result = client.upload_bytes(data, "f/x.bin")
    assert_uploaded(emu, result, data)
    out = tmp_path / "out.bin"
    assert client.download_file("f/x.bin", out).hash == quickxorhash(data)
    assert out.read_bytes() == data


def test_persistent_5xx_is_a_typed_error_and_cleans_up(emu, tmp_path, payload):
    client = make_client(emu, tmp_path / "state")
    client.graph.retry = type(client.graph.retry)(max_attempts=2, backoff_base=0.01)
    src = write(tmp_path / "src.bin", payload(SIZE))
    emu.faults.add("status", status=503, kind="upload", method="PUT", every=1, times=10)
    with pytest.raises(OneDriveServerError) as caught:
        client.upload_file(src, "f/x.bin", resume=False)
    assert caught.value.attempts == 2
    assert emu.uploads.active() == [] and emu.item("f/x.bin") is None  # session cancelled, nothing committed
    emu.put_file("f/y.bin", payload(SIZE))
    emu.faults.add("status", status=503, kind="download", times=10)
    with pytest.raises(OneDriveServerError):
        client.download_file("f/y.bin", tmp_path / "dl" / "y.bin")
    assert no_partials(tmp_path / "dl") and not (tmp_path / "dl" / "y.bin").exists()


@pytest.mark.parametrize("when", ["before", "after"])
def test_connection_reset_mid_upload(client, emu, payload, when):
    """'after' = the server stored the fragment but the response was lost: the resend gets 416, the client asks
    the session for nextExpectedRanges and carries on without sending anything twice beyond that fragment."""
    data = payload(SIZE)
    rule = emu.faults.add("reset", kind="upload", method="PUT", nth=3, when=when)
    result = client.upload_bytes(data, "f/x.bin")
    assert_uploaded(emu, result, data)
    assert rule.fired == 1
    sent = sum(r.bytes_in for r in uploads(emu))
    assert SIZE <= sent <= SIZE + 2 * FRAGMENT
    if when == "after":
        assert any(r.status == 416 for r in uploads(emu))
        assert any(r.method == "GET" and r.kind == "upload" for r in emu.requests)


def test_final_fragment_committed_but_response_lost_counts_as_success(client, emu, payload):
    data = payload(SIZE)
    emu.faults.add("reset", kind="upload", method="PUT", nth=5, when="after")
    result = client.upload_bytes(data, "f/x.bin")
    assert_uploaded(emu, result, data)


def test_body_cut_short_mid_download_resumes_with_range(client, emu, tmp_path, payload):
    data = payload(SIZE)
    emu.put_file("f/x.bin", data)
    emu.faults.add("truncate", kind="download", nth=1, after_bytes=FRAGMENT + 123)
    emu.faults.add("reset", kind="download", nth=2)
    out = tmp_path / "x.bin"
    result = client.download_file("f/x.bin", out)
    assert out.read_bytes() == data and result.resumed >= 1 and no_partials(tmp_path)
    downloads = [r for r in emu.requests if r.kind == "download"]
    assert "range" not in downloads[0].headers and "range" in downloads[-1].headers
    assert sum(r.bytes_out for r in downloads) <= SIZE + 2 * FRAGMENT


def test_download_resume_when_server_ignores_range_restarts(client, emu, tmp_path, payload):
    data = payload(SIZE)
    emu.put_file("f/x.bin", data)
    emu.settings.honor_range = False
    emu.faults.add("truncate", kind="download", nth=1, after_bytes=1000)
    assert client.download_bytes("f/x.bin") == data


def test_token_expiry_mid_transfer(client, emu, tmp_path, payload):
    data = payload(SIZE)
    emu.faults.add("token_expired", kind="graph", method="POST", nth=1)
    result = client.upload_bytes(data, "f/x.bin")
    assert_uploaded(emu, result, data)
    emu.expire_tokens()
    assert client.download_bytes("f/x.bin") == data
    assert client.graph.token_provider.refreshes == 2


def test_upload_session_expiry_starts_over(client, emu, payload):
    data = payload(SIZE)
    rule = emu.faults.add("upload_session_expired", kind="upload", method="PUT", nth=3)
    result = client.upload_bytes(data, "f/x.bin")
    assert_uploaded(emu, result, data)
    assert rule.fired == 1
    creates = [r for r in emu.requests if r.path.endswith("createUploadSession")]
    assert len(creates) == 2


def test_session_expired_while_kept_for_resume_is_replaced(emu, tmp_path, payload):
    client = make_client(emu, tmp_path / "state")
    src = write(tmp_path / "src.bin", payload(SIZE))
    emu.faults.add("reset", kind="upload", method="PUT", every=1, times=20)
    client.graph.retry = type(client.graph.retry)(max_attempts=2, backoff_base=0.01)
    with pytest.raises(OneDriveTransportError):
        client.upload_file(src, "f/x.bin")
    assert len(os.listdir(tmp_path / "state")) == 1  # kept for a rerun
    emu.faults.clear()
    emu.expire_upload_sessions()
    result = make_client(emu, tmp_path / "state").upload_file(src, "f/x.bin")
    assert result.resumed_from == 0 and emu.read_file("f/x.bin") == src.read_bytes()
    assert os.listdir(tmp_path / "state") == []


def test_eventual_consistency_404_after_create(client, emu, payload):
    emu.faults.add("eventual_404", method="POST", kind="graph", path="children", nth=1, reads=2)
    folder = client.mkdir("ec")
    assert client.mkdir("ec").id == folder.id  # 409 -> read back (404 twice) -> the folder
    emu.faults.add("eventual_404", method="PUT", kind="graph", nth=1, reads=2)
    client.upload_bytes(b"small", "ec/a.txt")
    again = client.upload_bytes(b"small", "ec/a.txt")  # 409 -> identical check survives the 404s
    assert again.status == "identical"


def test_locked_file_gives_a_clear_error(client, emu):
    emu.put_file("f/report.xlsx", b"x")
    emu.faults.add("status", status=423, code="locked", kind="graph", method="PUT")
    with pytest.raises(OneDriveLockedError, match="locked"):
        client.upload_bytes(b"y", "f/report.xlsx", conflict="replace")


def test_missing_download_leaves_no_file(client, emu, tmp_path):
    with pytest.raises(OneDriveNotFoundError):
        client.download_file("f/none.bin", tmp_path / "none.bin")
    assert os.listdir(tmp_path) == [] or no_partials(tmp_path)
