#!/usr/bin/env python3
"""Writes the committed seed corpus of every fuzz target into fuzz/seeds/<target>/.

Seeds are small and realistic: frames the official SDK sends (wire-protocol notes, sections
2.3-2.7, and mock-server/tests/it/twilsock.rs), tokens minted exactly as `auth::token::mint` and
the `twilio` helper library mint them, forms and queries the helper libraries send, browser
`FormData` uploads, and the scenario library's own files. Run it again after changing it; the
files are committed, so fuzzing never depends on it.
"""
import base64, hashlib, hmac, json, os, shutil, sys

ROOT = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(ROOT, "seeds")
ACCOUNT = "AC" + "0" * 32
KEY = "SK" + "0" * 32
SERVICE = "IS" + "0" * 32
SECRET = "s3cr3t"
NOW = 1_700_000_000


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint(identity="alice", service=SERVICE, ttl=3600, now=NOW, nbf=None, secret=SECRET):
    """`auth::token::mint`, field for field (the twilio helper library's key order)."""
    header = '{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}'
    grants = {"identity": identity}
    if service is not None:
        grants["chat"] = {"service_sid": service}
    payload = {"jti": f"{KEY}-{now}", "grants": grants}
    if nbf is not None:
        payload["nbf"] = nbf
    payload.update({"iat": now, "exp": now + ttl, "iss": KEY, "sub": ACCOUNT})
    msg = b64(header.encode()) + "." + b64(json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).digest()
    return msg + "." + b64(sig)


def frame(header, payload=b""):
    h = dict(header)
    if payload and h.get("payload_type") is None:
        h["payload_type"] = "application/json"
    h.pop("payload_size", None)
    h["payload_size"] = len(payload)
    hj = json.dumps(h, separators=(",", ":"), ensure_ascii=False).encode()
    return b"TWILSOCK V3.0 %d\r\n" % len(hj) + hj + b"\r\n" + payload


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def twilsock():
    token = mint()
    init = {"method": "init", "id": "TM1b2c3d4e-0000-4000-8000-000000000001", "token": token,
            "continuation_token": None, "capabilities": ["client_update", "offline_storage", "telemetry.v1"],
            "metadata": {"ver": "1.0.2", "env": "Node.js", "envv": "20.x", "os": "Linux", "osv": "unknown",
                         "osa": 64, "type": "conversations", "sdk": "JS", "sdkv": "3.0.1"},
            "registrations": [{"product": "ip_messaging", "type": "ers", "notification_protocol_version": 0,
                               "message_types": ["twilio.ipmsg.typing_indicator", "twilio.sync.event",
                                                 "com.twilio.rtd.cds.document", "com.twilio.rtd.cds.list",
                                                 "com.twilio.rtd.cds.map"]}],
            "tweaks": None}
    write("twilsock_codec", "seed-init", frame(init))
    write("twilsock_codec", "seed-update", frame({"method": "update", "id": "TM2", "token": mint(ttl=600)}))
    send = {"method": "message", "id": "TM3", "active_grant": "ip_messaging",
            "payload_type": "application/json; charset=utf-8",
            "http_request": {"host": "aim.us1.twilio.com",
                             "path": "/Client/v2/Services/" + SERVICE + "/Conversations/CH" + "0" * 32 + "/Messages",
                             "method": "POST", "params": {},
                             "headers": {"Content-Type": "application/json; charset=utf-8",
                                         "X-Twilio-Mutation-Id": "5f1c7a2e-0000-4000-8000-000000000003"}}}
    write("twilsock_codec", "seed-message-send", frame(send, b'"{\\"body\\":\\"hi\\",\\"attributes\\":\\"{\\\\\\"k\\\\\\":1}\\"}"'))
    get = {"method": "message", "id": "TM4", "active_grant": "ip_messaging",
           "http_request": {"host": "aim.us1.twilio.com", "path": "/Client/v2/Configuration", "method": "GET",
                            "params": {}, "headers": {}}}
    write("twilsock_codec", "seed-message-configuration", frame(get))
    page = {"method": "message", "id": "TM5", "active_grant": "ip_messaging",
            "http_request": {"host": "cds.us1.twilio.com", "path": "/v3/Lists/ES" + "0" * 32 + "/Items",
                             "method": "GET",
                             "params": {"PageSize": "50", "Order": "desc", "PageToken": "a%2Bb%20c", "Ids": ["x%2Fy", "z"], "N": 5, "Skip": None},
                             "headers": {}}}
    write("twilsock_codec", "seed-message-sync-page", frame(page))
    user = {"method": "message", "id": "TM6",
            "http_request": {"host": "aim.us1.twilio.com", "path": "/Client/v2/Users/alice%20smith%2Fx?Order=desc&Flag&Enc=a%26b",
                             "method": "get", "params": {}, "headers": {"X-Twilio-Mutation-Id": "m1"}}}
    write("twilsock_codec", "seed-message-query-in-path", frame(user))
    subs = {"method": "message", "id": "TM7", "payload_type": "application/json",
            "http_request": {"host": "cds.us1.twilio.com", "path": "/v4/Subscriptions", "method": "POST",
                             "params": {}, "headers": {"Content-Type": "application/json"}}}
    write("twilsock_codec", "seed-message-subscriptions",
          frame(subs, json.dumps({"action": "establish", "correlation_id": 1, "requests": [
              {"object_sid": "MP" + "0" * 32, "object_type": "map", "last_event_id": 3}]}).encode()))
    typing = {"method": "message", "id": "TM8", "payload_type": "application/x-www-form-urlencoded",
              "http_request": {"host": "aim.us1.twilio.com", "path": "/Client/v2/Services/" + SERVICE + "/Typing",
                               "method": "POST", "params": {}, "headers": {"Content-Type": "application/x-www-form-urlencoded"}}}
    write("twilsock_codec", "seed-message-typing", frame(typing, b"ConversationSid=CH" + b"0" * 32))
    ctx = {"method": "put_notification_ctx", "id": "TM9", "notification_ctx_id": "ctx-1"}
    write("twilsock_codec", "seed-put-notification-ctx", frame(ctx, json.dumps(
        {"product_id": "ip_messaging", "notification_protocol_version": 4, "endpoint_platform": "web",
         "message_types": ["twilio.conversations.new_message"]}).encode()))
    write("twilsock_codec", "seed-delete-notification-ctx", frame({"method": "delete_notification_ctx", "id": "TM10", "notification_ctx_id": "ctx-1"}))
    write("twilsock_codec", "seed-telemetry", frame({"method": "telemetry.v1", "id": "TM11", "events": [
        {"start": NOW * 1000, "end": NOW * 1000 + 40, "title": "Client initialization", "details": "", "type": "SDK"}]}))
    write("twilsock_codec", "seed-ack", frame({"method": "reply", "id": "ping-1", "payload_type": "application/json",
                                               "status": {"code": 200, "status": "OK"}}))
    write("twilsock_codec", "seed-close", frame({"method": "close", "id": "TM12"}))
    write("twilsock_codec", "seed-reply-upstream", frame(
        {"method": "reply", "id": "TM3", "status": {"code": 200, "status": "OK"},
         "http_status": {"code": 201, "status": "Created"}, "http_headers": {"Content-Type": "application/json"}},
        b'{"sid":"IM00000000000000000000000000000000","index":0}'))
    write("twilsock_codec", "seed-trailing-bytes", frame({"method": "message", "id": "TM1", "payload_type": "application/json; charset=utf-8"}, b'{"body":"hi"}') + b"\r\ntrailing garbage")


