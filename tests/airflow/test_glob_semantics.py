"""One glob semantics everywhere: every entry point selects the same files for each pattern of one table.

The semantics (airflow_provider_onedrive.matching): ``*``/``?``/``[...]`` stay within a name, ``**`` spans folders
(as the last segment: everything below, not the folder itself), names match case-insensitively. Entry points:
the pure matcher, the client's glob, the onedrive:// filesystem, the CLI, the List operator, the sensor's poke and
the deferred trigger.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_provider_onedrive.matching import FileCriteria, GlobPattern

pytestmark = pytest.mark.airflow

FILES = [
    "in/a.csv",
    "in/b.txt",
    "in/q1.csv",
    "in/x/c.csv",
    "in/sub/e.CSV",
    "in/sub/x/d.csv",
    "in/sub/deep/er/f.csv",
    "top.csv",
]
FOLDERS = {"in", "in/x", "in/sub", "in/sub/x", "in/sub/deep", "in/sub/deep/er"}

TABLE = [
    ("in/*.csv", {"in/a.csv", "in/q1.csv"}),
    ("in/*", {"in/a.csv", "in/b.txt", "in/q1.csv"}),
    ("in/q?.csv", {"in/q1.csv"}),
    ("in/[ab].*", {"in/a.csv", "in/b.txt"}),
    ("in/[!a]*.csv", {"in/q1.csv"}),
    ("in/*/*.csv", {"in/x/c.csv", "in/sub/e.CSV"}),
    ("in/**/*.csv", {"in/a.csv", "in/q1.csv", "in/x/c.csv", "in/sub/e.CSV", "in/sub/x/d.csv", "in/sub/deep/er/f.csv"}),
    ("in/**/x/**", {"in/x/c.csv", "in/sub/x/d.csv"}),
    ("in/**", set(FILES) - {"top.csv"}),
    ("in/sub/**/f.csv", {"in/sub/deep/er/f.csv"}),
    ("IN/*.CSV", {"in/a.csv", "in/q1.csv"}),
    ("*.csv", {"top.csv"}),
    ("in/*.parquet", set()),
]
PATTERNS = [pattern for pattern, _ in TABLE]


@pytest.fixture
def tree(drive):
    for path in FILES:
        drive.put_file(path, path.encode())
    return drive


def files_only(paths) -> set[str]:
    return {p for p in paths if p not in FOLDERS}


@pytest.mark.parametrize(("pattern", "expected"), TABLE)
def test_pure_matcher(pattern, expected):
    glob = GlobPattern.parse(pattern)
    assert {p for p in FILES if glob.matches(p)} == expected


def test_every_entry_point_selects_the_same_files(tree, monkeypatch, capsys):
    from airflow_provider_onedrive.cli import main
    from airflow_provider_onedrive.fs.onedrive import OneDriveFileSystem
    from airflow_provider_onedrive.hooks.onedrive import OneDriveHook
    from airflow_provider_onedrive.operators.onedrive import OneDriveListOperator
    from airflow_provider_onedrive.sensors.onedrive import list_candidates
    from airflow_provider_onedrive.triggers.onedrive import OneDriveFileTrigger

    client = OneDriveHook(onedrive_conn_id="onedrive_default").get_conn()
    fs = OneDriveFileSystem(conn_id="onedrive_default", skip_instance_cache=True)
    monkeypatch.delenv("ONEDRIVE_CONNECTION", raising=False)
    cli_args = ["--connection", json.dumps(tree.connection("app"))]

    async def trigger_matches(pattern: str) -> set[str]:
        async for event in OneDriveFileTrigger(path=pattern, poke_interval=0.05).run():
            return {m["path"] for m in event.payload.get("matches", [])}
        raise AssertionError("the trigger ended without an event")

    for pattern, expected in TABLE:
        seen: dict[str, set[str]] = {}
        seen["client.glob"] = files_only(item.path for item in client.glob(pattern))
        seen["fsspec glob"] = files_only(fs.glob(pattern))
        assert main(["ls", pattern, *cli_args]) == 0
        printed = capsys.readouterr().out.splitlines()  # one path a line (Airflow may log a line of its own)
        seen["cli ls"] = {line for line in printed if line and " " not in line and not line.endswith("/")}
        glob = GlobPattern.parse(pattern)
        listed = OneDriveListOperator(
            task_id="list",
            folder=glob.base,
            pattern="/".join(glob.segments),
            recursive=glob.recursive,
            files_only=True,
            paths_only=True,
        ).execute({})
        seen["List operator"] = set(listed)
        criteria = FileCriteria(pattern)
        seen["sensor poke"] = {r["path"] for r in criteria.select(list_candidates(client, criteria), now=0.0)}
        if expected:  # a trigger waiting for nothing would only time out
            seen["trigger"] = asyncio.run(trigger_matches(pattern))
        for entry_point, found in seen.items():
            # the literal folders keep the pattern's spelling (IN/a.csv): compare the items selected
            selected = {p.lower() for p in found}
            assert selected == {p.lower() for p in expected}, f"{entry_point} for {pattern!r}: {sorted(found)}"
