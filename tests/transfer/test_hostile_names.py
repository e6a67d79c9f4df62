"""Names from the server are checked before they become local paths: a rogue or misconfigured endpoint that
lists items named ``../x``, ``/etc/x`` or with control characters gets them skipped (with a warning), and
nothing is created outside the destination.
"""

from __future__ import annotations

import logging

import pytest

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.paths import local_child

HOSTILE = ["../escaped.txt", "/tmp/absolute.txt", "..", ".", "a\\b.txt", "c:evil.txt", "bell\x07.txt", ""]


def inject(client, hostile_in: str, names: list[str]) -> None:
    """Make listings of ``hostile_in`` also return items with these names (a server we must not trust)."""
    real = client.graph.iter_values

    def iter_values(url, *, params=None):
        yield from real(url, params=params)
        listed = client.item(hostile_in)["id"] if hostile_in else "root"
        if (
            f"/items/{listed}/children" in url
            or url.endswith(f"{hostile_in}:/children")
            or (not hostile_in and url.endswith("root/children"))
        ):
            for i, name in enumerate(names):
                yield {"id": f"hostile-{i}", "name": name, "size": 4, "file": {"hashes": {}}, "eTag": "e"}

    client.graph.iter_values = iter_values


@pytest.mark.parametrize("folder", ["", "box"])
def test_folder_download_skips_hostile_names_and_writes_only_inside(client, emu, tmp_path, caplog, folder):
    emu.put_file(f"{folder}/ok.txt".lstrip("/"), b"fine")
    emu.put_file(f"{folder}/sub/deep.txt".lstrip("/"), b"deep")
    inject(client, folder, HOSTILE)
    dest = tmp_path / "dest"
    caplog.set_level(logging.WARNING, logger="airflow_provider_onedrive")
    results = client.download_folder(folder, dest)
    assert sorted(r.path.split("/")[-1] for r in results) == ["deep.txt", "ok.txt"]
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert written == ["dest", "dest/ok.txt", "dest/sub", "dest/sub/deep.txt"]
    skipped = [r.getMessage() for r in caplog.records if "skipping an item" in r.getMessage()]
    assert len(skipped) == len(HOSTILE)


def test_listing_skips_a_name_with_a_control_character(client, emu, caplog):
    emu.put_file("box/ok.txt", b"fine")
    inject(client, "box", ["tab\there.txt"])
    caplog.set_level(logging.WARNING, logger="airflow_provider_onedrive")
    assert [item.name for item in client.ls("box")] == ["ok.txt"]
    assert any("control character" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("relative", ["../x", "a/../../x", "/etc/passwd", "a\\..\\x", "a/./b", ""])
def test_local_child_refuses_anything_that_leaves_the_destination(tmp_path, relative):
    if relative == "":
        assert local_child(str(tmp_path), relative) == str(tmp_path)
        return
    with pytest.raises(OneDriveValidationError):
        local_child(str(tmp_path), relative)
