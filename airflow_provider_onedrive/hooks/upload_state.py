"""Unfinished upload sessions in the Airflow metadata DB, shared by every worker of a deployment.

One Airflow Variable per record, ``onedrive_upload_state__<key>`` (the key is a hash: no path or account shows).
Airflow encrypts Variable values with its Fernet key when ``[core] fernet_key`` is set; without one the record,
whose upload URL is a credential until the session expires (hours to a day), is stored in plain text in the
``variable`` table, readable by anyone who can read that table or the Variables page: configure a Fernet key, or
use a private shared folder (``upload_state`` = ``file:///...``) instead. Records are deleted when their upload
commits or is cancelled, and when a later attempt finds them expired.
"""

from __future__ import annotations

import logging

from airflow_provider_onedrive.transfers.state import SessionState, usable_record

__all__ = ["VARIABLE_PREFIX", "VariableStateStore"]

log = logging.getLogger("airflow_provider_onedrive.hooks.upload_state")

VARIABLE_PREFIX = "onedrive_upload_state__"


class VariableStateStore:
    """Session records as Airflow Variables (through the Task SDK in a task, the metadata DB elsewhere)."""

    def __repr__(self) -> str:
        return "VariableStateStore()"

    @staticmethod
    def variable(key: str) -> str:
        return f"{VARIABLE_PREFIX}{key}"

    def load(self, key: str) -> SessionState | None:
        from airflow_provider_onedrive.compat import get_variable

        return usable_record(self, key, get_variable(self.variable(key)), f"Variable {self.variable(key)}")

    def save(self, key: str, state: SessionState) -> None:
        from airflow_provider_onedrive.compat import set_variable

        set_variable(
            self.variable(key),
            state.to_json(),
            description=f"unfinished OneDrive upload of {state.destination} (deleted when it commits)",
        )

    def forget(self, key: str) -> None:
        from airflow_provider_onedrive.compat import delete_variable

        try:
            delete_variable(self.variable(key))
        except Exception as exc:  # a missing Variable, or the API refusing: the record expires with its session
            log.debug("could not delete upload state %s: %s", self.variable(key), type(exc).__name__)
