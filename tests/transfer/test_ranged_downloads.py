"""Parallel ranged downloads against the emulator: ranges in place, each resumed on its own, one hash, fallbacks.

Small settings (1 MiB cutoff and ranges) make a 5 MiB file take five ranges over four streams.
"""

from __future__ import annotations

import pytest

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.hashing import QuickXorHash, quickxorhash
from tests.transfer.transfer_helpers import make_client

MIB = 1024 * 1024
SIZE = 5 * MIB + 12345


RANGED = {"download_streams": 4, "multi_stream_cutoff": MIB, "multi_stream_chunk": MIB}


@pytest.fixture
def ranged(emu, tmp_path):
    """Splits every file of 1 MiB or more at once (``multi_stream_min_rate=0``: no probe of one stream first)."""
    return make_client(emu, tmp_path / "state", multi_stream_min_rate=0, **RANGED)


def downloads(emu):
    return [r for r in emu.requests if r.kind == "download"]


def no_partials(folder) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".partial")]


def test_a_large_file_comes_in_ranges_over_several_streams(ranged, emu, tmp_path, payload):
    data = payload(SIZE)
    emu.put_file("big/x.bin", data)
    events = []
    result = ranged.download_file("big/x.bin", tmp_path / "x.bin", progress=events.append)
    assert (tmp_path / "x.bin").read_bytes() == data and result.hash == quickxorhash(data)
    requests = downloads(emu)
    assert len(requests) == 6 and all("range" in r.headers for r in requests)  # ceil(SIZE / 1 MiB) ranges
    assert sum(r.bytes_out for r in requests) == SIZE  # every byte once
    assert events[-1].bytes_done == SIZE and all(e.total == SIZE for e in events)  # progress across streams
    assert no_partials(tmp_path)


def test_streams_one_or_a_small_file_uses_one_stream(ranged, emu, tmp_path, payload):
    data = payload(SIZE)
    emu.put_file("big/x.bin", data)
    ranged.download_file("big/x.bin", tmp_path / "one.bin", streams=1)
    emu.put_file("big/small.bin", data[: MIB - 1])
    ranged.download_file("big/small.bin", tmp_path / "small.bin")
    assert len(downloads(emu)) == 2 and not any("range" in r.headers for r in downloads(emu))
    assert (tmp_path / "one.bin").read_bytes() == data


def test_a_broken_range_resumes_on_its_own(ranged, emu, tmp_path, payload):
    data = payload(SIZE)
    emu.put_file("big/x.bin", data)
    emu.faults.add("truncate", kind="download", nth=2, after_bytes=300_000)
    emu.faults.add("reset", kind="download", nth=4)
    result = ranged.download_file("big/x.bin", tmp_path / "x.bin")
    assert (tmp_path / "x.bin").read_bytes() == data and result.resumed >= 1  # the reset is retried by the client
    assert sum(r.bytes_out for r in downloads(emu)) <= SIZE + MIB  # only the broken ranges' rest again


def test_an_expired_url_is_refreshed_once_for_all_streams(ranged, emu, tmp_path, payload):
    data = payload(SIZE)
    emu.put_file("big/x.bin", data)
    emu.faults.add("status", status=401, kind="download", nth=3)
    ranged.download_file("big/x.bin", tmp_path / "x.bin")
    assert (tmp_path / "x.bin").read_bytes() == data
    content_lookups = [r for r in emu.requests if r.kind == "graph" and r.path.endswith("/content")]
    item_lookups = [r for r in emu.requests if r.kind == "graph" and "/items/" in r.path and r.method == "GET"]
    assert len(content_lookups) <= 2 and len(item_lookups) >= 1


def test_a_server_that_ignores_ranges_gets_one_stream_from_byte_zero(ranged, emu, tmp_path, payload):
    data = payload(SIZE)
    emu.put_file("big/x.bin", data)
    emu.settings.honor_range = False
    result = ranged.download_file("big/x.bin", tmp_path / "x.bin")
    assert (tmp_path / "x.bin").read_bytes() == data and result.hash == quickxorhash(data)
    assert no_partials(tmp_path)


def test_a_file_that_changes_mid_download_is_fetched_again_whole(ranged, emu, tmp_path, payload):
    data, newer = payload(SIZE), payload(SIZE, seed=2)
    emu.put_file("big/x.bin", data)
    changed = []

    def change(event):
        if not changed and event.bytes_done >= MIB:
            changed.append(True)
            emu.put_file("big/x.bin", newer)  # a new version: new eTag, old download URLs expire
            emu.faults.add("status", status=404, kind="download", nth=1)

    result = ranged.download_file("big/x.bin", tmp_path / "x.bin", progress=change)
    assert (tmp_path / "x.bin").read_bytes() == newer and result.hash == quickxorhash(newer)


