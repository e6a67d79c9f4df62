"""The provider as Airflow sees it: ProvidersManager discovery, declarative form, legacy hooks, cheap import."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from airflow_provider_onedrive.config import AUTH_TYPES
from airflow_provider_onedrive.get_provider_info import CONN_FIELDS, get_provider_info
from airflow_provider_onedrive.hooks.onedrive import OneDriveHook

SECRET_FIELDS = {"private_key", "private_key_passphrase", "refresh_token"}


@pytest.fixture(scope="module")
def manager():
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


def test_provider_discovered(manager):
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    info = manager.providers["airflow-provider-onedrive"]
    assert info.data["package-name"] == "airflow-provider-onedrive"
    hook = ProvidersManagerTaskRuntime().hooks["onedrive"]
    assert hook.hook_class_name == "airflow_provider_onedrive.hooks.onedrive.OneDriveHook"
    assert hook.connection_id_attribute_name == "onedrive_conn_id"
    assert hook.hook_name == "Microsoft OneDrive"
    assert hook.connection_testable


def test_declarative_form(manager):
    widgets = {k: v for k, v in manager.connection_form_widgets.items() if k.startswith("extra__onedrive__")}
    assert set(widgets) == {f"extra__onedrive__{name}" for name in CONN_FIELDS}
    assert {w.field_name for w in widgets.values() if w.is_sensitive} == SECRET_FIELDS
    schema = widgets["extra__onedrive__auth_type"].field["schema"]
    assert schema["enum"] == list(AUTH_TYPES) and schema["title"] == "Auth type"
    assert widgets["extra__onedrive__cloud"].field["schema"]["enum"] == ["global", "us_gov", "us_gov_dod", "china"]
    assert widgets["extra__onedrive__certificate"].field["schema"]["format"] == "multiline"
    assert all(w.field["description"] for w in widgets.values())
    behaviour = manager.field_behaviours["onedrive"]
    assert behaviour["hidden_fields"] == ["host", "schema"]
    assert behaviour["relabeling"] == {
        "login": "Application (client) ID",
        "password": "Client secret",
        "port": "Port (for Test Connection)",
    }
    assert behaviour["placeholders"]["extra__onedrive__site"].startswith("https://")


def test_secret_extras_are_masked_by_name():
    from airflow.sdk._shared.secrets_masker.secrets_masker import should_hide_value_for_key

    assert all(should_hide_value_for_key(name) for name in (*SECRET_FIELDS, "password", "proxies"))
    assert not should_hide_value_for_key("tenant_id")


def test_provider_info_lists_only_existing_modules():
    import importlib

    info = get_provider_info()
    for key in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(key, []):
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for module in info.get("filesystems", []):
        importlib.import_module(module)


def test_provider_info_matches_airflows_schema_and_declares_its_config():
    import json
    from pathlib import Path

    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    option = info["config"]["onedrive"]["options"]["triggerer_gc_freeze"]
    assert (option["type"], option["default"]) == ("boolean", "False")


def test_config_default_and_override_reach_airflow_conf():
    code = (
        "from airflow.configuration import conf; "
        "print(conf.getboolean('onedrive', 'triggerer_gc_freeze'), conf.get_default_value('onedrive', "
        "'triggerer_gc_freeze'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__ONEDRIVE__")}
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert default.stdout.split()[-2:] == ["False", "False"]
    env["AIRFLOW__ONEDRIVE__TRIGGERER_GC_FREEZE"] = "True"
    override = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert override.stdout.split()[-2:] == ["True", "False"]


def test_legacy_form_methods_build_widgets(monkeypatch):
    class Field:
        def __init__(self, label, widget=None, description=None):
            self.label, self.widget, self.description = label, widget, description

    class PasswordField(Field):
        pass

    class StringField(Field):
        pass

    fake = {
        "wtforms": types.SimpleNamespace(PasswordField=PasswordField, StringField=StringField),
        "flask_babel": types.SimpleNamespace(lazy_gettext=lambda text: text),
        "flask_appbuilder": types.ModuleType("flask_appbuilder"),
        "flask_appbuilder.fieldwidgets": types.SimpleNamespace(
            BS3PasswordFieldWidget=lambda: "password",
            BS3TextAreaFieldWidget=lambda: "area",
            BS3TextFieldWidget=lambda: "text",
        ),
    }
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    widgets = OneDriveHook.get_connection_form_widgets()
    assert set(widgets) == set(CONN_FIELDS)
    assert {n for n, w in widgets.items() if isinstance(w, PasswordField)} == SECRET_FIELDS
    assert widgets["certificate"].widget == "area" and widgets["tenant_id"].label == "Tenant ID"
    behaviour = OneDriveHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == ["host", "schema"]
    assert behaviour["relabeling"]["login"] == "Application (client) ID"


IMPORT_CHECK = """
import socket, sys
def no_network(*a, **k):
    raise AssertionError("network I/O at import time")
socket.socket.connect = no_network
socket.create_connection = no_network
import airflow_provider_onedrive.hooks.onedrive as module
hook = module.OneDriveHook("never_defined")
heavy = [m for m in ("msal", "requests", "pandas", "airflow_provider_onedrive.graph", "airflow_provider_onedrive.auth",
                     "airflow_provider_onedrive.drive", "airflow_provider_onedrive.config") if m in sys.modules]
print(",".join(heavy) or "clean")
"""


def test_hook_import_is_cheap_and_offline():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK], capture_output=True, text=True, env=os.environ.copy(), timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "clean"


def test_hook_contract():
    assert OneDriveHook.conn_name_attr == "onedrive_conn_id"
    assert OneDriveHook.default_conn_name == "onedrive_default"
    assert OneDriveHook.conn_type == "onedrive"
    assert OneDriveHook().onedrive_conn_id == "onedrive_default"
    assert OneDriveHook(onedrive_conn_id="x").onedrive_conn_id == "x"
