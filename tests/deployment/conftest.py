"""The deployment suite's fixtures: its own Graph emulator (strict single-use refresh tokens) and one real
deployment (PostgreSQL, Redis, scheduler, dag-processor, triggerer, api-server, two Celery workers) for the
module. A failing test gets the deployment's process logs attached to its report."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deployment.cluster import Deployment, postgres_installed, redis_installed

_current: list[Deployment] = []


@pytest.fixture(scope="module")
def deploy_emulator() -> Iterator[Any]:
    from airflow_provider_onedrive.commands.demo import seed_demo_drive
    from airflow_provider_onedrive.testing import GraphEmulator

    # strict rotation: a refresh token redeemed once is refused after, the hardest case for shared workers
    with GraphEmulator(refresh_token_reuse="single_use", refresh_token_reuse_grace=0.0) as emulator:
        seed_demo_drive(emulator)
        yield emulator


def require_services() -> None:
    """PostgreSQL and Redis from Debian: in CI their absence is a broken setup (fail); elsewhere, skip."""
    missing = [
        name for name, found in (("postgresql", postgres_installed()), ("redis-server", redis_installed())) if not found
    ]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not installed (`bash .ci/services` installs Debian's packages)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def deployment(deploy_emulator: Any, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    require_services()
    resume = deploy_emulator.connection("app")
    resume["extra"]["upload_state"] = "airflow"  # the metadata DB: the store every worker shares
    connections = {
        "onedrive_default": deploy_emulator.connection("app"),
        "onedrive_delegated": deploy_emulator.connection("delegated"),
        "onedrive_resume": resume,
    }
    deployment = Deployment(connections, worker_concurrency=4)
    _current.append(deployment)
    failures = request.session.testsfailed
    with deployment:
        yield deployment
    _current.clear()
    if request.session.testsfailed == failures:
        shutil.rmtree(deployment.root, ignore_errors=True)  # kept, with every process log, when a test failed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and _current and call.when == "call":
        report.sections.append(("deployment process logs", _current[0].describe()))
    return report
