"""A real Airflow api-server and Debian's Chromium (through Playwright) for the connection-form browser test.

The api-server runs as a subprocess with its own AIRFLOW_HOME and migrated SQLite DB, Test Connection enabled and
everyone an admin; it reaches the Graph emulator, which runs in this (the test) process, over loopback HTTPS.
Screenshots go to ``artifacts/ui/`` at the repo root, with the api-server's log. ``ONEDRIVE_UI_CHROMIUM`` names
another Chromium executable. Without Chromium or playwright the tests skip, except under ``CI=true``: they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_onedrive.testing import GraphEmulator

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "ui"
AIRFLOW = Path(sys.executable).with_name("airflow")
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-proxy-server",
]
MIGRATE_TIMEOUT = 120
READY_TIMEOUT = 90
STOP_TIMEOUT = 20
UI_TIMEOUT_MS = 30_000
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "requests_ca_bundle", "curl_ca_bundle"}


def _unavailable(reason: str) -> None:
    """In CI a missing browser is a broken setup (fail); on a developer machine the test is skipped."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason} (`bash .ci/browser` installs Debian's chromium)", pytrace=False)
    pytest.skip(f"{reason}; install Debian's 'chromium' package and `pip install -e '.[ui]'` to run the UI test")


def _chromium_path() -> str:
    configured = os.environ.get("ONEDRIVE_UI_CHROMIUM")
    candidates = (configured,) if configured else CHROMIUM_CANDIDATES
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    _unavailable(f"no Chromium executable found (looked for {', '.join(candidates)})")
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_env(home: Path) -> dict[str, str]:
    """The suite's environment, minus proxies and ambient connections, pointed at a private Airflow home."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW__")) and k.lower() not in _PROXY_VARS
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def _log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow api-server exited with {proc.returncode} before serving:\n{_log_tail(log)}")
        with contextlib.suppress(OSError, urllib.error.URLError), opener.open(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"airflow api-server not ready at {url} within {READY_TIMEOUT}s:\n{_log_tail(log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the api-server's process group (uvicorn and its workers); kill it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="session")
def ui_artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of Chromium; checked before anything expensive starts."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed")
    return _chromium_path()


@pytest.fixture(scope="module")
def ui_emulator(onedrive_emulator_server: GraphEmulator) -> GraphEmulator:
    """The plugin's Graph emulator, reset once for this module; the api-server reaches it over loopback HTTPS."""
    onedrive_emulator_server.reset()
    return onedrive_emulator_server


@pytest.fixture(scope="module")
def api_server(chromium: str, tmp_path_factory: pytest.TempPathFactory, ui_artifacts: Path) -> Iterator[str]:
    """Base URL of a running ``airflow api-server`` on a fresh migrated SQLite DB (stopped after the module)."""
    home = tmp_path_factory.mktemp("ui-airflow-home")
    (home / "dags").mkdir()
    env = _server_env(home)
    migrate = subprocess.run(
        [str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True, timeout=MIGRATE_TIMEOUT
    )
    assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}"
    port = _free_port()
    log = home / "api-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, f"{base}/api/v2/monitor/health", log)
        yield base
    finally:
        _stop(proc)
        with contextlib.suppress(OSError):
            shutil.copyfile(log, ui_artifacts / "api-server.log")


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, api_server: str, ui_artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page on the api-server (base URL set); a screenshot is saved when the test fails."""
    context = browser.new_context(base_url=api_server, viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ui_artifacts / f"FAILED-{request.node.name}.png"), full_page=True)
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
