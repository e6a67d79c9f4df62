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
