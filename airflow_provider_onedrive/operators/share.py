"""The share operator: a sharing link for a delivered file or folder, pushed to XCom."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.matching import has_magic
from airflow_provider_onedrive.operators.base import OneDriveBaseOperator, is_templated, remote_path_or_glob
from airflow_provider_onedrive.transfers.sharing import check_link_options

if TYPE_CHECKING:
    from airflow_provider_onedrive.drive import OneDriveClient

__all__ = ["SHARE_OPTIONS", "OneDriveShareOperator", "create_and_log", "link_request"]


class OneDriveShareOperator(OneDriveBaseOperator):
    """Create a sharing link for a file or folder (Graph ``createLink``) and push it to XCom.

    Asking Graph again for a link of the same type and scope returns the existing link, so a retried or rerun
    task hands out the same URL (``created`` is False then). Options are checked when the DAG is parsed
    (literal values) or before any request (templated ones).

    The link URL is the point of this operator, so it is in the XCom value; XCom is readable by everyone who
    can see the DAG's runs. An ``anonymous`` link is a bearer credential (anyone holding the URL gets the item):
    the operator never logs it and, unless ``mask_link=False``, registers it with Airflow's secret masker so a
    later log line cannot show it either. Prefer ``organization`` (Business) or ``users`` scopes.

    :param path: the file or folder to share, relative to the drive root (templated).
    :param link_type: ``view`` (read-only, default), ``edit`` (read-write) or ``embed`` (OneDrive Personal files).
    :param scope: ``anonymous``, ``organization`` (OneDrive for Business / SharePoint), ``users`` (specific
        people, with ``recipients``), or None for the organization's default.
    :param expires: when the link stops working: an aware datetime or ISO 8601 text such as
        ``{{ macros.ds_add(ds, 30) }}T00:00:00Z`` (templated).
    :param expires_in: or how long after the task runs the link stops working (a timedelta).
    :param password: a link password (OneDrive Personal only).
    :param recipients: email addresses for scope ``users`` (templated).
    :param retain_inherited_permissions: False drops inherited permissions the first time the item is shared.
    :param mask_link: register the link URL with Airflow's secret masker (default True).
    :param onedrive_conn_id: the ``onedrive`` connection (templated).
    :return: (XCom) ``{"url", "id", "type", "scope", "roles", "expires", "has_password", "path", "item_id",
        "created"}``.
    """

    template_fields: Sequence[str] = ("onedrive_conn_id", "path", "expires", "recipients")

    def __init__(
        self,
        *,
        path: str,
        link_type: str = "view",
        scope: str | None = None,
        expires: datetime | str | None = None,
        expires_in: timedelta | None = None,
        password: str | None = None,
        recipients: Sequence[Any] | None = None,
        retain_inherited_permissions: bool | None = None,
        mask_link: bool = True,
        onedrive_conn_id: str = "onedrive_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(onedrive_conn_id=onedrive_conn_id, **kwargs)
        self.path = path
        self.link_type = link_type
        self.scope = scope
        self.expires = expires
        self.expires_in = expires_in
        self.password = password
        self.recipients = recipients
        self.retain_inherited_permissions = retain_inherited_permissions
        self.mask_link = mask_link
        if not is_templated(path):
            _shareable(path)
        link_request(self._request(), at_parse=True)

    def _request(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SHARE_OPTIONS}

    def execute(self, context: Any) -> dict[str, Any]:
        path = _shareable(self.path)
        request = self._request()
        with self.client() as client:
            return create_and_log(self, client, path, request)


#: The share options (the share operator's keywords) that ``share=`` of the upload operator accepts.
SHARE_OPTIONS = (
    "link_type",
    "scope",
    "expires",
    "expires_in",
    "password",
    "recipients",
    "retain_inherited_permissions",
    "mask_link",
)


def link_request(options: Mapping[str, Any], *, at_parse: bool = False) -> dict[str, Any]:
    """``options`` (share operator keywords) checked: unknown names, and, at parse time, literal values."""
    unknown = sorted(set(options) - set(SHARE_OPTIONS))
    if unknown:
        raise OneDriveValidationError(f"share= does not know {', '.join(unknown)}; use {', '.join(SHARE_OPTIONS)}")
    if options.get("expires") is not None and options.get("expires_in") is not None:
        raise OneDriveValidationError("give at most one of expires (a moment) and expires_in (a duration)")
    expires_in = options.get("expires_in")
    if expires_in is not None and (not isinstance(expires_in, timedelta) or expires_in <= timedelta(0)):
        raise OneDriveValidationError(f"expires_in must be a positive timedelta, got {expires_in!r}")
    if at_parse:
        check_link_options(
            type=options.get("link_type", "view"),
            scope=options.get("scope"),
            expires=None if is_templated(options.get("expires")) else options.get("expires"),
            password=options.get("password"),
            recipients=None if _templated_list(options.get("recipients")) else options.get("recipients"),
            retain_inherited_permissions=options.get("retain_inherited_permissions"),
        )
    return dict(options)


def create_and_log(operator: Any, client: OneDriveClient, path: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Create (or get back) the link ``options`` describe for ``path``, mask its URL unless told not to, and log
    what was shared (never the URL). Returns the link's XCom dict."""
    options = link_request(options)
    expires = options.get("expires")
    if options.get("expires_in") is not None:
        expires = datetime.now(UTC) + options["expires_in"]
    link = client.create_link(
        path,
        type=options.get("link_type", "view"),
        scope=options.get("scope"),
        expires=expires,
        password=options.get("password"),
        recipients=options.get("recipients"),
        retain_inherited_permissions=options.get("retain_inherited_permissions"),
    )
    if options.get("mask_link", True) and link.url:
        from airflow_provider_onedrive.compat import mask_secret

        mask_secret(link.url)
    operator.log.info(
        "Shared %s: %s link, scope %s, permission %s (%s)%s; the URL is in this task's XCom",
        path,
        link.type,
        link.scope or "the organization's default",
        link.id,
        "new link" if link.created else "the existing link",
        f", expires {link.expires.isoformat()}" if link.expires else ", no expiry",
    )
    return link.to_dict()


def _templated_list(value: Any) -> bool:
    """True when a list's value, or one of its elements, is known only at run time."""
    if is_templated(value):
        return True
    return isinstance(value, list | tuple) and any(is_templated(v) for v in value)


def _shareable(value: Any) -> str:
    path = remote_path_or_glob(value, what="path", allow_root=False)
    if has_magic(path):
        raise OneDriveValidationError(f"path {value!r} is a glob; name the one file or folder to share")
    return path
