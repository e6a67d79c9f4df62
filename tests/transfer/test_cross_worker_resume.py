"""A killed upload resumes in a new process: on the same machine through its local state folder, and on another
worker through a shared upload-state store.

Two real processes with different local state folders (as two Celery workers or Kubernetes pods have), one store
they share: a folder both reach (an fsspec ``file://`` URL, as a shared volume) or the Airflow metadata DB. The
first is killed with SIGKILL mid-upload; the second sends only what the server is missing. Without a shared store,
the retry meets the session the first left open, and OneDrive for Business (the emulator's default mode) refuses
a second one: the error says what happened and what to do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_provider_onedrive.hashing import quickxorhash
from tests.transfer.transfer_helpers import FRAGMENT, uploads, write

SIZE = 40 * FRAGMENT + 5
WORKER = str(Path(__file__).with_name("resume_worker.py"))


def worker(emu, tmp_path, src, attempt: int, state_store: str | None, *, same_machine: bool = False) -> list[str]:
    config = {
        "emulator": {
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "authority": emu.authority,
            "ca_bundle": emu.ca_bundle,
            "graph_url": emu.graph_url,
            "drive_id": emu.drive_id,
        },
        # one cache folder on one machine; two machines' caches are never shared
        "state_dir": str(tmp_path / ("cache" if same_machine else f"worker-{attempt}-cache")),
        "state_store": state_store,
        "source": str(src),
        "destination": "f/big.bin",
        "attempt": attempt,
    }
    return [sys.executable, WORKER, json.dumps(config)]


def kill_mid_upload(emu, command: list[str]) -> int:
    """Run the first worker until ten fragments are acknowledged, SIGKILL it; the bytes it got acknowledged."""
    emu.faults.add("latency", kind="upload", method="PUT", seconds=0.05)
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len([r for r in uploads(emu) if r.status == 202]) < 10:
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.stderr else ""
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    emu.faults.clear()
    return sum(r.bytes_in for r in uploads(emu) if r.status == 202)


@pytest.fixture
def source(tmp_path, payload):
    data = payload(SIZE)
    return write(tmp_path / "big.bin", data), data


@pytest.mark.parametrize("store", ["same-machine", "shared-folder", "airflow"])
def test_a_killed_upload_resumes_in_the_next_process(emu, tmp_path, source, store, request):
    src, data = source
    spec: str | None = None
    if store == "airflow":
        request.getfixturevalue("airflow_db")  # the suite's migrated metadata DB, seen by both processes
        spec = "airflow"
    elif store == "shared-folder":
        spec = (tmp_path / "shared").as_uri()
    same = store == "same-machine"
    acknowledged = kill_mid_upload(emu, worker(emu, tmp_path, src, 1, spec, same_machine=same))
    assert emu.item("f/big.bin") is None
    if same:
        assert len(os.listdir(tmp_path / "cache")) == 1  # the session is remembered for the retry

    second = subprocess.run(
        worker(emu, tmp_path, src, 2, spec, same_machine=same), capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(second.stdout.strip().splitlines()[-1])
    assert emu.read_file("f/big.bin") == data and result["hash"] == quickxorhash(data)
    assert result["resumed_from"] >= acknowledged - FRAGMENT > 0
    sent_by_second = sum(r.bytes_in for r in uploads(emu) if "x-test-attempt-2" in r.headers)
    assert sent_by_second == SIZE - result["resumed_from"]
    assert acknowledged + sent_by_second <= SIZE + FRAGMENT  # in all: the size plus at most one fragment
    second_run = [r for r in emu.requests if "x-test-attempt-2" in r.headers]
    assert [r for r in second_run if r.path.endswith("createUploadSession")] == []  # it resumed, not restarted
    if store == "shared-folder":
        assert os.listdir(tmp_path / "shared") == []  # the record is gone once the upload committed
    if same:
        assert os.listdir(tmp_path / "cache") == []
    assert emu.uploads.active() == []


def test_without_a_shared_store_the_retry_explains_the_orphaned_session(emu, tmp_path, source):
    from airflow_provider_onedrive.errors import OneDriveUploadInProgressError

    src, _ = source
    kill_mid_upload(emu, worker(emu, tmp_path, src, 1, None))
    second = subprocess.run(worker(emu, tmp_path, src, 2, None), capture_output=True, text=True, timeout=120)
    assert second.returncode != 0
    assert OneDriveUploadInProgressError.__name__ in second.stderr
    assert "another upload session holds f/big.bin" in second.stderr
    assert "upload_state" in second.stderr and "expires" in second.stderr
    assert "tempauth" not in second.stderr  # no upload URL in the error
