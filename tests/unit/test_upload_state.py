"""Upload-state stores: choosing one from the connection, records written whole, expired ones forgotten."""

from __future__ import annotations

import os
import stat
import time

import pytest

from airflow_provider_onedrive.clients import upload_state_store
from airflow_provider_onedrive.config import ConnectionSettings
from airflow_provider_onedrive.errors import OneDriveConfigError
from airflow_provider_onedrive.transfers.state import FsspecStateStore, SessionState, UploadStateStore


def record(expires: float | None = None) -> SessionState:
    return SessionState(
        "https://up.example/s?tempauth=x", 10, 327680, "/src/a", 5, "a", "fail", time.time(), expires, "d1", "t/u"
    )


def settings(**extra):
    base = {"tenant_id": "contoso.onmicrosoft.com", "drive_type": "drive", "drive_id": "b!1"}
    return ConnectionSettings.from_connection_fields("od", "app-id", "secret", {**base, **extra})


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        (None, None),
        ("local", "local"),
        ("airflow", "airflow"),
        ("local:/var/lib/onedrive", "local:/var/lib/onedrive"),
        ("file:///mnt/shared/uploads", "file:///mnt/shared/uploads"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
    ],
)
def test_upload_state_extra_is_validated(spec, parsed):
    extra = {} if spec is None else {"upload_state": spec}
    assert settings(**extra).upload_state == parsed


@pytest.mark.parametrize("bad", ["shared", "local:relative/path", "://nowhere", "db"])
def test_bad_upload_state_names_the_choices(bad):
    with pytest.raises(OneDriveConfigError, match="upload_state"):
        settings(upload_state=bad)


def test_specs_build_their_stores(tmp_path):
    assert isinstance(upload_state_store("local"), UploadStateStore)
    assert upload_state_store(f"local:{tmp_path}").directory == tmp_path
    shared = upload_state_store((tmp_path / "shared").as_uri())
    assert isinstance(shared, FsspecStateStore) and "tempauth" not in repr(shared)
    from airflow_provider_onedrive.hooks.upload_state import VariableStateStore

    assert isinstance(upload_state_store("airflow"), VariableStateStore)


@pytest.mark.parametrize("kind", ["local", "fsspec"])
def test_records_round_trip_privately_and_expired_ones_are_forgotten(tmp_path, kind):
    folder = tmp_path / "records"
    store = UploadStateStore(folder) if kind == "local" else FsspecStateStore(folder.as_uri())
    saved = record()
    store.save("k1", saved)
    assert store.load("k1") == saved
    assert stat.S_IMODE(os.stat(folder / "k1.json").st_mode) == 0o600
    assert not [p for p in os.listdir(folder) if p.endswith(".tmp")]  # written whole, through a temporary file
    store.save("k2", record(expires=time.time() - 1))
    assert store.load("k2") is None and not (folder / "k2.json").exists()  # expired: deleted on sight
    (folder / "k3.json").write_text('{"upload_url": "trunc')
    assert store.load("k3") is None and not (folder / "k3.json").exists()  # unreadable: deleted
    store.forget("k1")
    store.forget("missing")
    assert store.load("k1") is None and os.listdir(folder) == []


def test_fsspec_store_needs_a_url():
    with pytest.raises(OneDriveConfigError, match="scheme"):
        FsspecStateStore("/mnt/shared")


def test_download_settings_come_from_the_connection():
    from airflow_provider_onedrive.clients import drive_client

    parsed = settings(download_streams="8", fsync_downloads="false")
    assert (parsed.download_streams, parsed.fsync_downloads) == (8, False)
    client = drive_client(parsed, lambda: "unused")
    assert client.settings.download_streams == 8 and client.settings.fsync_downloads is False
    assert drive_client(settings(), lambda: "unused").settings.download_streams == 4  # the default
    for bad, field in ((0, "download_streams"), ("many", "download_streams"), ("maybe", "fsync_downloads")):
        with pytest.raises(OneDriveConfigError, match=field):
            settings(**{field: bad})
