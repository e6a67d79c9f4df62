"""Static provider metadata read by Airflow's ProvidersManager (no imports beyond the package version).

The ``onedrive`` connection form is declared here (``conn-fields`` + ``ui-field-behaviour``): Airflow 3.2+
renders it without importing the hook.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_onedrive import __version__

INTEGRATION = "Microsoft OneDrive"
HOOK_CLASS = "airflow_provider_onedrive.hooks.onedrive.OneDriveHook"


def _text(label: str, description: str, *, fmt: str | None = None, enum: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if fmt:
        schema["format"] = fmt
    if enum:
        schema["enum"] = enum
        schema["default"] = enum[0]
    return {"label": label, "schema": schema, "description": description}


def _number(label: str, description: str, default: float) -> dict[str, Any]:
    return {"label": label, "schema": {"type": ["number", "null"], "default": default}, "description": description}


CONN_FIELDS: dict[str, dict[str, Any]] = {
    "tenant_id": _text(
        "Tenant ID",
        "Directory (tenant) ID or domain, e.g. contoso.onmicrosoft.com. 'common'/'organizations'/'consumers' "
        "only with delegated sign-in.",
    ),
    "auth_type": _text(
        "Auth type",
        "client_secret: app-only with the password field; certificate: app-only with a certificate; "
        "refresh_token: delegated (a signed-in user); workload_identity: app-only with a federated token file "
        "(AKS workload identity, no secret); managed_identity: the Azure resource's managed identity (no secret).",
        enum=["client_secret", "certificate", "refresh_token", "workload_identity", "managed_identity"],
    ),
    "drive_type": _text(
        "Drive type",
        "Which drive: me (delegated only), user (+ User ID), drive (+ Drive ID), site (+ Site), group (+ Group ID).",
        enum=["user", "drive", "site", "group", "me"],
    ),
    "user_id": _text("User ID", "For drive type 'user': the user's UPN (adele@contoso.com) or object id."),
    "drive_id": _text("Drive ID", "For drive type 'drive': the drive id (b!...)."),
    "site": _text(
        "SharePoint site",
        "For drive type 'site': the site id, or its URL such as https://contoso.sharepoint.com/sites/Finance.",
        fmt="url",
    ),
    "library": _text("Document library", "For drive type 'site': the library name (default: the site's default)."),
    "group_id": _text("Group ID", "For drive type 'group': the Microsoft 365 group id."),
    "certificate_path": _text("Certificate file", "Path (on every worker) of the PEM public certificate."),
    "certificate": _text("Certificate (PEM)", "Or paste the PEM public certificate here.", fmt="multiline"),
    "private_key_path": _text("Private key file", "Path (on every worker) of the PEM private key."),
    "private_key": _text("Private key (PEM)", "Or paste the PEM private key here.", fmt="password"),
    "private_key_passphrase": _text("Private key passphrase", "Only if the private key is encrypted.", fmt="password"),
    "refresh_token": _text(
        "Refresh token",
        "For auth type 'refresh_token': from `airflow-onedrive login`. Rotated tokens are kept in the token store.",
        fmt="password",
    ),
    "federated_token_file": _text(
        "Federated token file",
        "For auth type 'workload_identity': path of the projected service account token, re-read when it rotates "
        "(default: $AZURE_FEDERATED_TOKEN_FILE; login and tenant default to $AZURE_CLIENT_ID and $AZURE_TENANT_ID).",
    ),
    "managed_identity_client_id": _text(
        "Managed identity client ID",
        "For auth type 'managed_identity': a user-assigned identity's client id (empty: the system-assigned one).",
    ),
    "managed_identity_object_id": _text(
        "Managed identity object ID",
        "Or a user-assigned identity's object (principal) id.",
    ),
    "managed_identity_resource_id": _text(
        "Managed identity resource ID",
        "Or a user-assigned identity's Azure resource id (/subscriptions/.../userAssignedIdentities/<name>).",
    ),
    "token_store": _text(
        "Refresh token store",
        "Where rotated refresh tokens persist: variable (default; Airflow Variable onedrive_refresh_token__<conn id>),"
        " file:/absolute/path (0600, locked, encrypted), or none.",
    ),
    "upload_state": _text(
        "Upload resume store",
        "Where unfinished large uploads are remembered so a retry resumes them: local (default; this machine's "
        "cache folder), airflow (the metadata DB, shared by all workers), or a URL every worker reaches, e.g. "
        "file:///mnt/shared/onedrive-uploads.",
    ),
    "download_streams": _text(
        "Download streams",
        "Streams fetching one file of 64 MiB or more at once (1 to 16; default 4; 1 turns ranged downloads off).",
    ),
    "fsync_downloads": _text(
        "Sync downloads to disk",
        "true (default): each download is fsynced before it is renamed into place; false is faster on slow disks.",
        enum=["true", "false"],
    ),
    "cloud": _text(
        "Cloud",
        "Microsoft cloud: global, us_gov (GCC High), us_gov_dod (DoD) or china (21Vianet).",
        enum=["global", "us_gov", "us_gov_dod", "china"],
    ),
    "graph_url": _text("Graph URL", "Override the Graph base URL (default from the cloud).", fmt="url"),
    "authority_host": _text(
        "Authority host", "Override the identity host, without tenant (default from the cloud).", fmt="url"
    ),
    "scopes": _text("Scopes", "Space-separated scopes (default: the cloud's Graph /.default, or delegated scopes)."),
    "ca_bundle": _text("CA bundle", "Path of a PEM CA bundle for TLS inspection proxies."),
    "proxies": _text("Proxies", 'One proxy URL, or JSON like {"https": "http://proxy:3128"}.'),
    "connect_timeout": _number("Connect timeout (s)", "Seconds to wait for a connection.", 10),
    "read_timeout": _number("Read timeout (s)", "Seconds to wait for a response.", 120),
}

#: The port is shown although the provider never uses it: Airflow 3.3.2's Test Connection button refuses a saved
#: connection whose port is empty (it posts port 0, which "differs from the stored connection"); storing any port
#: (443) lets the test reach the hook. A field cannot carry a default value, so the placeholder says what to type.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "schema"],
    "relabeling": {
        "login": "Application (client) ID",
        "password": "Client secret",
        "port": "Port (for Test Connection)",
    },
    "placeholders": {
        "port": "443: not used to connect; lets Airflow 3.3.2 test the saved connection",
        "login": "00000000-0000-0000-0000-000000000000",
        "password": "client secret Value (auth type client_secret; optional for refresh_token; empty otherwise)",
        "tenant_id": "contoso.onmicrosoft.com",
        "user_id": "adele@contoso.com",
        "site": "https://contoso.sharepoint.com/sites/Finance",
        "library": "Documents",
        "certificate_path": "/opt/airflow/secrets/onedrive.crt",
        "private_key_path": "/opt/airflow/secrets/onedrive.key",
        "federated_token_file": "/var/run/secrets/azure/tokens/azure-identity-token",
        "managed_identity_client_id": "00000000-0000-0000-0000-000000000000",
        "managed_identity_resource_id": "/subscriptions/<sub>/resourceGroups/<group>/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/<name>",
        "token_store": "variable",
        "proxies": "http://proxy.example.com:3128",
    },
}


CONFIG: dict[str, Any] = {
    "onedrive": {
        "description": "Settings of the Microsoft OneDrive provider.",
        "options": {
            "upload_state": {
                "description": "Where unfinished large uploads are remembered for connections whose extra names "
                "no upload_state: local (each worker's cache folder), airflow (Airflow Variables in the metadata "
                "DB, encrypted with the Fernet key when one is set), or an fsspec URL every worker reaches "
                "(file:///mnt/shared/onedrive-uploads, s3://bucket/prefix). On Celery or Kubernetes choose a "
                "shared one, so a retry on another worker resumes the upload instead of starting over.",
                "version_added": "0.1.0",
                "type": "string",
                "example": "airflow",
                "default": "local",
            },
            "triggerer_gc_freeze": {
                "description": "When the first OneDrive trigger of a triggerer process starts, gc.freeze() "
                "everything then alive (Airflow's import-time heap), so the interpreter's full garbage "
                "collections stop traversing it and stall the triggerer's event loop far less (in the "
                "1,000-trigger benchmark the worst stall fell from 176-194 ms to 21-31 ms). Objects "
                "alive at that moment are never freed afterwards.",
                "version_added": "0.1.0",
                "type": "boolean",
                "example": "True",
                "default": "False",
            },
        },
    }
}


def get_provider_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "package-name": "airflow-provider-onedrive",
        "name": "Microsoft OneDrive",
        "description": "Microsoft OneDrive and SharePoint through Microsoft Graph: hook, operators, sensor, "
        "onedrive:// filesystem.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://learn.microsoft.com/graph/api/resources/onedrive",
                "tags": ["azure"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_onedrive.hooks.onedrive"]}],
        "connection-types": [
            {
                "connection-type": "onedrive",
                "hook-class-name": HOOK_CLASS,
                "hook-name": "Microsoft OneDrive",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
    for key in ("operators", "sensors", "triggers"):
        info[key] = [{"integration-name": INTEGRATION, "python-modules": [f"airflow_provider_onedrive.{key}.onedrive"]}]
    info["filesystems"] = ["airflow_provider_onedrive.fs.onedrive"]
    info["config"] = CONFIG
    return info
