"""A user's test suite: the twilio helper library against Rehearsal, through the pytest plugin
that the rehearsal-mock wheel registers. `rehearsal` is a fresh tenant per test on one server
per session."""

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from twilio.base.exceptions import TwilioRestException

from rehearsal_mock import ControlError

SEEN_ACCOUNTS = []


def test_the_client_talks_to_the_tenant(rehearsal):
    client = rehearsal.client()
    assert client.conversations.base_url == rehearsal.server.url
    created = client.conversations.v1.conversations.create(friendly_name="Support")
    assert created.sid.startswith("CH")
    assert created.account_sid == rehearsal.account_sid
    assert client.conversations.v1.conversations(created.sid).fetch().friendly_name == "Support"

    posts = rehearsal.journal(kind="rest", contains="POST /v1/Conversations")
    assert [e["account"] for e in posts["entries"]] == [rehearsal.account_sid]


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_its_own_tenant(rehearsal, run):
    assert rehearsal.account_sid not in [t.account_sid for t in SEEN_ACCOUNTS]
    if SEEN_ACCOUNTS:
        # The previous test's tenant was deleted when it ended: its credentials are refused.
        with pytest.raises(TwilioRestException) as refused:
            SEEN_ACCOUNTS[-1].client().conversations.v1.conversations.create(friendly_name="too late")
        assert refused.value.status == 401
    SEEN_ACCOUNTS.append(rehearsal)
    conversations = rehearsal.client().conversations.v1.conversations
    names = sorted(c.unique_name for c in conversations.list())
    assert names == ["general", "history"], "only the seed's conversations: nothing left by another test"
    conversations.create(unique_name="made-here")


def test_a_post_as_a_participant_reaches_the_rest_api(rehearsal):
    rehearsal.post("general", "hello from bob", actor="bob")
    client = rehearsal.client()
    general = next(c for c in client.conversations.v1.conversations.list() if c.unique_name == "general")
    last = client.conversations.v1.conversations(general.sid).messages.list(order="desc", limit=1)[0]
    assert (last.author, last.body) == ("bob", "hello from bob")


def test_an_http_fault_fails_the_next_request_only(rehearsal):
    conversations = rehearsal.client().conversations.v1.conversations
    fault = rehearsal.faults.http("/v1/Conversations", method="POST", fail=503, code=20503)
    with pytest.raises(TwilioRestException) as failed:
        conversations.create(friendly_name="refused")
    assert (failed.value.status, failed.value.code) == (503, 20503)
    assert conversations.create(friendly_name="accepted").friendly_name == "accepted"
    with pytest.raises(ControlError) as gone:
        fault.remove()
    assert (gone.value.status, gone.value.code) == (404, "no_fault")
    assert len(rehearsal.journal(kind="fault")["entries"]) == 1


def test_a_frozen_clock_dates_what_is_created(rehearsal):
    frozen_at = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    view = rehearsal.clock.freeze(at_ms=int(frozen_at.timestamp() * 1000))
    assert view["now"] == int(frozen_at.timestamp() * 1000)
    conversations = rehearsal.client().conversations.v1.conversations
    assert conversations.create(friendly_name="first").date_created == frozen_at
    rehearsal.clock.advance(3_600_000)
    assert conversations.create(friendly_name="second").date_created == frozen_at + timedelta(hours=1)


def test_tokens_are_for_the_tenant(rehearsal):
    token = rehearsal.token("alice", ttl=600)
    segment = token.split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert payload["sub"] == rehearsal.account_sid
    assert payload["grants"]["identity"] == "alice"
    assert payload["exp"] - payload["iat"] == 600


def test_connection_actions_reach_no_session_when_nobody_is_connected(rehearsal):
    assert rehearsal.connections() == []
    assert rehearsal.drop("alice") == {"sessions": [], "applied": []}
    assert rehearsal.expire_token() == {"sessions": [], "applied": []}
    assert rehearsal.warn_token_expiry({"identity": "bob"}) == {"sessions": [], "applied": []}
    with pytest.raises(ControlError) as bad:
        rehearsal.close("alice", 200)
    assert (bad.value.status, bad.value.code) == (400, "invalid_request")


def test_wait_for_a_journal_entry(rehearsal):
    last = rehearsal.journal(limit=1)["last_seq"]
    rehearsal.client().conversations.v1.conversations.create(friendly_name="watched")
    entry = rehearsal.wait_for(kind="rest", after=last, contains="POST /v1/Conversations", timeout=10)
    assert entry["account"] == rehearsal.account_sid
    assert entry["seq"] > last


def test_env_names_the_tenant_and_the_server(rehearsal, rehearsal_server):
    env = rehearsal.env
    assert env["TWILIO_ACCOUNT_SID"] == rehearsal.account_sid != rehearsal_server.account_sid
    assert env["REHEARSAL_URL"] == rehearsal_server.url
    assert env["REHEARSAL_TOKEN_URL"].startswith(f"{rehearsal_server.url}/token?account={rehearsal.account_sid}&key=")
    assert rehearsal_server.env["TWILIO_ACCOUNT_SID"] == "AC72656865617273616c00000000000001"


def test_the_client_ignores_an_outer_twilio_region(rehearsal, monkeypatch):
    # The helper library would send requests to 127.sydney.au1.0.1 with these set.
    monkeypatch.setenv("TWILIO_REGION", "au1")
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    created = rehearsal.client().conversations.v1.conversations.create(friendly_name="from afar")
    assert created.account_sid == rehearsal.account_sid
