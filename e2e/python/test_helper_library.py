"""The official twilio-python helper library against a fresh Rehearsal server.

Conversations v1 REST: conversations, participants, 250 messages, paging, errors.
Fixtures (`server`, `client`) live in conftest.py.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException

from conftest import DEFAULT_SEED

MESSAGE_COUNT = 250
PAGE_SIZE = 50
UNKNOWN_CONVERSATION_SID = "CH" + "0" * 31 + "1"


def sid_re(prefix: str) -> re.Pattern:
    return re.compile(rf"^{prefix}[0-9a-f]{{32}}$")


def suffix() -> str:
    return uuid.uuid4().hex[:12]


def assert_rest_error(excinfo: pytest.ExceptionInfo, status: int, code: int) -> None:
    err = excinfo.value
    assert type(err) is TwilioRestException, f"expected TwilioRestException, got {type(err).__name__}: {err!r}"
    assert err.status == status, f"HTTP status (msg: {err.msg!r})"
    assert err.code == code, f"Twilio error code (msg: {err.msg!r})"
    assert isinstance(err.msg, str) and err.msg, "error message is not empty"


def collect_pages(first_page):
    """Follow next_page_url by hand from `first_page`; return the list of pages' records."""
    pages = []
    page = first_page
    while True:
        records = list(page)
        pages.append((page, records))
        assert len(pages) <= MESSAGE_COUNT, "paging does not terminate"
        if not page.next_page_url:
            break
        page = page.next_page()
        assert page is not None, "next_page() returns a page when next_page_url is set"
    return pages


def test_env_json_reports_default_seed(server):
    assert server.creds_source == "env", f"rehearsal env --json failed: {server.creds_error}"
    for key, value in DEFAULT_SEED.items():
        assert server.creds[key] == value, key
    assert server.creds["REHEARSAL_URL"].rstrip("/") == server.base_url


def test_conversation_lifecycle(server, client):
    conversations = client.conversations.v1.conversations
    unique_name = f"e2e-py-{suffix()}"
    attributes = {"topic": "rehearsal", "nested": {"n": 1, "ok": True}, "list": ["a", "b"]}

    created = conversations.create(
        friendly_name="E2E python conversation",
        unique_name=unique_name,
        attributes=json.dumps(attributes),
    )
    assert sid_re("CH").match(created.sid), created.sid
    assert created.account_sid == server.creds["TWILIO_ACCOUNT_SID"]
    assert created.chat_service_sid == server.creds["TWILIO_CONVERSATIONS_SERVICE_SID"]
    assert created.friendly_name == "E2E python conversation"
    assert created.unique_name == unique_name
    assert isinstance(created.attributes, str), "attributes is returned as a JSON string"
    assert json.loads(created.attributes) == attributes
    assert created.state == "active"
    assert isinstance(created.date_created, datetime), created.date_created
    assert isinstance(created.date_updated, datetime), created.date_updated
    assert created.url.endswith(f"/v1/Conversations/{created.sid}"), created.url
    assert created.links["participants"].endswith(f"/v1/Conversations/{created.sid}/Participants")
    assert created.links["messages"].endswith(f"/v1/Conversations/{created.sid}/Messages")

    by_sid = conversations(created.sid).fetch()
    assert by_sid.sid == created.sid
    assert by_sid.unique_name == unique_name
    assert json.loads(by_sid.attributes) == attributes
    assert by_sid.date_created == created.date_created

    by_name = conversations(unique_name).fetch()
    assert by_name.sid == created.sid

    new_attributes = {"topic": "updated", "count": 2}
    updated = conversations(created.sid).update(
        friendly_name="E2E python conversation (renamed)",
        attributes=json.dumps(new_attributes),
    )
    assert updated.sid == created.sid
    assert updated.friendly_name == "E2E python conversation (renamed)"
    assert updated.unique_name == unique_name, "unique name unchanged"
    assert json.loads(updated.attributes) == new_attributes
    assert updated.date_updated >= created.date_updated
    refetched = conversations(created.sid).fetch()
    assert refetched.friendly_name == "E2E python conversation (renamed)"
    assert json.loads(refetched.attributes) == new_attributes

    listed = [c.sid for c in conversations.list(page_size=20)]
    assert len(set(listed)) == len(listed), "no conversation listed twice"
    assert created.sid in listed

    assert conversations(created.sid).delete() is True
    with pytest.raises(TwilioRestException) as excinfo:
        conversations(created.sid).fetch()
    assert_rest_error(excinfo, 404, 20404)
    with pytest.raises(TwilioRestException) as excinfo:
        conversations(unique_name).fetch()
    assert_rest_error(excinfo, 404, 20404)


