"""ConnectionSettings: parsing, defaults per cloud, and every validation error (raised before any I/O)."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from airflow_provider_onedrive.config import ConnectionSettings, certificate_thumbprints
from airflow_provider_onedrive.errors import OneDriveConfigError

APP = {"tenant_id": "contoso.onmicrosoft.com", "drive_type": "user", "user_id": "adele@contoso.com"}


def settings(login="client-id", password="s3cret-value", **extra) -> ConnectionSettings:
    return ConnectionSettings.from_connection_fields("od", login, password, extra)


def config_error(login="client-id", password="s3cret-value", **extra) -> str:
    with pytest.raises(OneDriveConfigError) as info:
        settings(login, password, **extra)
    message = str(info.value)
    assert message.startswith("connection 'od': ")
    assert "s3cret-value" not in message
    return message


def test_client_secret_defaults():
    s = settings(**APP)
    assert s.auth_type == "client_secret"
    assert s.client_secret == "s3cret-value"
    assert s.graph_url == "https://graph.microsoft.com/v1.0"
    assert s.authority == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert s.scopes == ("https://graph.microsoft.com/.default",)
    assert (s.drive_type, s.drive_value) == ("user", "adele@contoso.com")
    assert s.timeout == (10.0, 120.0)
    assert s.verify is True
    assert not s.is_delegated


@pytest.mark.parametrize(
    ("cloud", "graph", "login"),
    [
        ("global", "graph.microsoft.com", "login.microsoftonline.com"),
        ("us_gov", "graph.microsoft.us", "login.microsoftonline.us"),
        ("us_gov_dod", "dod-graph.microsoft.us", "login.microsoftonline.us"),
        ("china", "microsoftgraph.chinacloudapi.cn", "login.chinacloudapi.cn"),
    ],
)
def test_national_clouds(cloud, graph, login):
    app = settings(cloud=cloud, **APP)
    assert app.graph_url == f"https://{graph}/v1.0"
    assert app.authority_host == f"https://{login}"
    assert app.scopes == (f"https://{graph}/.default",)
    delegated = settings(password=None, cloud=cloud, tenant_id="common", refresh_token="rt")
    if cloud == "global":
        assert delegated.scopes == ("Files.ReadWrite.All", "offline_access", "User.Read")
    else:
        assert delegated.scopes == (
            f"https://{graph}/Files.ReadWrite.All",
            "offline_access",
            f"https://{graph}/User.Read",
        )


def test_delegated_defaults_and_public_client():
    s = settings(password=None, tenant_id="organizations", refresh_token="rt-1")
    assert s.auth_type == "refresh_token"
    assert s.is_delegated
    assert s.drive_type == "me"
    assert s.client_secret is None
    assert s.refresh_token == "rt-1"


def test_overrides_extra_json_text_and_legacy_prefix():
    extra = {
        "extra__onedrive__tenant_id": "contoso.onmicrosoft.com",
        "extra__onedrive__drive_type": "drive",
        "drive_id": "b!abc",
        "extra__onedrive__graph_url": "http://127.0.0.1:8080",
        "authority_host": "https://localhost:8443/",
        "scopes": "a/.default, b/.default",
        "connect_timeout": "3",
        "read_timeout": 7.5,
        "proxies": "http://proxy:3128",
        "token_store": "none",
    }
    s = ConnectionSettings.from_connection_fields("od", "cid", "pw", json.dumps(extra))
    assert s.graph_url == "http://127.0.0.1:8080/v1.0"
    assert s.authority_host == "https://localhost:8443"
    assert s.scopes == ("a/.default", "b/.default")
    assert s.timeout == (3.0, 7.5)
    assert s.proxies_dict == {"http": "http://proxy:3128", "https": "http://proxy:3128"}
    assert s.token_store == "none"
    assert (s.drive_type, s.drive_value) == ("drive", "b!abc")


def test_plain_key_wins_over_legacy_prefix_and_empty_strings_mean_unset():
    s = settings(
        tenant_id="right.example", extra__onedrive__tenant_id="wrong.example", drive_id="d", library="", scopes=""
    )
    assert s.tenant_id == "right.example"
    assert s.drive_type == "drive"
    assert s.library is None


def test_scopes_json_list_and_proxies_json_object():
    s = settings(scopes='["x/.default"]', proxies='{"https": "http://p:1"}', **APP)
    assert s.scopes == ("x/.default",)
    assert s.proxies_dict == {"https": "http://p:1"}


def test_repr_and_str_never_show_secrets(pem):
    secret = settings(proxies="http://user:pw@proxy:1", **APP)
    cert = settings(
        password=None,
        certificate=pem.encrypted_key and pem.cert,
        private_key=pem.encrypted_key,
        private_key_passphrase=pem.passphrase,
        **APP,
    )
    delegated = settings(password="s3cret-value", tenant_id="common", refresh_token="rt-very-secret")
    for s in (secret, cert, delegated):
        text = repr(s) + str(s)
        for value in ("s3cret-value", pem.passphrase, "rt-very-secret", "BEGIN", "user:pw"):
            assert value not in text
    assert "client_secret='***'" in repr(secret)


def test_credential_key_is_stable_hash_without_secrets():
    a, b = settings(**APP), settings(**APP)
    assert a.credential_key() == b.credential_key()
    assert a.credential_key() != settings(password="other", **APP).credential_key()
    assert "s3cret" not in a.credential_key()
    assert pickle.loads(pickle.dumps(a)) == a


def test_certificate_from_files_with_passphrase(pem, pem_files):
    s = settings(
        password=None,
        certificate_path=pem_files["cert"],
        private_key_path=pem_files["encrypted_key"],
        private_key_passphrase=pem.passphrase,
        **APP,
    )
    assert s.auth_type == "certificate"
    assert s.certificate_pem.strip() == pem.cert.strip()
    assert "ENCRYPTED PRIVATE KEY" in s.private_key_pem
    sha1, sha256 = certificate_thumbprints(s.certificate_pem)
    assert len(sha1) == 40 and len(sha256) == 64 and sha1 == sha1.upper()


def test_certificate_pasted_with_flattened_newlines(pem):
    one_line = pem.key.replace("\n", "")
    escaped = pem.cert.replace("\n", "\\n")
    s = settings(password=None, auth_type="certificate", certificate=escaped, private_key=one_line, **APP)
    assert s.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert s.certificate_pem.strip() == pem.cert.strip()


def test_single_pem_file_with_certificate_and_key(tmp_path, pem):
    both = tmp_path / "both.pem"
    both.write_text(pem.cert + pem.key)
    s = settings(password=None, certificate_path=str(both), **APP)
    assert "PRIVATE KEY" in s.private_key_pem


def test_ca_bundle_must_exist(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x")
    assert settings(ca_bundle=str(bundle), **APP).verify == str(bundle)
    assert "extra 'ca_bundle'" in config_error(ca_bundle=str(tmp_path / "missing.pem"), **APP)


def test_file_token_store_path_expanded():
    s = settings(password=None, tenant_id="common", refresh_token="rt", token_store="file:~/tok.json")
    assert s.token_store == f"file:{os.path.expanduser('~/tok.json')}"


@pytest.mark.parametrize(
    ("login", "password", "extra", "expected"),
    [
        (None, "pw", APP, "application (client) id is missing"),
        ("cid", "pw", {"drive_type": "user", "user_id": "u"}, "extra 'tenant_id' is required"),
        ("cid", "pw", {**APP, "tenant_id": "bad tenant!"}, "is not a tenant GUID or domain"),
        ("cid", "pw", {**APP, "tenant_id": "common"}, "only works for delegated sign-in"),
        ("cid", "pw", {**APP, "auth_type": "kerberos"}, "extra 'auth_type' is 'kerberos'"),
        ("cid", None, APP, "needs the client secret in the connection's password field"),
        ("cid", "pw", {**APP, "drive_type": "me"}, "drive_type 'me' needs a signed-in user"),
        ("cid", "pw", {"tenant_id": "t.example"}, "need to know which drive to use"),
        ("cid", "pw", {"tenant_id": "t.example", "drive_type": "site"}, "drive_type 'site' needs extra 'site'"),
        ("cid", "pw", {"tenant_id": "t.example", "drive_type": "group"}, "needs extra 'group_id'"),
        ("cid", "pw", {"tenant_id": "t.example", "drive_type": "floppy", "user_id": "u"}, "extra 'drive_type'"),
        ("cid", "pw", {"tenant_id": "t.example", "user_id": "u", "drive_id": "d"}, "several drives are configured"),
        ("cid", "pw", {**APP, "library": "Docs"}, "'library' only applies to drive_type 'site'"),
        ("cid", "pw", {"tenant_id": "t.example", "site": "http://x.sharepoint.com/sites/A"}, "not a SharePoint site"),
        ("cid", "pw", {**APP, "graph_url": "http://graph.example.com/v1.0"}, "plain http to a non-loopback host"),
        ("cid", "pw", {**APP, "graph_url": "graph.microsoft.com"}, "is not an absolute http(s) URL"),
        ("cid", "pw", {**APP, "authority_host": "http://127.0.0.1:1"}, "must use https"),
        ("cid", "pw", {**APP, "authority_host": "https://login.example/tenant"}, "without a tenant or path"),
        ("cid", "pw", {**APP, "cloud": "mars"}, "extra 'cloud' is 'mars'"),
        ("cid", "pw", {**APP, "connect_timeout": "soon"}, "extra 'connect_timeout' must be a number"),
        ("cid", "pw", {**APP, "read_timeout": -1}, "must be a positive number"),
        ("cid", "pw", {**APP, "proxies": "{not json"}, "extra 'proxies' is not valid JSON"),
        ("cid", "pw", {**APP, "proxies": '{"https": "nope"}'}, "is not a proxy URL"),
        ("cid", "pw", {**APP, "proxies": "[1]"}, "is not a proxy URL"),
        ("cid", "pw", {**APP, "scopes": "[oops"}, "extra 'scopes' is not a valid JSON list"),
        ("cid", "pw", {**APP, "token_store": "s3://bucket"}, "extra 'token_store' is 's3://bucket'"),
        ("cid", "pw", {**APP, "token_store": "file:relative.json"}, "needs an absolute path"),
        ("cid", None, {"tenant_id": "common", "auth_type": "refresh_token"}, "needs extra 'refresh_token'"),
    ],
)
def test_validation_errors(login, password, extra, expected):
    with pytest.raises(OneDriveConfigError) as info:
        ConnectionSettings.from_connection_fields("od", login, password, extra)
    assert str(info.value).startswith("connection 'od': ")
    assert expected in str(info.value)
    assert isinstance(info.value, ValueError)


def test_extra_must_be_json_object():
    with pytest.raises(OneDriveConfigError, match="not valid JSON"):
        ConnectionSettings.from_connection_fields("od", "cid", "pw", "{nope")
    with pytest.raises(OneDriveConfigError, match="must be a JSON object"):
        ConnectionSettings.from_connection_fields("od", "cid", "pw", "[1, 2]")


def test_certificate_errors(pem, other_pem, pem_files, tmp_path):
    base = {**APP, "auth_type": "certificate"}
    assert "both a client secret (password) and a certificate" in config_error(
        certificate=pem.cert, private_key=pem.key, **base
    )
    assert "both a client secret and a certificate" in config_error(
        auth_type="client_secret", certificate=pem.cert, **APP
    )
    assert "without its private key" in config_error(password=None, certificate=pem.cert, **base)
    assert "needs the public certificate" in config_error(password=None, private_key=pem.key, **base)
    assert "cannot read the certificate file" in config_error(
        password=None, certificate_path=str(tmp_path / "nope.pem"), private_key=pem.key, **base
    )
    assert "cannot read the private key file" in config_error(
        password=None, certificate=pem.cert, private_key_path=str(tmp_path / "nope.key"), **base
    )
    assert "both extra 'certificate' and 'certificate_path'" in config_error(
        password=None, certificate=pem.cert, certificate_path=pem_files["cert"], private_key=pem.key, **base
    )
    assert "does not hold a PEM certificate" in config_error(
        password=None, certificate="hello", private_key=pem.key, **base
    )
    assert "is not a valid PEM X.509 certificate" in config_error(
        password=None,
        certificate="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        private_key=pem.key,
        **base,
    )
    wrong = config_error(
        password=None, certificate=pem.cert, private_key=pem.encrypted_key, private_key_passphrase="wrong", **base
    )
    assert "private_key_passphrase' is wrong" in wrong and "wrong" not in wrong.split("is wrong")[1]
    assert "set extra 'private_key_passphrase'" in config_error(
        password=None, certificate=pem.cert, private_key=pem.encrypted_key, **base
    )
    assert "key is not encrypted" in config_error(
        password=None, certificate=pem.cert, private_key=pem.key, private_key_passphrase="x", **base
    )
    assert "does not belong to the certificate" in config_error(
        password=None, certificate=pem.cert, private_key=other_pem.key, **base
    )
    assert "does not use a certificate" in config_error(
        password=None, tenant_id="common", auth_type="refresh_token", refresh_token="rt", certificate=pem.cert
    )
