"""The benchmarks still run: small versions of them, checking what they report (never their timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = pytest.mark.slow


def test_trigger_scale_runs_every_trigger_to_its_event_with_the_provider_freeze():
    out = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "trigger_scale.py"),
            "--triggers=40",
            "--latency=0.05",
            "--poke-interval=0.5",
            "--seed-after=2",
            "--gc-freeze=provider",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout[out.stdout.rindex("\n{\n") + 1 :])
    assert (report["fired"], report["error_count"]) == (40, 0)
    assert report["last_fired_at_s"] >= 2.0  # the files appear after 2 s: every trigger polled and waited
    assert report["gc_frozen_objects"] > 50_000 and report["gc_full_floor_ms"] > 0
    assert report["ticks"] > 100 and report["lag_max_ms"] >= report["lag_max_outside_full_gc_ms"]


def test_transfer_bench_quick_reports_every_scenario():
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "transfer_bench.py"), "--quick", "--workers=8"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    by_kind: dict[str, list[dict]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    for kind in ("raw_upload", "client_upload", "raw_download", "raw_download_fsync", "client_download"):
        [row] = by_kind[kind]
        assert row["size_mib"] == 64 and len(row["runs"]) == 2 and row["cpu_s"] > 0
    for direction in ("upload", "download"):
        [ratio] = by_kind[f"ratio_{direction}"]
        assert len(ratio["paired_ratios"]) == 2 and ratio["median_ratio"] > 0
    assert {row["files"] for kind in ("client_upload_folder", "client_download_folder") for row in by_kind[kind]} == {
        200
    }
    for kind in ("raw_list", "client_list", "client_walk"):
        listing = [row for row in by_kind[kind] if "folders" not in row]
        assert [(row["items"], row["requests"]) for row in listing] == [(5000, 5)]  # 5,000 items, $top=1000


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a benchmark script to completion (its table on stderr, its JSON report on stdout)."""
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_watcher_scale_shares_one_delta_poll_between_every_watcher():
    out = run_benchmark("watcher_scale.py", "--watchers=30", "--seconds=5", "--poll-interval=0.5")
    report = json.loads(out.stdout[out.stdout.index("{\n") :])
    assert (report["fired"], report["watchers_fired_once"]) == (30, 30)
    assert report["delta_token_latest"] == 1
    # one request per round the watchers saw, plus token=latest and at most one in flight at the end
    assert report["rounds_seen_max"] <= report["delta_requests"] <= report["rounds_seen_max"] + 1
    assert report["delta_requests"] < 30 and report["ticks"] > 100


def test_peers_bench_quick_without_peers_reports_every_case_byte_exact():
    out = run_benchmark("peers_bench.py", "--quick", "--peers", "none")
    report = json.loads(out.stdout[out.stdout.index("{\n") :])
    assert report["params"]["peers"] == [] and report["ratios"] == {}
    results = report["results"]
    assert set(results) == {"upload_big", "download_big", "upload_small", "download_small", "list"}
    for case in ("upload_big", "upload_small", "list"):
        assert set(results[case]) == {"raw", "ours"}
    for case in ("download_big", "download_small"):
        assert set(results[case]) == {"raw", "raw_fsync", "ours_fsync", "ours_nofsync"}
    for rows in results.values():
        for entry in rows.values():
            assert entry["byte_exact"] is True
            assert len(entry["runs"]) == 1 and entry["min_s"] <= entry["median_s"]
    assert "| upload_big | ours |" in out.stderr


def test_fsspec_bench_reports_wall_and_cpu_ratios_and_leaves_nothing_behind(tmp_path):
    local, blobs = tmp_path / "local", tmp_path / "blobs"
    local.mkdir()
    blobs.mkdir()
    args = ("--sizes", "1", "--pairs", "1", "--tmp-dir", str(local), "--emulator-dir", str(blobs))
    out = run_benchmark("fsspec_bench.py", *args)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [row["what"] for row in rows] == ["put", "get, fsync on", "get, fsync off"]
    for row in rows:
        assert len(row["ratios"]) == len(row["cpu_ratios"]) == len(row["client_s"]) == len(row["raw_s"]) == 1
        assert row["ratios"][0] == pytest.approx(row["client_s"][0] / row["raw_s"][0])
    assert "| 1 MiB | get, fsync off |" in out.stdout
    assert list(local.iterdir()) == [] and list(blobs.iterdir()) == []  # payloads, downloads and blobs removed
