"""Refresh-token lifetime as Microsoft documents it, over raw HTTP against the v2.0 token endpoint.

Sources:
- learn.microsoft.com/entra/identity-platform/refresh-tokens ("Refresh tokens in the Microsoft identity platform"):
  refresh tokens "replace themselves with a fresh token upon every use"; the platform "doesn't revoke old refresh
  tokens when used to fetch new access tokens"; the default lifetime is 90 days (24 hours for SPAs).
- AADSTS700082 text, e.g. Microsoft Q&A "Refresh token expiry and the corresponding error message": "The refresh
  token has expired due to inactivity. The token was issued on 2018-10-19T17:26:59.8511467Z and was inactive for
  90.00:00:00." A Microsoft partner-community report ("OAuth Refresh token has expired after 90 days") shows a token
  that was still being redeemed daily, its new tokens ignored, failing 90 days after its own issue: reuse returns a
  fresh token but does not extend the old one.
- AADSTS50173 after revocation (revokeSignInSessions, password change): "The provided grant has expired due to it
  being revoked, a fresh auth token is needed..." (Entra error lookup, login.microsoftonline.com/error).
"""

from __future__ import annotations

import pytest
import requests

from airflow_provider_onedrive.cli import build_parser
from airflow_provider_onedrive.testing import GraphEmulator
from airflow_provider_onedrive.testing.command import _overrides
from tests.emulator.conftest import Graph

pytestmark = pytest.mark.timeout(60)
DAY = 24 * 3600


def redeem(emu: GraphEmulator, refresh_token: str) -> requests.Response:
    return emu.http_session().post(
        f"{emu.authority}/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": emu.client_id,
            "refresh_token": refresh_token,
            "scope": "Files.ReadWrite.All offline_access",
        },
        timeout=30,
    )


def new_token(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["refresh_token"]


def invalid_grant(response: requests.Response, aadsts: int) -> str:
    """Assert Entra's 400 invalid_grant with ``aadsts``; returns the description."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_grant" and body["error_codes"] == [aadsts]
    assert body["error_description"].startswith(f"AADSTS{aadsts}: ")
    return body["error_description"]


def test_a_redeemed_refresh_token_can_be_redeemed_again_by_default(emu: GraphEmulator) -> None:
    assert emu.settings.refresh_token_reuse == "allowed"
    seeded = emu.refresh_token
    first = new_token(redeem(emu, seeded))
    again = redeem(emu, seeded)
    second = new_token(again)
    assert len({seeded, first, second}) == 3  # every redemption returns a fresh token
    assert new_token(redeem(emu, first)) not in (seeded, first, second)
    me = Graph(emu, again.json()["access_token"]).get("/me/drive")
    assert me.status_code == 200 and me.json()["id"] == emu.drive_id


def test_refresh_token_expires_90_days_after_issue_with_700082(emu: GraphEmulator) -> None:
    assert emu.settings.refresh_token_lifetime == 90 * DAY
    seeded = emu.refresh_token
    emu.advance_time(60 * DAY)
    renewed = new_token(redeem(emu, seeded))  # still valid on day 60; the fresh token has its own 90 days
    emu.advance_time(30 * DAY)  # day 90 of the seeded token, day 30 of the renewed one
    description = invalid_grant(redeem(emu, seeded), 700082)
    assert "The refresh token has expired due to inactivity." in description
    assert "was inactive for 90.00:00:00." in description
    latest = new_token(redeem(emu, renewed))
    emu.advance_time(60 * DAY)  # day 90 of the renewed token
    invalid_grant(redeem(emu, renewed), 700082)
    assert new_token(redeem(emu, latest))  # issued on day 90, so 60 days old: valid


def test_short_lifetime_is_reported_as_a_timespan(emu: GraphEmulator) -> None:
    emu.settings.refresh_token_lifetime = 12 * 3600
    token = emu.issue_refresh_token()
    emu.advance_time(12 * 3600)
    assert "was inactive for 12:00:00." in invalid_grant(redeem(emu, token), 700082)


def test_revoked_refresh_tokens_get_50173(emu: GraphEmulator) -> None:
    seeded = emu.refresh_token
    rotated = new_token(redeem(emu, seeded))
    colleague = emu.issue_refresh_token(emu.users[1])
    assert emu.revoke_refresh_tokens() == 2  # the seeded token and the one it was exchanged for
    for token in (seeded, rotated):
        description = invalid_grant(redeem(emu, token), 50173)
        assert "has expired due to it being revoked, a fresh auth token is needed" in description
        assert "TokensValidFrom" in description
    assert emu.revoke_refresh_tokens() == 0  # nothing live is left for that user
    assert new_token(redeem(emu, colleague))  # another user's tokens are not affected
    signed_in_again = emu.issue_refresh_token()
    assert new_token(redeem(emu, signed_in_again))


def test_single_use_setting_refuses_reuse(emu: GraphEmulator) -> None:
    emu.settings.refresh_token_reuse = "single_use"
    seeded = emu.refresh_token
    first = new_token(redeem(emu, seeded))
    assert "already redeemed" in invalid_grant(redeem(emu, seeded), 70000)
    second = new_token(redeem(emu, first))
    invalid_grant(redeem(emu, first), 70000)
    assert new_token(redeem(emu, second))


def test_reuse_setting_is_validated_and_settable_from_the_command_line() -> None:
    with pytest.raises(ValueError, match="refresh_token_reuse"):
        GraphEmulator(refresh_token_reuse="sometimes")
    args = build_parser().parse_args(["emulator", "--set", "refresh_token_reuse=single_use"])
    overrides = _overrides(args)
    assert overrides["refresh_token_reuse"] == "single_use"
    assert GraphEmulator(**overrides).settings.refresh_token_reuse == "single_use"