def rest():
    token_asc = "PA" + b64(b"a50")
    token_desc = "PB" + b64(b"d12")
    seeds = {
        "conversation-create": (1, "", "FriendlyName=Support&UniqueName=support-1&Attributes=%7B%22topic%22%3A%22billing%22%7D&State=active&Timers.Inactive=PT5M&Timers.Closed=P1D"),
        "participant-chat": (1, "", "Identity=alice&Attributes=%7B%7D&RoleSid=RL" + "0" * 32),
        "participant-sms": (2, "", "MessagingBinding.Address=%2B15555550100&MessagingBinding.ProxyAddress=%2B15555550199"),
        "message-create": (1, "", "Body=Hello+%F0%9F%91%8B&Author=alice&DateCreated=2024-01-01T00%3A00%3A00Z&Attributes=%7B%22k%22%3A1%7D"),
        "message-media": (1, "", "Author=alice&MediaSid=ME" + "0" * 32 + "&Body="),
        "message-update": (1, "", "Body=edited&DateUpdated=2024-01-02T03%3A04%3A05.678Z&XTwilioWebhookEnabled=true"),
        "read-horizon": (1, "", "LastReadMessageIndex=41&LastReadTimestamp=2024-01-01T00%3A00%3A00Z"),
        "webhook": (1, "", "Target=webhook&Configuration.Url=http%3A%2F%2F127.0.0.1%3A9%2Fhook&Configuration.Method=POST&Configuration.Filters=onMessageAdded&Configuration.Filters=onMessageUpdated"),
        "service-config": (1, "", "PreWebhookUrl=http%3A%2F%2F127.0.0.1%3A9%2Fpre&Filters=onMessageAdd&Method=POST&PostWebhookRetryCount=3"),
        "list-first-page": (0, "PageSize=50", ""),
        "list-next-page": (0, f"PageSize=50&Page=1&PageToken={token_asc}", ""),
        "list-previous-desc": (0, f"PageSize=5&Page=2&PageToken={token_desc}&Order=desc", ""),
        "list-filter": (0, "Identity=alice&PageSize=20&State=active&StartDate=2024-01-01&EndDate=2024-12-31", ""),
        "json-body": (3, "", '{"FriendlyName":"x"}'),
        "multipart-body": (4, "", "--x\r\nContent-Disposition: form-data; name=\"Body\"\r\n\r\nhi\r\n--x--\r\n"),
        "bad-encoding": (1, "Page=%zz", "Body=%F0%28%8C%28&x=%"),
    }
    for name, (ct, query, body) in seeds.items():
        write("rest_params", "seed-" + name, bytes([ct]) + query.encode() + b"\n" + body.encode())


