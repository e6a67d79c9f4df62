"""Bad input is refused with a typed error that names the problem, before any request is sent.

Each case runs against the emulator with an empty request log and asserts that the log is still empty
afterwards: no token request, no Graph call, nothing half done.
"""

from __future__ import annotations

import datetime
import math

import pytest

from airflow_provider_onedrive.drive import OneDriveClient
from airflow_provider_onedrive.errors import OneDriveConfigError, OneDriveError, OneDriveValidationError
from airflow_provider_onedrive.graph import GraphClient, check_service_url

LONG = "x" * 256
DEEP = "/".join(["abcdefghij"] * 40) + "/f.txt"  # over 400 characters

# (id, call on a client and a local tmp dir, what the message must say)
CASES = [
    # data and types
    ("bytes-str", lambda c, d: c.upload_bytes("text", "a.txt"), "must be bytes"),
    ("bytes-none", lambda c, d: c.upload_bytes(None, "a.txt"), "must be bytes"),
    ("bytes-int", lambda c, d: c.upload_bytes(5, "a.txt"), "must be bytes"),
    ("bytes-list", lambda c, d: c.upload_bytes([1, 2], "a.txt"), "must be bytes"),
    ("path-int", lambda c, d: c.upload_bytes(b"x", 5), "must be a string"),
    ("path-bytes", lambda c, d: c.upload_bytes(b"x", b"a.txt"), "must be a string"),
    ("delete-none", lambda c, d: c.delete(None), "path or a list"),
    ("delete-int", lambda c, d: c.delete(7), "path or a list"),
    ("delete-list-int", lambda c, d: c.delete(["a.txt", 7]), "must be a string"),
    ("info-int", lambda c, d: c.info(3), "must be a string"),
    # empty and root paths
    ("upload-root", lambda c, d: c.upload_bytes(b"x", ""), "drive root"),
    ("upload-slash", lambda c, d: c.upload_bytes(b"x", "/"), "drive root"),
    ("upload-scheme-root", lambda c, d: c.upload_bytes(b"x", "onedrive://"), "drive root"),
    ("upload-none-path", lambda c, d: c.upload_bytes(b"x", None), "drive root"),
    ("delete-root", lambda c, d: c.delete(""), "drive root"),
    ("delete-slash", lambda c, d: c.delete("/"), "drive root"),
    ("delete-root-in-list", lambda c, d: c.delete(["ok.txt", "/"]), "drive root"),
    ("move-root", lambda c, d: c.move("", "x"), "root"),
    ("copy-root", lambda c, d: c.copy("/", "x"), "root"),
    ("download-root", lambda c, d: c.download_bytes(""), "root"),
    ("download-file-root", lambda c, d: c.download_file("/", d / "x"), "root"),
    # names OneDrive refuses
    ("name-colon", lambda c, d: c.upload_bytes(b"x", "a:b.txt"), "does not allow"),
    ("name-star", lambda c, d: c.upload_bytes(b"x", "a*.txt"), "does not allow"),
    ("name-question", lambda c, d: c.upload_bytes(b"x", "a?.txt"), "does not allow"),
    ("name-lt", lambda c, d: c.upload_bytes(b"x", "a<b.txt"), "does not allow"),
    ("name-gt", lambda c, d: c.upload_bytes(b"x", "a>b.txt"), "does not allow"),
    ("name-pipe", lambda c, d: c.upload_bytes(b"x", "a|b.txt"), "does not allow"),
    ("name-quote", lambda c, d: c.upload_bytes(b"x", 'a"b.txt'), "does not allow"),
    ("name-backslash", lambda c, d: c.upload_bytes(b"x", "a\\b.txt"), "does not allow"),
    ("name-trailing-dot", lambda c, d: c.upload_bytes(b"x", "report."), "end"),
    ("name-trailing-space", lambda c, d: c.upload_bytes(b"x", "report "), "space"),
    ("name-leading-space", lambda c, d: c.upload_bytes(b"x", " report"), "space"),
    ("name-con", lambda c, d: c.upload_bytes(b"x", "CON"), "reserved"),
    ("name-desktop-ini", lambda c, d: c.upload_bytes(b"x", "folder/desktop.ini"), "reserved"),
    ("name-lock-file", lambda c, d: c.upload_bytes(b"x", "~$report.xlsx"), "~$"),
    ("name-control-char", lambda c, d: c.upload_bytes(b"x", "a\x01b.txt"), "control"),
    ("name-newline", lambda c, d: c.upload_bytes(b"x", "a\nb.txt"), "control"),
    ("name-too-long", lambda c, d: c.upload_bytes(b"x", LONG), "255"),
    ("path-too-long", lambda c, d: c.upload_bytes(b"x", DEEP), "400"),
    ("path-dotdot", lambda c, d: c.upload_bytes(b"x", "a/../b.txt"), ".."),
    ("path-dot", lambda c, d: c.upload_bytes(b"x", "a/./b.txt"), "."),
    ("path-double-slash", lambda c, d: c.upload_bytes(b"x", "a//b.txt"), "empty"),
    ("mkdir-bad-name", lambda c, d: c.mkdir("in|box"), "does not allow"),
    ("move-bad-target", lambda c, d: c.move("a.txt", "b:c.txt"), "does not allow"),
    # globs
    ("glob-empty", lambda c, d: c.glob(""), "root"),
    ("glob-double-slash", lambda c, d: c.glob("a//*.csv"), "empty"),
    ("glob-bad-base", lambda c, d: c.glob("bad:name/*.csv"), "does not allow"),
    ("glob-not-str", lambda c, d: c.glob(None), "must be a string"),
    ("glob-dotdot-base", lambda c, d: c.glob("../*.csv"), ".."),
    # conflicts and choices
    ("upload-conflict", lambda c, d: c.upload_bytes(b"x", "a.txt", conflict="overwrite"), "conflict must be"),
    ("upload-conflict-none", lambda c, d: c.upload_bytes(b"x", "a.txt", conflict=None), "conflict must be"),
    ("copy-conflict", lambda c, d: c.copy("a.txt", "b.txt", conflict="skip"), "conflict must be"),
    ("move-conflict", lambda c, d: c.move("a.txt", "b.txt", conflict="keep"), "conflict must be"),
    ("ls-both-only", lambda c, d: list(c.ls("a", files_only=True, folders_only=True)), "exclude each other"),
    ("ls-naive-since", lambda c, d: list(c.ls("a", modified_since=datetime.datetime(2024, 1, 1))), "timezone"),
    (
        "ls-modified-by",
        lambda c, d: list(c.ls("a", modified_since=datetime.datetime.now(datetime.UTC), modified_by="server")),
        "modified_by",
    ),
    # sizes and ranges
    ("range-negative-start", lambda c, d: c.read_range("a.txt", -1, 5), "invalid range"),
    ("range-negative-length", lambda c, d: c.read_range("a.txt", 0, -5), "invalid range"),
    # timeouts
    ("copy-timeout-negative", lambda c, d: c.copy("a.txt", "b.txt", timeout=-1), "timeout"),
    ("copy-timeout-zero", lambda c, d: c.copy("a.txt", "b.txt", timeout=0), "timeout"),
    ("copy-timeout-text", lambda c, d: c.copy("a.txt", "b.txt", timeout="5"), "timeout"),
    ("copy-timeout-nan", lambda c, d: c.copy("a.txt", "b.txt", timeout=math.nan), "timeout"),
    ("copy-timeout-bool", lambda c, d: c.copy("a.txt", "b.txt", timeout=True), "timeout"),
    ("copy-timeout-none", lambda c, d: c.copy("a.txt", "b.txt", timeout=None), "timeout"),
    # worker counts
    ("walk-workers-zero", lambda c, d: list(c.walk("a", max_workers=0)), "max_workers"),
    ("walk-workers-negative", lambda c, d: list(c.walk("a", max_workers=-2)), "max_workers"),
    ("walk-workers-text", lambda c, d: list(c.walk("a", max_workers="8")), "max_workers"),
    ("walk-workers-float", lambda c, d: list(c.walk("a", max_workers=2.5)), "max_workers"),
    ("upload-folder-workers-zero", lambda c, d: c.upload_folder(d, "up", max_workers=0), "max_workers"),
    ("download-folder-workers-zero", lambda c, d: c.download_folder("a", d / "out", max_workers=0), "max_workers"),
    ("download-folder-workers-text", lambda c, d: c.download_folder("a", d / "out", max_workers="4"), "max_workers"),
]

