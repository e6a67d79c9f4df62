"""Focused operator behaviour against the emulated drive: conflicts, globs, templating, refusals, XCom shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_onedrive.errors import (
    OneDriveConflictError,
    OneDriveNotFoundError,
    OneDriveValidationError,
)
from airflow_provider_onedrive.hashing import quickxorhash
from airflow_provider_onedrive.operators.onedrive import (
    OneDriveCopyOperator,
    OneDriveCreateFolderOperator,
    OneDriveDeleteOperator,
    OneDriveDownloadOperator,
    OneDriveListOperator,
    OneDriveMoveOperator,
    OneDriveUploadOperator,
)
from tests.airflow.conftest import DS

pytestmark = pytest.mark.airflow

CONTEXT = {"ds": DS, "ds_nodash": DS.replace("-", "")}
LIST_KEYS = {"path", "name", "size", "modified", "is_folder", "id", "quick_xor_hash"}


def run(operator, context=None):
    """Render templated fields like a task run would, then execute."""
    operator.render_template_fields(dict(context or CONTEXT))
    result = operator.execute(dict(context or CONTEXT))
    assert json.loads(json.dumps(result)) == result  # every XCom value is plain JSON
    return result


def graph_writes(drive) -> list[str]:
    return [f"{r.method} {r.path}" for r in drive.requests if r.method in ("PUT", "POST", "PATCH", "DELETE")]


# -- construction: validated without I/O ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (OneDriveUploadOperator, {"remote_path": "a.txt"}, "exactly one of"),
        (OneDriveUploadOperator, {"remote_path": "a.txt", "data": "x", "local_path": "/tmp/x"}, "exactly one of"),
        (OneDriveUploadOperator, {"remote_path": "a.txt", "data": "x", "conflict": "overwrite"}, "conflict must be"),
        (OneDriveUploadOperator, {"remote_path": "in/*.txt", "data": "x"}, "is a glob"),
        (OneDriveUploadOperator, {"remote_path": "bad:name.txt", "data": "x"}, "does not allow"),
        (OneDriveDownloadOperator, {"remote_path": "", "local_path": "/tmp/x"}, "drive root"),
        (OneDriveListOperator, {"files_only": True, "folders_only": True}, "exclude each other"),
        (OneDriveListOperator, {"modified_since": "last tuesday"}, "ISO 8601"),
        (OneDriveDeleteOperator, {"paths": ""}, "drive root"),
        (OneDriveDeleteOperator, {"paths": "/"}, "drive root"),
        (OneDriveDeleteOperator, {"paths": ["ok.txt", "onedrive://"]}, "drive root"),
        (OneDriveDeleteOperator, {"paths": "*"}, "everything in the drive root"),
        (OneDriveDeleteOperator, {"paths": "/**"}, "everything in the drive root"),
        (OneDriveDownloadOperator, {"remote_path": "a", "local_path": "/tmp/x", "streams": 0}, "streams"),
        (OneDriveDownloadOperator, {"remote_path": "a", "local_path": "/tmp/x", "streams": 32}, "streams"),
        (OneDriveDeleteOperator, {"paths": None}, "paths must be"),
        (OneDriveDeleteOperator, {"paths": 5}, "paths must be"),
        (OneDriveDeleteOperator, {"paths": ["a.txt", None]}, "must be a string"),
        (OneDriveUploadOperator, {"remote_path": "a.txt", "data": "x", "max_workers": 0}, "max_workers"),
        (OneDriveDownloadOperator, {"remote_path": "a", "local_path": "/tmp/x", "max_workers": "4"}, "max_workers"),
        (OneDriveDeleteOperator, {"paths": "?*"}, "everything in the drive root"),
        (OneDriveDeleteOperator, {"paths": "*?"}, "everything in the drive root"),
        (OneDriveDeleteOperator, {"paths": "[!~]*"}, "everything in the drive root"),
        (OneDriveDeleteOperator, {"paths": "*/*"}, "everything in the drive root"),
        (OneDriveCreateFolderOperator, {"folder_path": "/"}, "drive root"),
        (OneDriveMoveOperator, {"source_path": "", "destination_path": "x/"}, "drive root"),
        (OneDriveMoveOperator, {"source_path": "a", "destination_path": "x/*"}, "is a glob"),
        (OneDriveCopyOperator, {"source_path": "a", "destination_path": "b", "conflict": "skip"}, "conflict must be"),
    ],
)
def test_bad_arguments_fail_at_construction_with_value_errors(cls, kwargs, message):
    with pytest.raises(OneDriveValidationError, match=message) as info:
        cls(task_id="t", **kwargs)
    assert isinstance(info.value, ValueError)


def test_templated_fields_include_the_connection_id_and_paths():
    assert OneDriveUploadOperator.template_fields == ("onedrive_conn_id", "remote_path", "local_path", "data")
    assert OneDriveDownloadOperator.template_fields == ("onedrive_conn_id", "remote_path", "local_path")
    assert OneDriveListOperator.template_fields == ("onedrive_conn_id", "folder", "pattern", "modified_since")
    assert OneDriveDeleteOperator.template_fields == ("onedrive_conn_id", "paths")
    assert OneDriveCreateFolderOperator.template_fields == ("onedrive_conn_id", "folder_path")
    assert OneDriveMoveOperator.template_fields == ("onedrive_conn_id", "source_path", "destination_path")
    assert OneDriveCopyOperator.template_fields == ("onedrive_conn_id", "source_path", "destination_path")


def test_importing_operators_and_sensors_stays_light():
    code = (
        "import sys\n"
        "import airflow_provider_onedrive.operators.onedrive, airflow_provider_onedrive.sensors.onedrive\n"
        "import airflow_provider_onedrive.triggers.onedrive\n"
        "heavy = ['msal', 'pandas', 'requests', 'numpy', 'airflow_provider_onedrive.drive',\n"
        "         'airflow_provider_onedrive.graph', 'airflow_provider_onedrive.transfers.uploads']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.strip() == "[]"


# -- upload ----------------------------------------------------------------------------------------------------
def test_upload_data_is_templated_and_returns_compact_records(drive):
    result = run(
        OneDriveUploadOperator(task_id="t", data="report for {{ ds }}", remote_path="reports/{{ ds }}/note.txt")
    )
    data = f"report for {DS}".encode()
    assert drive.read_file(f"reports/{DS}/note.txt") == data
    assert result == [
        {
            "path": f"reports/{DS}/note.txt",
            "size": len(data),
            "id": result[0]["id"],
            "hash": quickxorhash(data),
            "status": "created",
            "source": None,
        }
    ]


def test_operators_close_their_client_after_execute(drive, monkeypatch):
    from airflow_provider_onedrive.drive import OneDriveClient

    closed: list[OneDriveClient] = []
    close = OneDriveClient.close
    monkeypatch.setattr(OneDriveClient, "close", lambda self: (closed.append(self), close(self))[1])
    run(OneDriveUploadOperator(task_id="t", data="x", remote_path="closing/a.txt"))
    with pytest.raises(OneDriveNotFoundError):
        run(OneDriveDeleteOperator(task_id="d", paths="closing/missing.txt", missing_ok=False))
    assert len(closed) == 2  # after success and after failure


def test_upload_without_preserving_mtime_sends_one_request_per_small_file(drive, tmp_path):
    local = tmp_path / "batch"
    local.mkdir()
    for name in ("a.csv", "b.csv", "c.csv"):
        (local / name).write_text(name)
    drive.clear_requests()
    run(OneDriveUploadOperator(task_id="t", local_path=str(local), remote_path="fast", preserve_mtime=False))
    writes = graph_writes(drive)
    assert [w for w in writes if w.startswith("PATCH")] == []
    assert len([w for w in writes if w.startswith("PUT")]) == 3
    drive.clear_requests()
    run(OneDriveUploadOperator(task_id="t", local_path=str(local), remote_path="kept"))  # the default keeps mtimes
    writes = graph_writes(drive)  # three PUTs, then their three PATCHes in one $batch request
    assert [w for w in writes if w.startswith("PATCH")] == []
    assert len([w for w in writes if w.startswith("PUT")]) == 3
    assert len([w for w in writes if w.startswith("POST") and w.endswith("$batch")]) == 1
    for name in ("a.csv", "b.csv", "c.csv"):
        assert abs(drive.item(f"kept/{name}").fs_modified - (local / name).stat().st_mtime) < 1


def test_upload_never_overwrites_by_default(drive):
    drive.put_file("out/a.txt", b"precious")
    with pytest.raises(OneDriveConflictError) as info:
        run(OneDriveUploadOperator(task_id="t", data="new", remote_path="out/a.txt"))
    assert info.value.status == 409
    assert drive.read_file("out/a.txt") == b"precious"
    # the same bytes again are not a conflict (a retried task that already committed)
    assert (
        run(OneDriveUploadOperator(task_id="t", data="precious", remote_path="out/a.txt"))[0]["status"] == "identical"
    )


def test_upload_conflict_replace_and_rename(drive):
    drive.put_file("out/a.txt", b"old")
    replaced = run(OneDriveUploadOperator(task_id="t", data=b"new", remote_path="out/a.txt", conflict="replace"))
    assert (replaced[0]["status"], drive.read_file("out/a.txt")) == ("replaced", b"new")
    renamed = run(OneDriveUploadOperator(task_id="t", data=b"other", remote_path="out/a.txt", conflict="rename"))
    assert renamed[0]["status"] == "renamed"
    assert renamed[0]["path"] == "out/a 1.txt"
    assert drive.read_file("out/a 1.txt") == b"other"


def test_upload_local_file_folder_and_glob(drive, tmp_path):
    (tmp_path / "one.csv").write_bytes(b"1")
    (tmp_path / "two.csv").write_bytes(b"22")
    (tmp_path / "skip.txt").write_bytes(b"333")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.csv").write_bytes(b"4444")

    single = run(OneDriveUploadOperator(task_id="t", local_path=str(tmp_path / "one.csv"), remote_path="in/"))
    assert [r["path"] for r in single] == ["in/one.csv"]
    assert single[0]["source"] == str(tmp_path / "one.csv")

    renamed = run(OneDriveUploadOperator(task_id="t", local_path=tmp_path / "one.csv", remote_path="in/renamed.csv"))
    assert renamed[0]["path"] == "in/renamed.csv"

    globbed = run(OneDriveUploadOperator(task_id="t", local_path=str(tmp_path / "*.csv"), remote_path="globbed"))
    assert sorted(r["path"] for r in globbed) == ["globbed/one.csv", "globbed/two.csv"]

    tree = run(OneDriveUploadOperator(task_id="t", local_path=str(tmp_path), remote_path="tree/{{ ds_nodash }}"))
    assert sorted(r["path"] for r in tree) == [
        f"tree/{CONTEXT['ds_nodash']}/{name}" for name in ("one.csv", "skip.txt", "sub/deep.csv", "two.csv")
    ]
    assert drive.read_file(f"tree/{CONTEXT['ds_nodash']}/sub/deep.csv") == b"4444"


def test_upload_glob_matching_nothing_uploads_nothing(drive, tmp_path):
    drive.clear_requests()
    assert run(OneDriveUploadOperator(task_id="t", local_path=str(tmp_path / "*.csv"), remote_path="x")) == []
    assert graph_writes(drive) == []


def test_upload_missing_local_file_fails_before_any_write(drive, tmp_path):
    drive.clear_requests()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run(OneDriveUploadOperator(task_id="t", local_path=str(tmp_path / "nope.csv"), remote_path="x.csv"))
    assert graph_writes(drive) == []


def test_upload_glob_refuses_names_that_clash_case_insensitively(drive, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "Data.csv").write_bytes(b"1")
    (tmp_path / "b" / "data.csv").write_bytes(b"2")
    with pytest.raises(OneDriveValidationError, match="case-insensitive"):
        run(OneDriveUploadOperator(task_id="t", local_path=str(tmp_path / "*" / "*.csv"), remote_path="x"))


def test_glob_transfers_run_concurrently_and_keep_order(drive, tmp_path, monkeypatch):
    """max_workers files move at once (a barrier only opens when 3 transfers are in flight together)."""
    import threading

    from airflow_provider_onedrive.drive import OneDriveClient

    for i in range(6):
        (tmp_path / f"f{i}.csv").write_bytes(b"x" * (i + 1))
    barrier = threading.Barrier(3, timeout=30)
    upload, download = OneDriveClient.upload_file, OneDriveClient.download_file

    def upload_in_step(self, *args, **kwargs):
        barrier.wait()
        return upload(self, *args, **kwargs)

    def download_in_step(self, *args, **kwargs):
        barrier.wait()
        return download(self, *args, **kwargs)

    monkeypatch.setattr(OneDriveClient, "upload_file", upload_in_step)
    monkeypatch.setattr(OneDriveClient, "download_file", download_in_step)
    up = OneDriveUploadOperator(task_id="t", local_path=str(tmp_path / "*.csv"), remote_path="many", max_workers=3)
    results = run(up)
    assert [r["path"] for r in results] == [f"many/f{i}.csv" for i in range(6)]
    assert all(drive.read_file(f"many/f{i}.csv") == b"x" * (i + 1) for i in range(6))

    target = tmp_path / "back"
    down = OneDriveDownloadOperator(task_id="t", remote_path="many/*.csv", local_path=str(target), max_workers=3)
    assert run(down) == [str(target / f"f{i}.csv") for i in range(6)]
    assert (target / "f5.csv").read_bytes() == b"xxxxxx"
    with pytest.raises(OneDriveValidationError, match="max_workers"):
        OneDriveDownloadOperator(task_id="t", remote_path="a", local_path="b", max_workers=0)


# -- download --------------------------------------------------------------------------------------------------
def test_download_file_folder_and_glob(drive, tmp_path):
    drive.put_file("in/a.csv", b"a")
    drive.put_file("in/sub/b.csv", b"bb")
    drive.put_file("in/c.txt", b"ccc")

    assert run(OneDriveDownloadOperator(task_id="t", remote_path="in/a.csv", local_path=str(tmp_path / "x.csv"))) == [
        str(tmp_path / "x.csv")
    ]
    assert (tmp_path / "x.csv").read_bytes() == b"a"

    into = run(OneDriveDownloadOperator(task_id="t", remote_path="in/a.csv", local_path=str(tmp_path / "d") + "/"))
    assert into == [str(tmp_path / "d" / "a.csv")]

    folder = run(OneDriveDownloadOperator(task_id="t", remote_path="in", local_path=str(tmp_path / "tree")))
    assert sorted(Path(p).relative_to(tmp_path / "tree").as_posix() for p in folder) == ["a.csv", "c.txt", "sub/b.csv"]
    assert (tmp_path / "tree" / "sub" / "b.csv").read_bytes() == b"bb"

    glob = run(OneDriveDownloadOperator(task_id="t", remote_path="in/**/*.csv", local_path=str(tmp_path / "g")))
    assert sorted(Path(p).relative_to(tmp_path / "g").as_posix() for p in glob) == ["a.csv", "sub/b.csv"]


def test_download_glob_matching_nothing_and_missing_file(drive, tmp_path):
    assert run(OneDriveDownloadOperator(task_id="t", remote_path="in/*.csv", local_path=str(tmp_path))) == []
    with pytest.raises(OneDriveNotFoundError) as info:
        run(OneDriveDownloadOperator(task_id="t", remote_path="in/a.csv", local_path=str(tmp_path)))
    assert info.value.status == 404
    assert list(tmp_path.iterdir()) == []


# -- list --------------------------------------------------------------------------------------------------------
def test_list_output_is_compact_sorted_and_mappable(drive):
    drive.put_file("inbox/b.csv", b"bb")
    drive.put_file("inbox/A.CSV", b"a")
    drive.put_file("inbox/notes.txt", b"n")
    drive.put_file("inbox/sub/deep.csv", b"d")

    items = run(OneDriveListOperator(task_id="t", folder="inbox", pattern="*.csv"))
    assert [i["path"] for i in items] == ["inbox/A.CSV", "inbox/b.csv"]
    assert all(set(i) == LIST_KEYS for i in items)
    assert items[1]["size"] == 2 and items[1]["quick_xor_hash"] == quickxorhash(b"bb")
    assert len(json.dumps(items)) < 250 * len(items)  # no contents, no download URLs

    deep = run(OneDriveListOperator(task_id="t", folder="inbox", pattern="*.csv", recursive=True, paths_only=True))
    assert deep == ["inbox/A.CSV", "inbox/b.csv", "inbox/sub/deep.csv"]
    exact = run(
        OneDriveListOperator(task_id="t", folder="inbox", pattern="*.CSV", case_sensitive=True, paths_only=True)
    )
    assert exact == ["inbox/A.CSV"]
    relative = run(OneDriveListOperator(task_id="t", folder="inbox", pattern="sub/*", recursive=True, paths_only=True))
    assert relative == ["inbox/sub/deep.csv"]
    assert run(OneDriveListOperator(task_id="t", folder="inbox", folders_only=True, paths_only=True)) == ["inbox/sub"]
    files = run(OneDriveListOperator(task_id="t", folder="inbox", files_only=True, paths_only=True))
    assert files == ["inbox/A.CSV", "inbox/b.csv", "inbox/notes.txt"]


def test_list_modified_since_is_templated_and_uses_the_drive_clock(drive):
    drive.advance_time(-3600)
    drive.put_file("in/old.csv", b"o")
    drive.advance_time(3600)
    drive.put_file("in/new.csv", b"n")
    import datetime

    an_hour_ago = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=30)).isoformat()
    listed = run(
        OneDriveListOperator(task_id="t", folder="in", modified_since="{{ since }}", paths_only=True),
        {**CONTEXT, "since": an_hour_ago},
    )
    assert listed == ["in/new.csv"]


def test_list_missing_folder_and_max_items(drive):
    with pytest.raises(OneDriveNotFoundError):
        run(OneDriveListOperator(task_id="t", folder="nope"))
    assert run(OneDriveListOperator(task_id="t", folder="nope", missing_ok=True)) == []
    for i in range(3):
        drive.put_file(f"many/{i}.txt", b"x")
    with pytest.raises(OneDriveValidationError, match="max_items=2"):
        run(OneDriveListOperator(task_id="t", folder="many", max_items=2))


# -- delete ------------------------------------------------------------------------------------------------------
def test_delete_paths_and_globs(drive):
    for name in ("a.csv", "b.csv", "keep.txt"):
        drive.put_file(f"tmp/{name}", b"x")
    drive.put_file("old/x.txt", b"x")
    deleted = run(OneDriveDeleteOperator(task_id="t", paths=["tmp/*.csv", "old"]))
    assert sorted(deleted) == ["old", "tmp/a.csv", "tmp/b.csv"]
    assert drive.item("tmp/keep.txt") is not None
    assert drive.item("tmp/a.csv") is None and drive.item("old") is None
    assert sorted(drive.deleted_items()) == ["a.csv", "b.csv", "old"]  # to the recycle bin


def test_delete_missing_and_glob_matching_nothing(drive):
    with pytest.raises(OneDriveNotFoundError):
        run(OneDriveDeleteOperator(task_id="t", paths="gone.txt"))
    assert run(OneDriveDeleteOperator(task_id="t", paths="gone.txt", missing_ok=True)) == []
    assert run(OneDriveDeleteOperator(task_id="t", paths="nothing/*.csv")) == []


def test_delete_refuses_a_root_that_only_appears_after_rendering(drive):
    drive.put_file("a.txt", b"x")
    drive.clear_requests()
    operator = OneDriveDeleteOperator(task_id="t", paths="{{ params_folder }}")
    with pytest.raises(OneDriveValidationError, match="drive root"):
        run(operator, {**CONTEXT, "params_folder": "/"})
    assert drive.requests == []  # refused before any request, token included
    assert drive.item("a.txt") is not None


# -- create folder, move, copy ------------------------------------------------------------------------------------
def test_create_folder_with_parents_and_exist_ok(drive):
    created = run(OneDriveCreateFolderOperator(task_id="t", folder_path="a/{{ ds }}/c"))
    assert created["path"] == f"a/{DS}/c" and created["is_folder"] is True
    assert set(created) == LIST_KEYS
    assert run(OneDriveCreateFolderOperator(task_id="t", folder_path=f"a/{DS}/c"))["id"] == created["id"]
    with pytest.raises(OneDriveConflictError):
        run(OneDriveCreateFolderOperator(task_id="t", folder_path=f"a/{DS}/c", exist_ok=False))
    with pytest.raises(OneDriveNotFoundError):
        run(OneDriveCreateFolderOperator(task_id="t", folder_path="x/y", parents=False))


def test_move_glob_into_templated_folder(drive):
    drive.put_file("inbox/a.csv", b"a")
    drive.put_file("inbox/b.csv", b"bb")
    drive.put_file("inbox/c.txt", b"c")
    moved = run(OneDriveMoveOperator(task_id="t", source_path="inbox/*.csv", destination_path="archive/{{ ds }}/"))
    assert sorted((m["source"], m["destination"], m["size"]) for m in moved) == [
        ("inbox/a.csv", f"archive/{DS}/a.csv", 1),
        ("inbox/b.csv", f"archive/{DS}/b.csv", 2),
    ]
    assert drive.read_file(f"archive/{DS}/b.csv") == b"bb"
    assert drive.item("inbox/a.csv") is None and drive.item("inbox/c.txt") is not None
    assert run(OneDriveMoveOperator(task_id="t", source_path="inbox/*.csv", destination_path="archive/")) == []


def test_move_rename_and_conflicts(drive):
    drive.put_file("a.txt", b"new")
    drive.put_file("dest/a.txt", b"old")
    with pytest.raises(OneDriveConflictError):
        run(OneDriveMoveOperator(task_id="t", source_path="a.txt", destination_path="dest/"))
    assert drive.read_file("dest/a.txt") == b"old" and drive.read_file("a.txt") == b"new"
    renamed = run(OneDriveMoveOperator(task_id="t", source_path="a.txt", destination_path="dest/", conflict="rename"))
    assert renamed[0]["destination"] == "dest/a 1.txt"
    drive.put_file("b.txt", b"b")
    run(OneDriveMoveOperator(task_id="t", source_path="b.txt", destination_path="new/place/b2.txt"))
    assert drive.read_file("new/place/b2.txt") == b"b"
    with pytest.raises(OneDriveNotFoundError):
        run(OneDriveMoveOperator(task_id="t", source_path="missing.txt", destination_path="x/"))


def test_copy_keeps_the_source_and_honours_conflict(drive):
    drive.put_file("src/a.csv", b"fresh")
    drive.put_file("dst/a.csv", b"stale")
    with pytest.raises(OneDriveConflictError):
        run(OneDriveCopyOperator(task_id="t", source_path="src/*.csv", destination_path="dst/"))
    copied = run(
        OneDriveCopyOperator(task_id="t", source_path="src/*.csv", destination_path="dst/", conflict="replace")
    )
    assert copied[0]["destination"] == "dst/a.csv"
    assert drive.read_file("dst/a.csv") == b"fresh" and drive.read_file("src/a.csv") == b"fresh"
