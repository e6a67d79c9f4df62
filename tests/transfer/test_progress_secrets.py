"""Progress events and log lines; pre-authenticated URLs and tokens never reach logs or exceptions."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_onedrive.errors import OneDriveError
from tests.transfer.transfer_helpers import FRAGMENT, make_client


def test_progress_callback_and_log_lines(client, emu, tmp_path, payload, caplog):
    size = 4 * FRAGMENT + 10
    data = payload(size)
    events = []
    caplog.set_level(logging.INFO, logger="airflow_provider_onedrive")
    client.upload_bytes(data, "p/a.bin", progress=events.append)
    assert [e.bytes_done for e in events] == sorted(e.bytes_done for e in events)
    assert events[-1].bytes_done == size and {e.total for e in events} == {size}
    assert {e.path for e in events} == {"p/a.bin"} and events[-1].fraction == 1.0
    assert len(events) >= 5
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("progress")]
    assert any("upload p/a.bin" in line and "(100%)" in line and "/s" in line for line in lines)
    caplog.clear()
    downloaded = []
    client.download_file("p/a.bin", tmp_path / "a.bin", progress=downloaded.append)
    assert downloaded[-1].bytes_done == size and downloaded[-1].direction == "download"
    assert any("download p/a.bin" in r.getMessage() and "(100%)" in r.getMessage() for r in caplog.records)


def test_small_transfers_do_not_log_progress(client, caplog):
    caplog.set_level(logging.INFO, logger="airflow_provider_onedrive")
    events = []
    client.upload_bytes(b"tiny", "p/t.txt", progress=events.append)
    assert events and not [r for r in caplog.records if r.name.endswith("progress")]


def test_preauthenticated_urls_and_tokens_never_logged(emu, tmp_path, payload, caplog):
    """Every pre-authenticated URL (upload session, download, copy monitor) stays out of our log lines, urllib3's
    DEBUG lines (path and query) and exception text, without being registered anywhere."""
    from urllib.parse import urlsplit

    client = make_client(emu, tmp_path / "state")
    secrets: list[str] = []
    send = client.graph.session.request

    def spy(method, url, *args, **kwargs):
        if "Authorization" not in (kwargs.get("headers") or {}) and "/oauth2/" not in url:
            secrets.append(url)
        return send(method, url, *args, **kwargs)

    client.graph.session.request = spy
    caplog.set_level(logging.DEBUG)
    data = payload(3 * FRAGMENT)
    emu.faults.add("status", status=503, kind="upload", method="PUT", nth=2)
    emu.faults.add("reset", kind="download", nth=1)
    emu.faults.add("token_expired", kind="graph", nth=2)
    client.upload_bytes(data, "s/a.bin")
    assert client.download_bytes("s/a.bin") == data
    client.copy("s/a.bin", "s/b.bin")
    emu.faults.add("status", status=500, kind="upload", method="PUT", every=1)
    client.graph.retry = type(client.graph.retry)(max_attempts=2, backoff_base=0.01)
    with pytest.raises(OneDriveError) as caught:
        client.upload_bytes(data, "s/c.bin")
    kinds = {"upload": False, "download": False, "monitor": False}
    for url in secrets:
        kinds["upload"] |= "uploadSession" in url
        kinds["download"] |= "download.aspx" in url
        kinds["monitor"] |= "monitor" in url
    assert all(kinds.values()), secrets
    lines = [r.getMessage() for r in caplog.records]
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # urllib3 did log every request...
    assert any("/v1.0/drives/" in line for line in lines)  # ...and Graph API paths stay readable
    token = client.graph.token_provider.get_token()
    text = "\n".join(lines) + str(caught.value) + repr(caught.value)
    for url in secrets:
        parts = urlsplit(url)
        assert url not in text
        assert parts.path.rsplit("/", 1)[-1] not in text  # the monitor id, the last path segment
        if parts.query:
            assert parts.query not in text
    assert token not in text
    assert "tempauth" not in text.lower() and "bearer ey" not in text.lower()
