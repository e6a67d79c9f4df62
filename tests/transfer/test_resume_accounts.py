"""Resumable upload state belongs to one account and one drive: connections sharing a state folder never resume
each other's sessions (which would land the file in the other account's drive).

Real MSAL token flows against the emulator: delegated users sign in with their own refresh tokens; app-only
connections use the client secret.
"""

from __future__ import annotations

import json
import os

import pytest

from airflow_provider_onedrive.fs.connect import build_client
from airflow_provider_onedrive.retry import RetryPolicy
from tests.transfer.transfer_helpers import FRAGMENT, THRESHOLD, write

SIZE = 5 * FRAGMENT


def connect(emu, state_dir, **fields):
    """A client from connection fields, the way ``onedrive://`` storage options build one (no Airflow)."""
    client = build_client(
        credentials={
            "client_id": emu.client_id,
            "tenant_id": emu.tenant_id,
            "graph_url": emu.graph_url,
            "authority_host": emu.authority_host,
            "ca_bundle": emu.ca_bundle,
            **fields,
        },
        client_options={"simple_upload_threshold": THRESHOLD, "fragment_size": FRAGMENT, "state_dir": state_dir},
    )
    client.graph.retry = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    return client


def delegated(emu, state_dir, upn):
    return connect(
        emu,
        state_dir,
        auth_type="refresh_token",
        drive_type="me",
        refresh_token=emu.issue_refresh_token(upn),
        scopes="Files.ReadWrite.All offline_access",
    )


def app_only(emu, state_dir, drive_id):
    return connect(emu, state_dir, client_secret=emu.client_secret, drive_type="drive", drive_id=drive_id)


class Interrupted(Exception):
    """Stands for a worker that dies mid-upload."""


def interrupt_upload(emu, client, src, remote):
    """Start an upload that stops after two fragments; its session is kept for resume."""

    def stop(event):
        if event.bytes_done >= 2 * FRAGMENT:
            raise Interrupted

    with pytest.raises(Interrupted):
        client.upload_file(src, remote, progress=stop)


def users(emu):
    (alice, alice_drive), (bob, bob_drive) = emu.seed.users[:2]
    return (alice.upn, alice_drive), (bob.upn, bob_drive)


@pytest.fixture
def src(tmp_path, payload):
    return write(tmp_path / "payload.bin", payload(SIZE))


def test_two_delegated_users_sharing_a_state_folder_never_cross(emu, tmp_path, src):
    state = tmp_path / "state"
    (alice, alice_drive), (bob, bob_drive) = users(emu)
    alice_client = delegated(emu, state, alice)
    interrupt_upload(emu, alice_client, src, "reports/q.bin")
    assert len(os.listdir(state)) == 1  # Alice's session is kept for her retry

    result = delegated(emu, state, bob).upload_file(src, "reports/q.bin")
    assert result.status == "created" and result.resumed_from == 0
    assert emu.read_file("reports/q.bin", bob_drive) == src.read_bytes()  # in Bob's drive...
    with pytest.raises(FileNotFoundError):
        emu.read_file("reports/q.bin", alice_drive)  # ...and not in Alice's
    assert len(os.listdir(state)) == 1  # Alice's state is still hers, untouched

    again = alice_client.upload_file(src, "reports/q.bin")  # Alice's retry resumes her own session
    assert again.resumed_from > 0
    assert emu.read_file("reports/q.bin", alice_drive) == src.read_bytes()
    assert os.listdir(state) == []


def test_two_app_connections_on_different_drives_never_cross(emu, tmp_path, src):
    state = tmp_path / "state"
    (_, first_drive), (_, second_drive) = users(emu)
    interrupt_upload(emu, app_only(emu, state, first_drive), src, "reports/q.bin")

    result = app_only(emu, state, second_drive).upload_file(src, "reports/q.bin")
    assert result.resumed_from == 0
    assert emu.read_file("reports/q.bin", second_drive) == src.read_bytes()
    with pytest.raises(FileNotFoundError):
        emu.read_file("reports/q.bin", first_drive)


def test_state_of_another_account_is_discarded_and_its_session_cancelled(emu, tmp_path, src):
    """A record that names another account (a colliding key, or a file copied between machines) is never
    resumed: it is deleted, its session cancelled, and the upload starts fresh in this account's drive."""
    state = tmp_path / "state"
    (alice, _), (bob, bob_drive) = users(emu)
    interrupt_upload(emu, delegated(emu, state, alice), src, "reports/q.bin")
    (record,) = state.iterdir()
    bob_client = delegated(emu, state, bob)
    bob_key = bob_client._uploader._resume_point(str(src), "reports/q.bin", os.stat(src).st_mtime_ns).key
    record.rename(state / f"{bob_key}.json")  # Alice's record where Bob's would be
    emu.clear_requests()

    result = bob_client.upload_file(src, "reports/q.bin")
    assert result.resumed_from == 0 and result.bytes_sent == SIZE
    assert emu.read_file("reports/q.bin", bob_drive) == src.read_bytes()
    cancels = [r for r in emu.requests if r.kind == "upload" and r.method == "DELETE"]
    assert len(cancels) == 1  # Alice's orphaned session was cancelled
    assert os.listdir(state) == []


def test_state_records_name_the_drive_and_account(emu, tmp_path, src):
    state = tmp_path / "state"
    (alice, alice_drive), _ = users(emu)
    interrupt_upload(emu, delegated(emu, state, alice), src, "reports/q.bin")
    (record,) = state.iterdir()
    saved = json.loads(record.read_text())
    user_id = next(u.id for u, _ in emu.seed.users if u.upn == alice)
    assert saved["drive_id"] == alice_drive
    assert saved["identity"] == f"{emu.tenant_id}/{user_id}"
    assert saved["version"] == 2