def test_participants(server, client):
    conversation = client.conversations.v1.conversations.create(friendly_name="E2E python participants")
    participants = client.conversations.v1.conversations(conversation.sid).participants
    identity = f"alice-{suffix()}"
    sms_address, proxy_address = "+15558675310", "+15017122661"

    chat = participants.create(identity=identity)
    assert sid_re("MB").match(chat.sid), chat.sid
    assert chat.conversation_sid == conversation.sid
    assert chat.account_sid == server.creds["TWILIO_ACCOUNT_SID"]
    assert chat.identity == identity
    assert chat.messaging_binding is None

    sms = participants.create(
        messaging_binding_address=sms_address,
        messaging_binding_proxy_address=proxy_address,
    )
    assert sid_re("MB").match(sms.sid), sms.sid
    assert sms.conversation_sid == conversation.sid
    assert sms.identity is None
    assert sms.messaging_binding is not None, "messaging_binding is set"
    assert sms.messaging_binding.get("type") == "sms"
    assert sms.messaging_binding.get("address") == sms_address
    assert sms.messaging_binding.get("proxy_address") == proxy_address

    listed = participants.list()
    assert sorted(p.sid for p in listed) == sorted([chat.sid, sms.sid])
    assert next(p for p in listed if p.sid == chat.sid).identity == identity
    assert next(p for p in listed if p.sid == sms.sid).messaging_binding["address"] == sms_address

    fetched = participants(chat.sid).fetch()
    assert fetched.sid == chat.sid
    assert fetched.identity == identity


@pytest.fixture(scope="module")
def paging_conversation(client):
    """A conversation with 250 messages posted sequentially: message i has index i."""
    conversation = client.conversations.v1.conversations.create(friendly_name="E2E python paging")
    messages = client.conversations.v1.conversations(conversation.sid).messages
    created = [
        messages.create(author="alice" if i % 2 == 0 else "bob", body=f"message {i}")
        for i in range(MESSAGE_COUNT)
    ]
    return conversation, created


def assert_ascending(listed, created):
    assert len(listed) == MESSAGE_COUNT
    assert [m.index for m in listed] == list(range(MESSAGE_COUNT))
    assert [m.sid for m in listed] == [m.sid for m in created], "same messages, in creation order"
    assert [m.body for m in listed] == [f"message {i}" for i in range(MESSAGE_COUNT)]
    assert len({m.sid for m in listed}) == MESSAGE_COUNT, "each message listed once"


def test_sequential_creates_get_indexes_0_to_249(paging_conversation):
    conversation, created = paging_conversation
    for i, m in enumerate(created):
        assert sid_re("IM").match(m.sid), m.sid
        assert m.conversation_sid == conversation.sid
        assert m.index == i, f"message {i} got index {m.index}"
        assert m.body == f"message {i}"
        assert m.author == ("alice" if i % 2 == 0 else "bob")
    assert len({m.sid for m in created}) == MESSAGE_COUNT


def test_list_with_page_size(client, paging_conversation):
    conversation, created = paging_conversation
    listed = client.conversations.v1.conversations(conversation.sid).messages.list(page_size=PAGE_SIZE)
    assert_ascending(listed, created)


