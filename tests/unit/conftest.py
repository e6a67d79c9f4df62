"""Fixtures for the pure unit tests: PEM material made on the fly, requests-mock'ed identity endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests_mock as rm

from airflow_provider_onedrive.auth import clear_credential_cache
from tests.unit.unit_helpers import LOGIN, TENANT, TOKEN_URL, Pem, make_pem


@pytest.fixture(scope="session")
def pem() -> Pem:
    return make_pem()


@pytest.fixture(scope="session")
def other_pem() -> Pem:
    return make_pem()


@pytest.fixture
def pem_files(tmp_path: Path, pem: Pem) -> dict[str, str]:
    paths = {}
    for name, text in (("cert", pem.cert), ("key", pem.key), ("encrypted_key", pem.encrypted_key)):
        path = tmp_path / f"{name}.pem"
        path.write_text(text)
        paths[name] = str(path)
    return paths


@pytest.fixture(autouse=True)
def _fresh_credentials():
    clear_credential_cache()
    yield
    clear_credential_cache()


@pytest.fixture
def identity(requests_mock: rm.Mocker) -> rm.Mocker:
    """The global identity platform's discovery endpoints for tenant contoso.onmicrosoft.com."""
    requests_mock.get(
        f"{LOGIN}/{TENANT}/v2.0/.well-known/openid-configuration",
        json={
            "authorization_endpoint": f"{LOGIN}/{TENANT}/oauth2/v2.0/authorize",
            "token_endpoint": TOKEN_URL,
            "device_authorization_endpoint": f"{LOGIN}/{TENANT}/oauth2/v2.0/devicecode",
            "issuer": f"{LOGIN}/{TENANT}/v2.0",
        },
    )
    requests_mock.get(
        f"{LOGIN}/common/discovery/instance",
        json={
            "tenant_discovery_endpoint": "x",
            "metadata": [
                {
                    "preferred_network": "login.microsoftonline.com",
                    "aliases": ["login.microsoftonline.com", "login.windows.net"],
                }
            ],
        },
    )
    return requests_mock
