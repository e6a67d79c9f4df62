"""Control endpoints (``/_emulator/...``): a per-run token, no browser pages, no CORS-"simple" POSTs.

A web page can send a cross-origin POST without a CORS preflight only with a CORS-safelisted Content-Type
(``application/x-www-form-urlencoded``, ``multipart/form-data``, ``text/plain``) and no custom header (MDN,
"CORS-safelisted request header"; the Fetch standard). So the control endpoints need a custom header with a
secret, refuse every request with an ``Origin`` header, and refuse POSTs with a safelisted type except a device
approval form, which can only arrive with the token header.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from airflow_provider_onedrive.testing import GraphEmulator
from airflow_provider_onedrive.testing.emulator import CONTROL_TOKEN_HEADER
from tests.emulator.conftest import assert_graph_error

pytestmark = pytest.mark.timeout(60)
SIMPLE_TYPES = [
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
]


def control(emu: GraphEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    return emu.http_session().request(method, f"{emu.authority_host}/_emulator/{path}", timeout=30, **kwargs)


def start_device_flow(emu: GraphEmulator) -> dict:
    response = emu.http_session().post(
        f"{emu.authority}/oauth2/v2.0/devicecode", data={"client_id": emu.client_id, "scope": "Files.ReadWrite.All"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def secrets_of(emu: GraphEmulator) -> list[str]:
    return [emu.client_secret, emu.refresh_token, emu.control_token]


def test_control_token_is_random_per_run_and_in_the_info_document(make_emulator: object) -> None:
    first = make_emulator()  # type: ignore[operator]
    second = make_emulator()  # type: ignore[operator]
    assert len(first.control_token) >= 40 and first.control_token != second.control_token
    info = first.info()
    assert info["control_token"] == first.control_token and info["control_token_header"] == CONTROL_TOKEN_HEADER
    assert first.control_headers() == {CONTROL_TOKEN_HEADER: first.control_token}
    old = first.control_token
    first.reset()
    assert first.control_token == old  # reset keeps the run's token; a new start makes a new one
    first.stop()
    first.start()
    assert first.control_token not in ("", old)
    assert control(first, "GET", "info", headers={CONTROL_TOKEN_HEADER: old}).status_code == 401


def test_health_is_open_and_tells_no_secrets(emu: GraphEmulator) -> None:
    response = control(emu, "GET", "health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert not any(secret in response.text for secret in secrets_of(emu))


def test_info_needs_the_token(emu: GraphEmulator) -> None:
    for headers in ({}, {CONTROL_TOKEN_HEADER: "not-the-token"}, {"Authorization": "Bearer not-the-token"}):
        refused = control(emu, "GET", "info", headers=headers)
        assert CONTROL_TOKEN_HEADER in assert_graph_error(refused, 401, "unauthenticated")["message"]
        assert not any(secret in refused.text for secret in secrets_of(emu))
    by_header = control(emu, "GET", "info", headers=emu.control_headers())
    assert by_header.status_code == 200
    assert by_header.json()["connections"]["app"]["password"] == emu.client_secret
    by_bearer = control(emu, "GET", "info", headers={"Authorization": f"Bearer {emu.control_token}"})
    assert by_bearer.status_code == 200 and by_bearer.json()["control_token"] == emu.control_token


def test_reset_needs_the_token(emu: GraphEmulator) -> None:
    emu.put_file("keep.txt", b"precious")
    assert_graph_error(control(emu, "POST", "reset"), 401, "unauthenticated")
    assert emu.read_file("keep.txt") == b"precious"
    assert control(emu, "POST", "reset", headers=emu.control_headers()).status_code == 200
    assert emu.item("keep.txt") is None
    emu.put_file("again.txt", b"x")
    assert control(emu, "POST", "reset", headers=emu.control_headers(), json={}).status_code == 200
    assert emu.item("again.txt") is None


@pytest.mark.parametrize("origin", ["https://attacker.example", "null", "", "same-origin"])
def test_any_origin_header_is_refused(emu: GraphEmulator, origin: str) -> None:
    emu.put_file("keep.txt", b"precious")
    origin = emu.authority_host if origin == "same-origin" else origin
    headers = {**emu.control_headers(), "Origin": origin}
    for method, path in [("GET", "health"), ("GET", "info"), ("POST", "reset"), ("GET", "device")]:
        response = control(emu, method, path, headers=headers)
        assert_graph_error(response, 403, "accessDenied")
        assert not any(secret in response.text for secret in secrets_of(emu))
    assert emu.read_file("keep.txt") == b"precious"


@pytest.mark.parametrize("content_type", SIMPLE_TYPES)
def test_cross_origin_style_reset_cannot_wipe_the_emulator(emu: GraphEmulator, content_type: str) -> None:
    emu.put_file("keep.txt", b"precious")
    page = control(emu, "POST", "reset", headers={"Content-Type": content_type, "Origin": "https://x.example"})
    assert_graph_error(page, 403, "accessDenied")
    no_origin = control(emu, "POST", "reset", headers={"Content-Type": content_type}, data=b"x")
    assert_graph_error(no_origin, 401, "unauthenticated")
    with_token = control(emu, "POST", "reset", headers={**emu.control_headers(), "Content-Type": content_type})
    assert_graph_error(with_token, 415, "invalidRequest")
    assert emu.read_file("keep.txt") == b"precious"


def test_device_approval_form_needs_the_token(emu: GraphEmulator) -> None:
    code = start_device_flow(emu)["user_code"]
    assert_graph_error(control(emu, "POST", "device/approve", data={"user_code": code}), 401, "unauthenticated")
    plain = control(
        emu, "POST", "device/approve", headers={**emu.control_headers(), "Content-Type": "text/plain"}, data=code
    )
    assert_graph_error(plain, 415, "invalidRequest")
    multipart = control(emu, "POST", "device/approve", headers=emu.control_headers(), files={"user_code": code})
    assert_graph_error(multipart, 415, "invalidRequest")
    assert emu.pending_device_codes() == [code]
    approved = control(emu, "POST", "device/approve", headers=emu.control_headers(), data={"user_code": code})
    assert approved.status_code == 200 and approved.json() == {"approved": True, "user": emu.user_upn}
    assert emu.pending_device_codes() == []


def test_device_page_is_open_and_shows_how_to_approve(emu: GraphEmulator) -> None:
    flow = start_device_flow(emu)
    assert flow["verification_uri"] == f"{emu.authority_host}/_emulator/device"
    assert CONTROL_TOKEN_HEADER in flow["message"] and flow["user_code"] in flow["message"]
    page = emu.http_session().get(flow["verification_uri"])
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/plain")
    assert f"-H '{CONTROL_TOKEN_HEADER}: TOKEN' -d user_code=CODE" in page.text
    assert f"Pending: {flow['user_code']}" in page.text
    assert not any(secret in page.text for secret in secrets_of(emu))


def test_unknown_control_endpoint_is_404_only_with_the_token(emu: GraphEmulator) -> None:
    assert_graph_error(control(emu, "GET", "nothing-here"), 401, "unauthenticated")
    assert_graph_error(control(emu, "GET", "nothing-here", headers=emu.control_headers()), 404, "itemNotFound")