def test_manual_paging_follows_next_page_url(server, client, paging_conversation):
    conversation, created = paging_conversation
    messages = client.conversations.v1.conversations(conversation.sid).messages
    pages = collect_pages(messages.page(page_size=PAGE_SIZE))

    non_empty = [records for _, records in pages if records]
    assert len(non_empty) == MESSAGE_COUNT // PAGE_SIZE, "number of non-empty pages"
    assert all(len(records) == PAGE_SIZE for records in non_empty), "page size"
    # Tolerate (only) one trailing empty page after the last full one.
    empties = [i for i, (_, records) in enumerate(pages) if not records]
    assert empties in ([], [len(pages) - 1]), f"empty pages at {empties} of {len(pages)}"

    prefix = f"{server.base_url}/v1/Conversations/{conversation.sid}/Messages?"
    for page, _ in pages[:-1]:
        assert page.next_page_url.startswith(prefix), f"next_page_url on this server: {page.next_page_url}"
        assert re.search(r"[?&]PageSize=50(&|$)", page.next_page_url), page.next_page_url
    assert pages[-1][0].next_page_url is None, "last page has no next_page_url"
    assert pages[0][0].previous_page_url is None, "first page has no previous_page_url"

    assert_ascending([m for _, records in pages for m in records], created)


def test_desc_order(client, paging_conversation):
    conversation, created = paging_conversation
    messages = client.conversations.v1.conversations(conversation.sid).messages
    listed = messages.list(order="desc", page_size=PAGE_SIZE)
    assert [m.index for m in listed] == list(range(MESSAGE_COUNT - 1, -1, -1))
    assert [m.sid for m in listed] == [m.sid for m in reversed(created)]

    manual = [m for _, records in collect_pages(messages.page(order="desc", page_size=PAGE_SIZE)) for m in records]
    assert [m.sid for m in manual] == [m.sid for m in listed], "manual desc paging matches list()"


def test_fetch_message(client, paging_conversation):
    conversation, created = paging_conversation
    fetched = client.conversations.v1.conversations(conversation.sid).messages(created[123].sid).fetch()
    assert fetched.sid == created[123].sid
    assert fetched.index == 123
    assert fetched.body == "message 123"


def test_unknown_conversation_is_404_20404(client):
    with pytest.raises(TwilioRestException) as excinfo:
        client.conversations.v1.conversations(UNKNOWN_CONVERSATION_SID).fetch()
    assert_rest_error(excinfo, 404, 20404)


def test_wrong_credentials_are_401_20003(server):
    bad = server.client(password="not-the-auth-token")
    with pytest.raises(TwilioRestException) as excinfo:
        bad.conversations.v1.conversations(UNKNOWN_CONVERSATION_SID).fetch()
    assert_rest_error(excinfo, 401, 20003)
    with pytest.raises(TwilioRestException) as excinfo:
        bad.conversations.v1.conversations.create(friendly_name="nope")
    assert_rest_error(excinfo, 401, 20003)
    # twilio-python's Page raises a plain TwilioException carrying the response.
    with pytest.raises(TwilioException) as excinfo:
        bad.conversations.v1.conversations.list(limit=1)
    assert excinfo.value.args[1].status_code == 401


def test_api_key_authentication(server):
    key_client = server.client(
        username=server.creds["TWILIO_API_KEY"],
        password=server.creds["TWILIO_API_SECRET"],
        account_sid=server.creds["TWILIO_ACCOUNT_SID"],
    )
    conversation = key_client.conversations.v1.conversations.create(friendly_name="E2E python API key")
    assert sid_re("CH").match(conversation.sid)
    assert conversation.account_sid == server.creds["TWILIO_ACCOUNT_SID"]
    assert key_client.conversations.v1.conversations(conversation.sid).fetch().sid == conversation.sid

    wrong_secret = server.client(
        username=server.creds["TWILIO_API_KEY"],
        password="not-the-api-secret",
        account_sid=server.creds["TWILIO_ACCOUNT_SID"],
    )
    with pytest.raises(TwilioRestException) as excinfo:
        wrong_secret.conversations.v1.conversations(conversation.sid).fetch()
    assert_rest_error(excinfo, 401, 20003)
