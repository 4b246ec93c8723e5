"""Webhooks from a real `rehearsal serve` to a local backend, checked with twilio-python's own
`RequestValidator`: the signature a customer's backend verifies must verify.

The backend is an http.server in a thread of this process; configuration goes through the
helper library. Fixtures (`server`, `client`) live in conftest.py.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

WAIT_S = 10.0


class Backend:
    """A customer's backend: records every request and answers with `respond(request)`."""

    def __init__(self):
        self.requests: list[dict] = []
        self.respond = lambda req: (200, None)
        self.cond = threading.Condition()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                url = f"http://127.0.0.1:{self.server.server_port}{self.path}"
                params = dict(parse_qsl(body, keep_blank_values=True)) if self.command == "POST" else {}
                fields = params if self.command == "POST" else dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
                req = {
                    "method": self.command,
                    "url": url,
                    "path": urlsplit(url).path,
                    "signature": self.headers.get("X-Twilio-Signature"),
                    "content_type": self.headers.get("Content-Type", ""),
                    "params": params,
                    "fields": fields,
                }
                status, payload = backend.respond(req)
                with backend.cond:
                    backend.requests.append(req)
                    backend.cond.notify_all()
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                if payload is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _handle
            do_POST = _handle

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def received(self, n: int) -> list[dict]:
        deadline = time.monotonic() + WAIT_S
        with self.cond:
            while len(self.requests) < n:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"expected {n} webhook requests, got {[r['fields'].get('EventType') for r in self.requests]}"
                self.cond.wait(remaining)
            return list(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def backend():
    b = Backend()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(autouse=True)
def no_hooks_after(client, server):
    """Each test configures its own targets; none outlives it."""
    yield
    client.conversations.v1.configuration.webhooks().update(pre_webhook_url="", post_webhook_url="", filters=[""])
    service = server.creds["TWILIO_CONVERSATIONS_SERVICE_SID"]
    client.conversations.v1.services(service).configuration.webhooks().update(pre_webhook_url="", post_webhook_url="")


def assert_signed(req: dict, auth_token: str) -> None:
    """What a customer's backend does with every request."""
    assert req["signature"], f"{req['fields'].get('EventType')} carries X-Twilio-Signature"
    assert RequestValidator(auth_token).validate(req["url"], req["params"], req["signature"]), req["url"]
    assert not RequestValidator("not-the-auth-token").validate(req["url"], req["params"], req["signature"])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_rest_hooks_fire_with_the_header_and_validate(server, client, backend):
    token = server.creds["TWILIO_AUTH_TOKEN"]
    config = client.conversations.v1.configuration.webhooks().update(
        pre_webhook_url=f"{backend.base}/pre",
        post_webhook_url=f"{backend.base}/post",
        method="POST",
        filters=["onMessageAdd", "onMessageAdded"],
    )
    assert config.pre_webhook_url == f"{backend.base}/pre"
    assert config.filters == ["onMessageAdd", "onMessageAdded"]
    assert client.conversations.v1.configuration.webhooks().fetch().method == "POST"

    conv = client.conversations.v1.conversations.create(unique_name=unique("py-hooks"))
    messages = client.conversations.v1.conversations(conv.sid).messages
    messages.create(body="without the header")
    messages.create(body="with the header", author="ops", x_twilio_webhook_enabled="true")
    got = backend.received(2)
    assert [(r["path"], r["fields"]["EventType"], r["fields"]["Body"]) for r in got] == [
        ("/pre", "onMessageAdd", "with the header"),
        ("/post", "onMessageAdded", "with the header"),
    ]
    for r in got:
        assert_signed(r, token)
        assert r["fields"]["Source"] == "API"
        assert r["fields"]["ConversationSid"] == conv.sid
        assert r["fields"]["Author"] == "ops"
        assert r["content_type"].startswith("application/x-www-form-urlencoded")
    assert got[1]["fields"]["MessageSid"].startswith("IM")


def test_get_hooks_carry_the_fields_in_the_signed_url(server, client, backend):
    token = server.creds["TWILIO_AUTH_TOKEN"]
    service = server.creds["TWILIO_CONVERSATIONS_SERVICE_SID"]
    cfg = client.conversations.v1.services(service).configuration.webhooks().update(
        post_webhook_url=f"{backend.base}/svc?tenant=py", method="GET", filters=["onParticipantAdded"]
    )
    assert cfg.post_webhook_url == f"{backend.base}/svc?tenant=py"
    conv = client.conversations.v1.conversations.create(unique_name=unique("py-get"))
    client.conversations.v1.conversations(conv.sid).participants.create(identity="zoe", x_twilio_webhook_enabled="true")
    [req] = backend.received(1)
    assert req["method"] == "GET"
    assert req["params"] == {}
    assert req["fields"]["Identity"] == "zoe"
    assert req["fields"]["tenant"] == "py", "the configured query string is kept"
    assert_signed(req, token)


def test_a_rejecting_pre_action_hook_fails_the_call_and_stores_nothing(server, client, backend):
    backend.respond = lambda req: (403, None)
    client.conversations.v1.configuration.webhooks().update(
        pre_webhook_url=f"{backend.base}/pre", filters=["onMessageAdd"]
    )
    conv = client.conversations.v1.conversations.create(unique_name=unique("py-veto"))
    with pytest.raises(TwilioRestException) as excinfo:
        client.conversations.v1.conversations(conv.sid).messages.create(body="spam", x_twilio_webhook_enabled="true")
    assert excinfo.value.status == 403
    assert excinfo.value.code == 20403
    assert client.conversations.v1.conversations(conv.sid).messages.list() == []
    [req] = backend.received(1)
    assert_signed(req, server.creds["TWILIO_AUTH_TOKEN"])


def test_a_modifying_pre_action_hook_changes_what_is_stored(server, client, backend):
    def respond(req):
        if req["fields"]["EventType"] == "onMessageAdd":
            return 200, {"body": req["fields"]["Body"].upper(), "attributes": json.dumps({"checked": True})}
        return 200, None

    backend.respond = respond
    client.conversations.v1.configuration.webhooks().update(
        pre_webhook_url=f"{backend.base}/pre", filters=["onMessageAdd"]
    )
    conv = client.conversations.v1.conversations.create(unique_name=unique("py-modify"))
    created = client.conversations.v1.conversations(conv.sid).messages.create(
        body="quiet please", x_twilio_webhook_enabled="true"
    )
    assert created.body == "QUIET PLEASE"
    assert json.loads(created.attributes) == {"checked": True}
    [stored] = client.conversations.v1.conversations(conv.sid).messages.list()
    assert stored.body == "QUIET PLEASE"


def test_conversation_scoped_webhooks_are_managed_and_fire(server, client, backend):
    conv = client.conversations.v1.conversations.create(unique_name=unique("py-scoped"))
    hooks = client.conversations.v1.conversations(conv.sid).webhooks
    created = hooks.create(
        target="webhook",
        configuration_url=f"{backend.base}/scoped",
        configuration_method="POST",
        configuration_filters=["onMessageAdded"],
    )
    assert created.sid.startswith("WH")
    assert created.configuration["filters"] == ["onMessageAdded"]
    assert [w.sid for w in hooks.list()] == [created.sid]
    client.conversations.v1.conversations(conv.sid).messages.create(body="to the bot", x_twilio_webhook_enabled="true")
    [req] = backend.received(1)
    assert req["fields"]["WebhookSid"] == created.sid
    assert req["fields"]["WebhookType"] == "webhook"
    assert_signed(req, server.creds["TWILIO_AUTH_TOKEN"])
    updated = hooks(created.sid).update(configuration_filters=["onMessageUpdated"])
    assert updated.configuration["filters"] == ["onMessageUpdated"]
    assert hooks(created.sid).fetch().target == "webhook"
    assert hooks(created.sid).delete() is True
    assert hooks.list() == []
