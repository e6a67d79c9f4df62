"""OneDriveShareOperator against the emulated drive: validation at parse time, the link in XCom, retries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_onedrive.errors import OneDriveNotFoundError, OneDriveValidationError
from airflow_provider_onedrive.operators.onedrive import OneDriveShareOperator
from tests.airflow.conftest import DS

pytestmark = pytest.mark.airflow

CONTEXT = {"ds": DS, "ds_nodash": DS.replace("-", "")}


def run(operator, context=None):
    operator.render_template_fields(dict(context or CONTEXT))
    result = operator.execute(dict(context or CONTEXT))
    assert json.loads(json.dumps(result)) == result
    return result


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": ""}, "drive root"),
        ({"path": "out/*.csv"}, "is a glob"),
        ({"path": "a.csv", "link_type": "download"}, "link type"),
        ({"path": "a.csv", "scope": "anonymous", "recipients": ["a@contoso.com"]}, "recipients"),
        ({"path": "a.csv", "expires": "2001-01-01T00:00:00Z"}, "in the past"),
        ({"path": "a.csv", "expires": "2031-01-01T00:00:00Z", "expires_in": timedelta(days=1)}, "at most one"),
        ({"path": "a.csv", "expires_in": timedelta(0)}, "positive"),
        ({"path": "a.csv", "link_type": "embed", "scope": "users"}, "embed"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(OneDriveValidationError, match=message):
        OneDriveShareOperator(task_id="share", **kwargs)


def test_templated_path_and_expiry_are_checked_after_rendering(drive):
    drive.put_file(f"reports/{DS}/summary.json", b"{}")
    operator = OneDriveShareOperator(
        task_id="share", path="reports/{{ ds }}/summary.json", expires="{{ ds }}T00:00:00Z", scope="organization"
    )
    with pytest.raises(OneDriveValidationError, match="in the past"):
        run(operator)
    assert not [r for r in drive.requests if r.path.endswith("/createLink")]


def test_the_link_goes_to_xcom_and_a_rerun_returns_the_same_one(drive, client):
    drive.put_file(f"reports/{DS}/summary.json", b"{}")
    operator = OneDriveShareOperator(
        task_id="share", path="reports/{{ ds }}/summary.json", scope="organization", expires_in=timedelta(days=30)
    )
    first = run(operator)
    second = run(operator)
    assert first["url"].startswith("https://") and first["created"] is True and second["created"] is False
    assert second["url"] == first["url"] and second["id"] == first["id"]
    assert first["type"] == "view" and first["scope"] == "organization" and first["roles"] == ["read"]
    expires = datetime.fromisoformat(first["expires"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    assert first["path"] == f"reports/{DS}/summary.json"
    assert [p["id"] for p in client.permissions(first["path"]) if "link" in p] == [first["id"]]
    shared = client.for_share(first["url"])
    assert shared.download_bytes("") == b"{}"


def test_a_missing_path_fails_with_not_found(drive):
    with pytest.raises(OneDriveNotFoundError):
        run(OneDriveShareOperator(task_id="share", path="nothing/here.csv"))


def test_templated_recipients_are_checked_after_rendering(drive):
    drive.put_file("hr/plan.xlsx", b"PK")

    def operator():
        return OneDriveShareOperator(
            task_id="share", path="hr/plan.xlsx", scope="users", recipients=["{{ params.to }}"]
        )

    with pytest.raises(OneDriveValidationError, match="not an email address"):
        run(operator(), {**CONTEXT, "params": {"to": "not-an-address"}})
    assert not [r for r in drive.requests if r.path.endswith("/createLink")]
    link = run(operator(), {**CONTEXT, "params": {"to": drive.users[1]}})
    assert link["scope"] == "users" and link["created"] is True


def test_upload_with_share_adds_a_link_to_each_record(drive, client, tmp_path):
    from airflow_provider_onedrive.operators.onedrive import OneDriveUploadOperator

    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text(f"{name}\n")
    upload = OneDriveUploadOperator(
        task_id="deliver",
        local_path=str(tmp_path / "*.csv"),
        remote_path="out/{{ ds }}/",
        conflict="replace",
        share={"scope": "organization", "expires_in": timedelta(days=7)},
    )
    records = run(upload)
    assert [r["path"] for r in records] == [f"out/{DS}/a.csv", f"out/{DS}/b.csv"]
    links = [r["link"] for r in records]
    assert all(link["scope"] == "organization" and link["created"] for link in links)
    assert links[0]["url"] != links[1]["url"] and links[0]["path"] == records[0]["path"]
    assert client.for_share(links[1]["url"]).download_bytes("") == b"b.csv\n"
    again = run(upload)  # a retry: the same files, the same links
    assert [r["link"]["id"] for r in again] == [link["id"] for link in links]
    assert not any(r["link"]["created"] for r in again)


def test_upload_without_share_keeps_its_record_shape(drive):
    from airflow_provider_onedrive.operators.onedrive import OneDriveUploadOperator

    (record,) = run(OneDriveUploadOperator(task_id="up", data="x", remote_path="x.txt"))
    assert set(record) == {"path", "size", "id", "hash", "status", "source"}


@pytest.mark.parametrize(
    ("share", "message"),
    [
        ({"scopes": "organization"}, "does not know scopes"),
        ({"scope": "anonymous", "recipients": ["a@contoso.com"]}, "recipients"),
        ({"expires_in": timedelta(days=-1)}, "positive"),
    ],
)
def test_upload_share_options_are_checked_when_the_dag_is_parsed(share, message):
    from airflow_provider_onedrive.operators.onedrive import OneDriveUploadOperator

    with pytest.raises(OneDriveValidationError, match=message):
        OneDriveUploadOperator(task_id="up", data="x", remote_path="x.txt", share=share)
