"""The share operator: a sharing link for a delivered file or folder, pushed to XCom."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.matching import has_magic
from airflow_provider_onedrive.operators.base import OneDriveBaseOperator, is_templated, remote_path_or_glob
from airflow_provider_onedrive.transfers.sharing import check_link_options

__all__ = ["OneDriveShareOperator"]


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
        if expires is not None and expires_in is not None:
            raise OneDriveValidationError("give at most one of expires (a moment) and expires_in (a duration)")
        if expires_in is not None and (not isinstance(expires_in, timedelta) or expires_in <= timedelta(0)):
            raise OneDriveValidationError(f"expires_in must be a positive timedelta, got {expires_in!r}")
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
        check_link_options(
            type=link_type,
            scope=scope,
            expires=None if is_templated(expires) else expires,
            password=password,
            recipients=None if _templated_list(recipients) else recipients,
            retain_inherited_permissions=retain_inherited_permissions,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        path = _shareable(self.path)
        expires = self.expires
        if self.expires_in is not None:
            expires = datetime.now(UTC) + self.expires_in
        with self.client() as client:
            link = client.create_link(
                path,
                type=self.link_type,
                scope=self.scope,
                expires=expires,
                password=self.password,
                recipients=self.recipients,
                retain_inherited_permissions=self.retain_inherited_permissions,
            )
        if self.mask_link and link.url:
            from airflow_provider_onedrive.compat import mask_secret

            mask_secret(link.url)
        self.log.info(
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
