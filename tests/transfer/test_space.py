"""Downloads reserve their disk space first: a full disk fails before any byte, and the file keeps its real size."""

from __future__ import annotations

import ctypes
import errno
import os

import pytest

from airflow_provider_onedrive.transfers import space
from tests.transfer.transfer_helpers import make_client

MIB = 1024 * 1024


def test_reserve_space_gives_the_file_its_blocks(tmp_path):
    path = tmp_path / "r.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert space.reserve_space(fd, 3 * MIB, str(tmp_path)) is True
        stat = os.fstat(fd)
        assert stat.st_size == 3 * MIB and stat.st_blocks * 512 >= 3 * MIB
        assert space.reserve_space(fd, 0, str(tmp_path)) is False
    finally:
        os.close(fd)


def _failing(code: int):
    def fallocate(fd, mode, offset, length):
        ctypes.set_errno(code)
        return -1

    return fallocate


def test_a_full_disk_fails_the_download_before_any_byte(emu, tmp_path, payload, monkeypatch):
    client = make_client(emu, tmp_path / "state")
    emu.put_file("big.bin", payload(2 * MIB))
    monkeypatch.setattr(space, "_fallocate", _failing(errno.ENOSPC))
    out = tmp_path / "out"
    out.mkdir()
    emu.clear_requests()
    with pytest.raises(OSError, match="not enough free space") as caught:
        client.download_file("big.bin", out / "big.bin")
    assert caught.value.errno == errno.ENOSPC and str(out) in str(caught.value)
    assert [r for r in emu.requests if r.kind == "download"] == []
    assert os.listdir(out) == []  # no temporary file left behind


def test_a_file_system_without_fallocate_downloads_as_before(emu, tmp_path, payload, monkeypatch):
    client = make_client(emu, tmp_path / "state")
    data = payload(2 * MIB)
    emu.put_file("big.bin", data)
    monkeypatch.setattr(space, "_fallocate", _failing(errno.EOPNOTSUPP))
    client.download_file("big.bin", tmp_path / "big.bin")
    assert (tmp_path / "big.bin").read_bytes() == data


def test_bytes_shorter_than_the_listed_size_leave_no_reserved_tail(emu, tmp_path, payload):
    client = make_client(emu, tmp_path / "state", lenient_office_hashes=True)
    emu.put_file("doc.docx", payload(3 * MIB))
    stale = client.info("doc.docx")  # as listed: 3 MiB
    rewritten = payload(2 * MIB + 5, seed=7)  # SharePoint rewrote it meanwhile
    emu.put_file("doc.docx", rewritten)
    result = client.download_file("doc.docx", tmp_path / "doc.docx", item=stale)
    assert result.size == len(rewritten)
    assert (tmp_path / "doc.docx").read_bytes() == rewritten
