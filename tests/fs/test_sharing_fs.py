"""onedrive:// below a shared folder or on a shared file: the ``share`` storage option and ``u!`` URLs."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.fs import OneDriveFileSystem
from airflow_provider_onedrive.fs.onedrive import share_url
from tests.fs.conftest import storage_options

FRAME = pd.DataFrame({"region": ["north", "south"], "amount": [1.5, 2.25]})


@pytest.fixture
def owner(onedrive_emulator):
    """The drive owner's filesystem (app-only), which creates the links."""
    fs = OneDriveFileSystem(skip_instance_cache=True, **storage_options(onedrive_emulator.connection("app")))
    yield fs
    fs.client.close()


@pytest.fixture
def alex_options(onedrive_emulator):
    """Storage options of the second user, who can reach the first user's drive only through links."""
    conn = onedrive_emulator.connection("delegated")
    conn["extra"].update(
        refresh_token=onedrive_emulator.issue_refresh_token(onedrive_emulator.users[1]), token_store="memory"
    )
    return {**storage_options(conn), "skip_instance_cache": True}


def test_pandas_reads_and_writes_below_a_shared_folder_with_the_share_option(onedrive_emulator, owner, alex_options):
    owner.pipe("team/in/q1.csv", FRAME.to_csv(index=False).encode())
    link = owner.client.create_link("team", type="edit", scope="organization")
    options = {**alex_options, "share": link.url}

    assert pd.read_csv("onedrive://in/q1.csv", storage_options=options).equals(FRAME)
    FRAME.to_csv("onedrive://out/q2.csv", index=False, storage_options=options)
    assert onedrive_emulator.read_file("team/out/q2.csv") == FRAME.to_csv(index=False).encode()
    fs = OneDriveFileSystem(**options)
    assert sorted(fs.ls("", detail=False)) == ["in", "out"]


def test_u_bang_urls_name_the_share_in_the_authority(onedrive_emulator, owner, alex_options):
    owner.pipe("pub/a.csv", FRAME.to_csv(index=False).encode())
    owner.pipe("pub/report.csv", b"total\n42\n")
    folder = owner.client.create_link("pub", scope="anonymous")
    url = share_url(folder.url, "a.csv")
    assert url.startswith("onedrive://@u!") and url.endswith("/a.csv")
    assert pd.read_csv(url, storage_options=alex_options).equals(FRAME)

    single = owner.client.create_link("pub/report.csv", scope="anonymous")
    fs = OneDriveFileSystem(**alex_options, share=single.url)
    assert fs.cat_file("") == b"total\n42\n" and fs.info("")["type"] == "file"


def test_a_bad_share_is_refused_before_any_request(onedrive_emulator, alex_options):
    fs = OneDriveFileSystem(**alex_options, share="not a link")
    with pytest.raises(OneDriveValidationError, match="sharing URL"):
        fs.ls("")
    assert not [r for r in onedrive_emulator.requests if r.kind == "graph"]


@pytest.mark.airflow
def test_object_storage_path_with_a_share_token_is_refused_without_echoing_it(onedrive_emulator_connection, owner):
    """ObjectStoragePath attaches the connection's filesystem and passes ``u!{token}/a.csv`` as a path: refused
    (pointing to the share option), never looked up as a folder whose name (the link) would land in an error."""
    from airflow.sdk import ObjectStoragePath

    owner.pipe("team/a.csv", b"a\n")
    link = owner.client.create_link("team", scope="organization")
    before = len(onedrive_emulator_connection.requests)
    with pytest.raises(OneDriveValidationError, match="share token") as refused:
        ObjectStoragePath(share_url(link.url, "a.csv", conn_id="onedrive_default")).read_bytes()
    assert share_url(link.url)[len("onedrive://@") :].rstrip("/") not in str(refused.value)
    assert not [r for r in onedrive_emulator_connection.requests[before:] if r.kind == "graph"]
