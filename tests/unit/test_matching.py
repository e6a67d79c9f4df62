"""The pure matching rules shared by OneDriveFileSensor and OneDriveFileTrigger."""

from __future__ import annotations

import datetime

import pytest

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.matching import (
    FileCriteria,
    GlobPattern,
    StabilityTracker,
    compact_item,
    parse_datetime,
)

NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC).timestamp()


def record(path: str, size: int = 10, etag: str = "e1", modified: str = "2024-05-01T10:00:00Z", folder: bool = False):
    return {
        "path": path,
        "name": path.rsplit("/", 1)[-1],
        "size": size,
        "modified": modified,
        "is_folder": folder,
        "id": path,
        "etag": etag,
        "quick_xor_hash": None,
    }


@pytest.mark.parametrize(
    ("pattern", "base", "segments", "recursive"),
    [
        ("incoming/*.csv", "incoming", ("*.csv",), False),
        ("onedrive://incoming/*.csv", "incoming", ("*.csv",), False),
        ("/data/**/x.parquet", "data", ("**", "x.parquet"), True),
        ("*.csv", "", ("*.csv",), False),
        ("a/b/c.csv", "a/b/c.csv", (), False),
        ("a/*/c.csv", "a", ("*", "c.csv"), True),
    ],
)
def test_glob_pattern_parse(pattern, base, segments, recursive):
    glob = GlobPattern.parse(pattern)
    assert (glob.base, glob.segments, glob.recursive) == (base, segments, recursive)


@pytest.mark.parametrize(
    ("pattern", "path", "case_sensitive", "expected"),
    [
        ("incoming/*.csv", "incoming/a.csv", False, True),
        ("incoming/*.csv", "Incoming/A.CSV", False, True),
        ("incoming/*.csv", "Incoming/A.CSV", True, False),
        ("incoming/*.csv", "incoming/sub/a.csv", False, False),
        ("incoming/*.csv", "incomingx/a.csv", False, False),
        ("data/**/x.csv", "data/x.csv", False, True),
        ("data/**/x.csv", "data/a/b/x.csv", False, True),
        ("data/**", "data/a/b", False, True),
        ("a/b.csv", "A/B.csv", False, True),
        ("a/b.csv", "A/B.csv", True, False),
        ("r/[ab]?.txt", "r/a1.txt", False, True),
        ("r/[ab]?.txt", "r/c1.txt", False, False),
    ],
)
def test_glob_matching(pattern, path, case_sensitive, expected):
    assert GlobPattern.parse(pattern).matches(path, case_sensitive=case_sensitive) is expected


@pytest.mark.parametrize("bad", ["", "/", "a//*.csv", "bad:name/*.csv", "../x.csv"])
def test_bad_patterns_raise_validation_errors(bad):
    with pytest.raises(OneDriveValidationError):
        GlobPattern.parse(bad)


def test_parse_datetime_accepts_airflow_rendering_and_naive_values():
    aware = parse_datetime("2024-05-01 00:00:00+00:00")
    assert aware == datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
    assert parse_datetime("2024-05-01T00:00:00") == aware
    assert parse_datetime("2024-05-01T02:00:00+02:00") == aware
    assert parse_datetime(None) is None
    with pytest.raises(OneDriveValidationError, match="ISO 8601"):
        parse_datetime("yesterday")


def test_criteria_filters_size_freshness_and_folders():
    criteria = FileCriteria("in/*.csv", min_size=5, modified_after="2024-05-01T09:00:00Z")
    records = [
        record("in/ok.csv"),
        record("in/small.csv", size=4),
        record("in/old.csv", modified="2024-05-01T08:59:59Z"),
        record("in/dir.csv", folder=True),
        record("in/other.txt"),
    ]
    chosen = criteria.select(records, NOW)
    assert [r["path"] for r in chosen] == ["in/ok.csv"]
    assert "etag" not in chosen[0]  # the public record stays compact


def test_named_path_may_be_a_folder():
    assert FileCriteria("in").select([record("in", folder=True)], NOW)[0]["is_folder"] is True


def test_stability_by_observation_and_by_server_time():
    tracker = StabilityTracker(30)
    fresh = record("a.csv", modified="2024-05-01T11:59:50Z")  # written 10 s ago
    assert not tracker.is_stable(fresh, NOW)
    assert not tracker.is_stable(fresh, NOW + 15)  # server says 25 s, observed 15 s
    assert tracker.is_stable(fresh, NOW + 20)  # 30 s quiet by the server's clock
    changed = dict(fresh, size=99, etag="e2", modified="2024-05-01T12:00:30Z")
    assert not tracker.is_stable(changed, NOW + 31)  # it changed: the quiet period starts again
    assert tracker.is_stable(changed, NOW + 61)
    # without a server timestamp, only observation counts
    tracker = StabilityTracker(5)
    bare = dict(fresh, modified=None)
    assert not tracker.is_stable(bare, NOW)
    assert tracker.is_stable(bare, NOW + 5)


def test_file_that_disappears_starts_over():
    criteria = FileCriteria("in/*.csv", stable_for=10)
    growing = record("in/a.csv", modified=None)
    assert criteria.select([growing], NOW) == []
    assert criteria.select([], NOW + 5) == []
    assert criteria.select([growing], NOW + 11) == []  # reappeared: observed anew
    assert len(criteria.select([growing], NOW + 21)) == 1


def test_compact_item_from_graph_json_uses_server_time_and_no_content():
    raw = {
        "id": "01ABC",
        "name": "q1.csv",
        "size": 12,
        "eTag": '"{X},1"',
        "lastModifiedDateTime": "2024-05-01T10:00:00Z",
        "fileSystemInfo": {"lastModifiedDateTime": "2001-01-01T00:00:00Z"},
        "file": {"hashes": {"quickXorHash": "aCgDG9jwBhDc4Q1yawMZAAAAAAA="}},
        "@microsoft.graph.downloadUrl": "https://secret.example/download?tempauth=xyz",
    }
    item = compact_item(raw, parent="reports")
    assert item == {
        "path": "reports/q1.csv",
        "name": "q1.csv",
        "size": 12,
        "modified": "2024-05-01T10:00:00Z",
        "is_folder": False,
        "id": "01ABC",
        "etag": '"{X},1"',
        "quick_xor_hash": "aCgDG9jwBhDc4Q1yawMZAAAAAAA=",
    }


@pytest.mark.parametrize("kwargs", [{"min_size": -1}, {"stable_for": -2}, {"modified_after": "soon"}])
def test_bad_criteria_raise_value_errors(kwargs):
    with pytest.raises(ValueError):
        FileCriteria("in/*.csv", **kwargs)


def test_graph_times_with_seven_fraction_digits_parse_everywhere():
    """SharePoint writes lastModifiedDateTime with up to seven fractional digits; fromisoformat takes six."""
    from airflow_provider_onedrive.transfers.models import parse_datetime as graph_time

    text = "2024-05-01T10:00:00.1234567Z"
    expected = datetime.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=datetime.UTC)
    assert parse_datetime(text, what="lastModifiedDateTime") == expected == graph_time(text)
    tracker = StabilityTracker(stable_for=60)
    assert tracker.is_stable(record("a.csv", modified=text), NOW) is True
