"""Any name OneDrive accepts round-trips byte for byte: simple upload by path, then GET by the same path."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_onedrive import paths
from airflow_provider_onedrive.auth import build_token_provider
from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.graph import GraphClient
from tests.connection.helpers import settings_for

NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"*:<>?/\\|')


def valid(name: str) -> bool:
    try:
        paths.validate_name(name)
    except OneDriveValidationError:
        return False
    return True


names = st.text(NAME_CHARS, min_size=1, max_size=40).filter(valid)


@pytest.fixture
def graph(emu):
    s = settings_for(emu, "app")
    with GraphClient(build_token_provider(s), graph_url=s.graph_url, verify=s.verify) as client:
        yield client, f"users/{s.drive_value}/drive"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(folder=names, name=names)
def test_names_round_trip(graph, folder, name):
    client, base = graph
    path = paths.join(folder, name)
    body = name.encode("utf-8")
    created = client.request("PUT", paths.item_path(base, path, "content"), data=body).json()
    assert created["name"] == name
    item = client.get_json(paths.item_path(base, path))
    assert item["name"] == name and item["size"] == len(body)
    assert unquote(item["parentReference"]["path"]).endswith(":/" + folder)


@pytest.mark.parametrize("name", ["a b.txt", "100%.csv", "#hash", "ünïcödé ✓.txt", "a+b=c&d;e,f'g(h)!.txt", "~tilde"])
def test_awkward_names(graph, name):
    client, base = graph
    client.request("PUT", paths.item_path(base, f"odd/{name}", "content"), data=b"1")
    assert client.get_json(paths.item_path(base, f"odd/{name}"))["name"] == name