# Client construction: (id, keyword arguments for OneDriveClient, message)
CONSTRUCTION = [
    ("workers-text", {"max_workers": "8"}, "max_workers"),
    ("workers-zero", {"max_workers": 0}, "max_workers"),
    ("workers-negative", {"max_workers": -1}, "max_workers"),
    ("workers-bool", {"max_workers": True}, "max_workers"),
    ("threshold-negative", {"simple_upload_threshold": -1}, "simple_upload_threshold"),
    ("fragment-zero", {"fragment_size": 0}, "fragment_size"),
    ("fragment-negative", {"fragment_size": -320 * 1024}, "fragment_size"),
    ("fragment-60mib", {"fragment_size": 60 * 1024 * 1024}, "60 MiB"),
]

# Service URLs, checked the way the HTTP stack will connect
URLS = [
    ("backslash-userinfo", "http://192.0.2.2:8080\\@127.0.0.1/v1.0", "backslash"),
    ("userinfo", "https://user:pw@graph.microsoft.com/v1.0", "user info"),
    ("userinfo-loopback", "http://evil@127.0.0.1:8080/v1.0", "user info"),
    ("plain-http-remote", "http://graph.microsoft.com/v1.0", "plain http"),
    ("ftp", "ftp://graph.microsoft.com/v1.0", "http(s)"),
    ("relative", "/v1.0", "http(s)"),
    ("empty", "", "http(s)"),
    ("space", "https://graph.microsoft.com /v1.0", "space"),
    ("control", "https://graph.microsoft.com\x00.evil/v1.0", "control"),
    ("not-a-string", 5, "http(s)"),
]