def tokens():
    write("access_token", "seed-alice", b"\x00" + mint().encode())
    write("access_token", "seed-bob-nbf-no-chat", b"\x00" + mint("bob", None, 600, nbf=NOW - 10).encode())
    write("access_token", "seed-expired", b"\x00" + mint(now=NOW - 7200).encode())
    write("access_token", "seed-day-plus-one", b"\x00" + mint(ttl=86_401).encode())
    write("access_token", "seed-wrong-secret", b"\x00" + mint(secret="other").encode())
    write("access_token", "seed-alg-none", b"\x00" + b64(b'{"alg":"none","typ":"JWT","cty":"twilio-fpa;v=1"}').encode() + b"." + mint().split(".")[1].encode() + b".")
    payload = {"jti": f"{KEY}-{NOW}", "grants": {"identity": "alice", "chat": {"service_sid": SERVICE}},
               "iat": NOW, "exp": NOW + 3600, "iss": KEY, "sub": ACCOUNT}
    write("access_token", "seed-signed-payload", b"\x01" + json.dumps(payload, separators=(",", ":")).encode())
    legacy = dict(payload, grants={"identity": "alice", "ip_messaging": {"service_sid": "ISlegacy"}})
    write("access_token", "seed-signed-legacy-grant", b"\x01" + json.dumps(legacy).encode())
    future = dict(payload, iat=NOW + 30 * 86400, exp=NOW + 30 * 86400 + 3600)
    write("access_token", "seed-signed-future-iat", b"\x01" + json.dumps(future).encode())
    huge = dict(payload, exp=2**63 - 1, iat=2**63 - 101)
    write("access_token", "seed-signed-max-exp", b"\x01" + json.dumps(huge).encode())
    write("access_token", "seed-mint-fields", b"\x02" + bytes(range(1, 120)))


def multipart():
    def body(parts, boundary):
        out = b""
        for headers, data in parts:
            out += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + data + b"\r\n"
        return out + f"--{boundary}--\r\n".encode()
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    write("multipart", "seed-chrome-png", b"\x00multipart/form-data; boundary=" + b.encode() + b"\n" + body(
        [('Content-Disposition: form-data; name="file"; filename="fish.png"\r\nContent-Type: image/png', png)], b))
    b = "---------------------------9051914041544843365972754266"
    write("multipart", "seed-firefox-fields", b"\x00multipart/form-data; boundary=" + b.encode() + b"\n" + body(
        [('Content-Disposition: form-data; name="note"', b"hello"),
         ('Content-Disposition: form-data; name="f"; filename="a\\"b;c.txt"\r\nContent-Type: text/plain', b"abc")], b))
    write("multipart", "seed-quoted-boundary", b'\x00Multipart/Form-Data; charset=utf-8; boundary="a b;c"\n' + body(
        [('Content-Disposition: form-data; name="f"; filename="x.txt"; filename*=UTF-8\'\'%E2%82%AC.txt', b"1")], "a b;c"))
    write("multipart", "seed-preamble-blob", b"\x00multipart/form-data; boundary=q\npreamble\r\n" + body(
        [('Content-Disposition: form-data; name="file"; filename="blob"\r\nContent-Type: application/octet-stream', b"\x00\x01\r\n--not\r\n")], "q"))
    write("multipart", "seed-fixed-boundary", b"\x00image/png\n" + body([('Content-Disposition: form-data; name="f"', b"")], "XyZ"))
    write("multipart", "seed-built", b"\x01" + bytes(range(3, 200)))


def scenarios():
    lib = os.path.join(ROOT, "..", "scenarios", "library")
    for area in sorted(os.listdir(lib)):
        folder = os.path.join(lib, area)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".toml"):
                with open(os.path.join(folder, name), "rb") as f:
                    write("scenario_toml", f"seed-{area}-{name[:-5]}", f.read())


if __name__ == "__main__":
    shutil.rmtree(SEEDS, ignore_errors=True)
    twilsock(); rest(); tokens(); multipart(); scenarios()
    for t in sorted(os.listdir(SEEDS)):
        print(t, len(os.listdir(os.path.join(SEEDS, t))), file=sys.stderr)