def test_bad_stream_counts_are_refused(ranged, emu):
    emu.clear_requests()  # building the client asked the identity platform for its metadata
    for bad in (0, 17, "4", True):
        with pytest.raises(OneDriveValidationError, match="streams"):
            ranged.download_file("big/x.bin", "/tmp/never", streams=bad)
    assert emu.requests == []


def test_range_hashes_merge_into_the_file_hash(payload):
    data = payload(3 * MIB + 7)
    parts = [(0, MIB), (MIB, 2 * MIB), (2 * MIB, len(data))]
    whole = QuickXorHash()
    for start, end in parts:
        partial = QuickXorHash.starting_at(start)
        partial.update(data[start:end])
        whole.merge(partial)
    assert whole.b64digest() == quickxorhash(data) and whole.length == len(data)
    with pytest.raises(ValueError, match="cannot merge"):
        whole.merge(QuickXorHash.starting_at(5))


def test_a_range_that_keeps_failing_raises_its_own_error(ranged, emu, tmp_path, payload):
    """One range failing for good stops the others, and the error is that range's, not 'another range failed'."""
    from airflow_provider_onedrive.errors import OneDriveTransportError
    from airflow_provider_onedrive.retry import RetryPolicy

    emu.put_file("big/x.bin", payload(SIZE))
    ranged.graph.retry = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    emu.faults.add("reset", kind="download", every=1)
    with pytest.raises(OneDriveTransportError, match=r"connection error|kept failing"):
        ranged.download_file("big/x.bin", tmp_path / "x.bin")
    assert no_partials(tmp_path) and not (tmp_path / "x.bin").exists()


def test_a_fast_first_stream_keeps_the_download_on_one_stream(emu, tmp_path, payload):
    client = make_client(emu, tmp_path / "state", multi_stream_min_rate=1, **RANGED)  # any stream is fast enough
    data = payload(SIZE)
    emu.put_file("big/x.bin", data)
    result = client.download_file("big/x.bin", tmp_path / "x.bin")
    assert (tmp_path / "x.bin").read_bytes() == data and result.hash == quickxorhash(data)
    requests = downloads(emu)
    assert len(requests) == 1 and "range" not in requests[0].headers


def test_a_slow_first_stream_is_split_and_its_bytes_are_kept(emu, tmp_path, payload):
    client = make_client(emu, tmp_path / "state", multi_stream_min_rate=2**62, **RANGED)  # any stream is slow
    data = payload(SIZE)
    emu.put_file("big/x.bin", data)
    events = []
    result = client.download_file("big/x.bin", tmp_path / "x.bin", progress=events.append)
    assert (tmp_path / "x.bin").read_bytes() == data and result.hash == quickxorhash(data)
    first, *rest = downloads(emu)
    assert "range" not in first.headers and all("range" in r.headers for r in rest)
    # The probe decides on the second block: the first stream keeps its 2 MiB and reads on through the first
    # range (2-3 MiB) on its open connection; three new streams take the ranges from 3 MiB to the end.
    assert len(rest) == 3 and sum(r.bytes_out for r in rest) == SIZE - 3 * MIB
    assert events[-1].bytes_done == SIZE and result.size == SIZE
    assert no_partials(tmp_path)


def test_a_negative_min_rate_is_refused(emu, tmp_path):
    with pytest.raises(OneDriveValidationError, match="multi_stream_min_rate"):
        make_client(emu, tmp_path / "state", multi_stream_min_rate=-1)


def test_the_first_stream_breaking_after_the_split_resumes_its_range(emu, tmp_path, payload):
    client = make_client(emu, tmp_path / "state", multi_stream_min_rate=2**62, **RANGED)
    data = payload(SIZE)
    emu.put_file("big/x.bin", data)
    emu.faults.add("truncate", kind="download", nth=1, after_bytes=2 * MIB + 300_000)  # inside its first range
    result = client.download_file("big/x.bin", tmp_path / "x.bin")
    assert (tmp_path / "x.bin").read_bytes() == data and result.hash == quickxorhash(data)
    resumed = [r for r in downloads(emu)[1:] if r.status == 206]
    assert len(resumed) == 4  # three ranges, and the first range again from where the first stream broke