@pytest.fixture
def quiet(emu):
    """The emulator with an empty request log; the test asserts it stays empty."""
    emu.clear_requests()
    return emu


@pytest.mark.parametrize(("call", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_request(client, quiet, tmp_path, call, message):
    (tmp_path / "local.txt").write_bytes(b"local")
    with pytest.raises(OneDriveValidationError) as caught:
        call(client, tmp_path)
    assert message.lower() in str(caught.value).lower()
    assert isinstance(caught.value, ValueError | OneDriveError)
    assert quiet.requests == []


@pytest.mark.parametrize(("options", "message"), [c[1:] for c in CONSTRUCTION], ids=[c[0] for c in CONSTRUCTION])
def test_bad_client_options_are_refused_at_construction(emu, quiet, options, message):
    graph = GraphClient(lambda: "unused", graph_url=emu.graph_url, verify=emu.ca_bundle)
    with pytest.raises(OneDriveValidationError, match=message):
        OneDriveClient(graph, f"drives/{emu.drive_id}", **options)
    assert quiet.requests == []


@pytest.mark.parametrize(("url", "message"), [c[1:] for c in URLS], ids=[c[0] for c in URLS])
def test_bad_service_urls_are_refused(quiet, url, message):
    with pytest.raises(OneDriveConfigError) as caught:
        check_service_url(url)
    assert message.lower() in str(caught.value).lower()
    with pytest.raises(OneDriveConfigError):
        GraphClient(lambda: "token", graph_url=url)
    assert quiet.requests == []


def test_the_suite_covers_at_least_eighty_kinds_of_bad_input():
    assert len(CASES) + len(CONSTRUCTION) + len(URLS) >= 80
