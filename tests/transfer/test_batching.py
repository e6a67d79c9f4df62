"""Folder uploads set small files' modification times through $batch; send_batch's retries and errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from airflow_provider_onedrive.batching import MAX_BATCH, BatchStep, send_batch
from airflow_provider_onedrive.errors import (
    OneDriveError,
    OneDriveNotFoundError,
    OneDriveValidationError,
)
from tests.transfer.transfer_helpers import THRESHOLD, write

MTIME = 1_700_000_000


def small_tree(tmp_path, payload, count: int):
    local = tmp_path / "tree"
    for i in range(count):
        write(local / f"d{i % 3}" / f"f{i:03d}.txt", payload(100 + i, seed=i), MTIME + i)
    return local


def remote_mtimes(emu, folder: str, count: int) -> dict[str, float]:
    names = [f"d{i % 3}/f{i:03d}.txt" for i in range(count)]
    return {name: emu.item(f"{folder}/{name}").fs_modified for name in names}


def calls(emu, method: str, suffix: str = "") -> list:
    return [r for r in emu.requests if r.method == method and r.path.split("?")[0].endswith(suffix)]


def test_folder_upload_sets_mtimes_twenty_to_a_batch(client, emu, tmp_path, payload):
    local = small_tree(tmp_path, payload, 45)
    emu.clear_requests()
    results = client.upload_folder(local, "up", max_workers=4)
    assert len(results) == 45 and {r.status for r in results} == {"created"}
    assert len(calls(emu, "PUT", "/content")) == 45
    assert calls(emu, "PATCH") == []
    assert len(calls(emu, "POST", "$batch")) == 3  # 20 + 20 + 5
    mtimes = remote_mtimes(emu, "up", 45)
    assert len(mtimes) == 45
    for i in range(45):
        assert abs(mtimes[f"d{i % 3}/f{i:03d}.txt"] - (MTIME + i)) < 1
    info = client.info("up/d1/f001.txt")
    assert info.modified == datetime.fromtimestamp(MTIME + 1, UTC)


def test_without_preserve_mtime_there_is_no_metadata_request(client, emu, tmp_path, payload):
    local = small_tree(tmp_path, payload, 6)
    emu.clear_requests()
    client.upload_folder(local, "plain", preserve_mtime=False)
    assert calls(emu, "PATCH") == [] and calls(emu, "POST", "$batch") == []
    assert len(calls(emu, "PUT", "/content")) == 6


def test_throttled_patches_inside_a_batch_are_sent_again(client, emu, tmp_path, payload):
    local = small_tree(tmp_path, payload, 8)
    rule = emu.faults.add("status", method="PATCH", status=429, retry_after=0.2, every=2, times=3)
    client.upload_folder(local, "thr")
    assert rule.fired == 3
    assert len(calls(emu, "POST", "$batch")) == 2  # the 3 throttled ones went again in a second batch
    assert all(abs(m - MTIME) < 10 for m in remote_mtimes(emu, "thr", 8).values())


def test_where_batch_is_refused_each_patch_goes_alone(client, emu, tmp_path, payload):
    local = small_tree(tmp_path, payload, 5)
    emu.faults.add("status", method="POST", path=r"/\$batch$", status=404, code="itemNotFound")
    client.upload_folder(local, "fallback")
    assert len(calls(emu, "POST", "$batch")) == 1 and len(calls(emu, "PATCH")) == 5
    mtimes = remote_mtimes(emu, "fallback", 5)
    assert len(mtimes) == 5 and all(abs(m - MTIME) < 10 for m in mtimes.values())


def test_a_time_that_cannot_be_set_fails_the_folder_upload_with_its_names(client, emu, tmp_path, payload):
    local = small_tree(tmp_path, payload, 7)
    emu.faults.add("status", method="PATCH", status=403, code="accessDenied", times=1)
    with pytest.raises(OneDriveError) as caught:
        client.upload_folder(local, "denied")
    assert caught.value.status == 403
    note = " ".join(caught.value.__notes__)
    named = re.search(r"could not be set: (denied/d\d/f(\d+)\.txt);", note)
    assert "modification time of 1 could not be set" in note and named
    number = int(named.group(2))
    assert emu.read_file(named.group(1)) == payload(100 + number, seed=number)  # the content is there
    assert abs(emu.item(named.group(1)).fs_modified - (MTIME + number)) > 60  # its time was not set


def test_large_files_carry_their_mtime_in_the_upload_session(client, emu, tmp_path, payload):
    local = tmp_path / "big"
    write(local / "large.bin", payload(THRESHOLD + 10), MTIME)
    emu.clear_requests()
    client.upload_folder(local, "big")
    assert calls(emu, "PATCH") == [] and calls(emu, "POST", "$batch") == []
    assert abs(emu.item("big/large.bin").fs_modified - MTIME) < 1


def test_send_batch_maps_each_answer(client, emu):
    emu.put_file("s/a.txt", b"a")
    ctx = client.context
    steps = [
        BatchStep("GET", paths_of(ctx, "s/a.txt"), "get a"),
        BatchStep("GET", paths_of(ctx, "s/missing.txt"), "get missing"),
    ]
    found, missing = send_batch(client.graph, steps)
    assert isinstance(found, dict) and found["name"] == "a.txt"
    assert isinstance(missing, OneDriveNotFoundError) and str(missing).startswith("get missing failed")


def test_send_batch_refuses_more_than_twenty_before_sending(client, emu):
    emu.clear_requests()
    with pytest.raises(OneDriveValidationError, match="1 to 20"):
        send_batch(client.graph, [BatchStep("GET", "me", "me")] * (MAX_BATCH + 1))
    assert emu.requests == []


def paths_of(ctx, path: str) -> str:
    from airflow_provider_onedrive import paths

    return paths.item_path(ctx.drive_base, path)
