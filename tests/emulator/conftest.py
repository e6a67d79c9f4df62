"""Helpers for the emulator fidelity tests: raw requests against the session emulator, with real tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_onedrive.testing import GraphEmulator

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def app_token(emu: GraphEmulator, scope: str = GRAPH_SCOPE) -> str:
    """An app-only access token from the token endpoint (client secret)."""
    response = emu.http_session().post(
        f"{emu.authority}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "scope": scope,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def user_token(emu: GraphEmulator, user: str | None = None) -> str:
    """A delegated access token for ``user`` via the refresh-token grant."""
    response = emu.http_session().post(
        f"{emu.authority}/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": emu.client_id,
            "refresh_token": emu.issue_refresh_token(user),
            "scope": "Files.ReadWrite.All offline_access",
        },
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


class Graph:
    """Tiny raw-HTTP helper: relative paths are joined to the drive prefix, absolute URLs used as-is."""

    def __init__(self, emu: GraphEmulator, token: str, drive: str | None = None) -> None:
        self.emu = emu
        self.session = emu.http_session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.drive = drive or f"/users/{emu.user_upn}/drive"

    def url(self, path: str) -> str:
        if path.startswith("http"):
            return path
        if path.startswith("/"):
            return f"{self.emu.graph_url}{path}"
        return f"{self.emu.graph_url}{self.drive}/{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def put(self, path: str, data: bytes = b"", **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, data=data, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=json, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def upload(self, path: str, data: bytes, **params: str) -> dict[str, Any]:
        response = self.put(f"root:/{path}:/content", data, params=params)
        assert response.status_code in (200, 201), response.text
        return response.json()


def assert_graph_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """Check Graph's error envelope, the request-id header, and return the error object."""
    assert response.status_code == status, response.text
    assert response.headers["request-id"]
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    inner = error["innerError"]
    assert inner["request-id"] == response.headers["request-id"]
    assert inner["date"].endswith("Z")
    assert inner["client-request-id"]
    return error


@pytest.fixture
def emu(onedrive_emulator: GraphEmulator) -> GraphEmulator:
    return onedrive_emulator


@pytest.fixture
def graph(emu: GraphEmulator) -> Graph:
    """Raw Graph access to the default user's drive with an app-only token."""
    return Graph(emu, app_token(emu))


@pytest.fixture
def make_emulator() -> Iterator[Any]:
    """Start extra emulators with custom settings; all stopped at the end of the test."""
    started: list[GraphEmulator] = []

    def start(**settings: Any) -> GraphEmulator:
        emulator = GraphEmulator(**settings).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()
