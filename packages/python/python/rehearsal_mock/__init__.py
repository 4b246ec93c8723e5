"""Rehearsal for Python tests: start the ``rehearsal`` binary this wheel installed on a free
loopback port, and drive it through its control plane (``/_rehearsal/v1``, README's "Control
plane") with typed calls. Every wait is bounded by a timeout; nothing sleeps.

    from rehearsal_mock import start_rehearsal

    with start_rehearsal() as server:
        tenant = server.tenant()
        client = tenant.client()            # twilio's Client, conversations.base_url preset
        tenant.post("general", "hi", actor="bob")

Under pytest the plugin gives you ``rehearsal`` (a tenant per test on a server per session).
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import subprocess
import sys
import sysconfig
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, TypedDict, Union

if TYPE_CHECKING:  # pragma: no cover
    from twilio.rest import Client

__all__ = [
    "Account",
    "ControlError",
    "Rehearsal",
    "Tenant",
    "find_rehearsal_bin",
    "start_rehearsal",
]

CONTROL_PREFIX = "/_rehearsal/v1"
STARTUP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LOG_LINES = 200

# ---------------------------------------------------------------------------------------------
# Types of the control plane's answers
# ---------------------------------------------------------------------------------------------

Target = Union[None, str, Mapping[str, Any]]
"""Which sessions a connection action is for: ``None`` (all of the account's), an identity, or
``{"session": N}`` / ``{"identity": "alice"}``."""


class Credentials(TypedDict):
    account_sid: str
    auth_token: str
    api_key: str
    api_secret: str
    service_sid: str
    token_key: str


class ActionResult(TypedDict):
    sessions: List[int]
    applied: List[int]


class ClockView(TypedDict):
    now: int
    iso: str
    mode: str


class JournalEntry(TypedDict, total=False):
    seq: int
    at: int
    wall_us: int
    kind: str
    account: str
    session: int
    identity: str
    summary: str
    detail: Dict[str, Any]


class JournalPage(TypedDict):
    entries: List[JournalEntry]
    dropped: int
    capacity: int
    last_seq: int


class ControlError(Exception):
    """A control-plane (or token endpoint) error answer: ``status``, ``code``, ``message``."""

    def __init__(self, request: str, status: int, body: Any) -> None:
        body = body if isinstance(body, dict) else {"message": str(body)}
        self.status = status
        self.code = body.get("code")
        self.twilio_code = body.get("twilio_code", self.code if isinstance(self.code, int) else None)
        self.body = body
        super().__init__(f"{request}: {status} {self.code} {body.get('message', '')}".strip())


# ---------------------------------------------------------------------------------------------
# The binary
# ---------------------------------------------------------------------------------------------


def find_rehearsal_bin() -> str:
    """The ``rehearsal`` binary: ``REHEARSAL_BIN`` if set, else the one this wheel installed into
    the environment's scripts directory (found as ruff finds its own)."""
    from_env = os.environ.get("REHEARSAL_BIN")
    if from_env:
        return from_env
    exe = "rehearsal" + (sysconfig.get_config_var("EXE") or "")
    candidates = [sysconfig.get_path("scripts")]
    user_scheme = {"nt": "nt_user", "posix": "posix_user"}.get(os.name)
    if sys.platform == "darwin":
        user_scheme = "osx_framework_user"
    if user_scheme and user_scheme in sysconfig.get_scheme_names():
        candidates.append(sysconfig.get_path("scripts", scheme=user_scheme))
    # `pip install --target DIR`: the scripts directory is DIR/bin, beside the package.
    candidates.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bin"))
    for directory in candidates:
        path = os.path.join(directory, exe)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"no {exe} in {candidates}: reinstall rehearsal-mock, or set REHEARSAL_BIN to a rehearsal binary"
    )


# ---------------------------------------------------------------------------------------------
# Accounts and their control calls
# ---------------------------------------------------------------------------------------------


def _target(target: Target) -> Optional[Dict[str, Any]]:
    if target is None:
        return None
    if isinstance(target, str):
        return {"identity": target}
    return {k: v for k, v in dict(target).items() if k in ("identity", "session") and v is not None}


def _query(params: Mapping[str, Any]) -> str:
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        pairs.append((key, str(value)))
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def _drop_none(**fields: Any) -> Dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class Clock:
    """An account's clock: it follows the server clock until frozen or moved on its own."""

    def __init__(self, account: "Account") -> None:
        self._account = account
        self._path = f"{account.path}/clock"

    def now(self) -> ClockView:
        return self._account.server.request("GET", self._path)

    def freeze(self, at_ms: Optional[int] = None) -> ClockView:
        return self._account.server.request("POST", self._path, _drop_none(action="freeze", at=at_ms))

    def advance(self, ms: int) -> ClockView:
        """Moves the clock forward; token timers fire as time passes them."""
        return self._account.server.request("POST", self._path, {"action": "advance", "by_ms": ms})

    def resume(self) -> ClockView:
        return self._account.server.request("POST", self._path, {"action": "resume"})


class ArmedFault:
    def __init__(self, server: "Rehearsal", fault_id: int) -> None:
        self._server = server
        self.id = fault_id

    def remove(self) -> None:
        self._server.request("DELETE", f"/faults/{self.id}")


class Faults:
    """HTTP faults for an account's requests (REST, media, and requests tunnelled over twilsock)."""

    def __init__(self, account: "Account") -> None:
        self._account = account
        self._path = f"{account.path}/faults"

    def http(
        self,
        path: str,
        *,
        method: Optional[str] = None,
        count: int = 1,
        fail: Optional[int] = None,
        code: Optional[int] = None,
        message: Optional[str] = None,
        delay_ms: Optional[int] = None,
    ) -> ArmedFault:
        """Fails (``fail=STATUS``, with Twilio ``code``) or delays (``delay_ms``) the next
        ``count`` requests whose path matches the glob ``path``."""
        if (fail is None) == (delay_ms is None):
            raise ValueError("give exactly one of fail=STATUS or delay_ms=MS")
        fault = (
            _drop_none(kind="fail", status=fail, code=code, message=message)
            if fail is not None
            else {"kind": "delay", "by": delay_ms}
        )
        answer = self._account.server.request(
            "POST", f"{self._path}/http", _drop_none(method=method, path=path, count=count, fault=fault)
        )
        return ArmedFault(self._account.server, answer["id"])

    def list(self) -> Dict[str, Any]:
        return self._account.server.request("GET", self._path)

    def clear(self) -> None:
        self._account.server.request("DELETE", self._path)


class Account:
    """One account of a running server (the seed's, or a tenant) and the control calls that act
    on it, under ``/_rehearsal/v1/tenants/{AC}``."""

    def __init__(self, server: "Rehearsal", credentials: Mapping[str, Any]) -> None:
        self.server = server
        self.credentials: Credentials = dict(credentials)  # type: ignore[assignment]
        self.path = f"/tenants/{urllib.parse.quote(str(credentials.get('account_sid')))}"
        self.clock = Clock(self)
        self.faults = Faults(self)
        self._client: Optional["Client"] = None

    @property
    def account_sid(self) -> str:
        return self.credentials["account_sid"]

    @property
    def env(self) -> Dict[str, str]:
        """The variables ``rehearsal env`` prints, for this account."""
        c = self.credentials
        url = self.server.url
        if self.account_sid == self.server.default_account_sid:
            token_url = f"{url}/token"
        else:
            token_url = f"{url}/token" + _query({"account": c["account_sid"], "key": c["token_key"]})
        return {
            "TWILIO_ACCOUNT_SID": c["account_sid"],
            "TWILIO_AUTH_TOKEN": c["auth_token"],
            "TWILIO_API_KEY": c["api_key"],
            "TWILIO_API_SECRET": c["api_secret"],
            "TWILIO_CONVERSATIONS_SERVICE_SID": c["service_sid"],
            "REHEARSAL_URL": url,
            "REHEARSAL_TWILSOCK_URL": self.server.twilsock_url,
            "REHEARSAL_TOKEN_URL": token_url,
            "REHEARSAL_CONTROL_URL": self.server.control_url,
            "REHEARSAL_CONTROL_TOKEN": self.server.control_token,
        }

    def client(self) -> "Client":
        """A ``twilio`` helper-library client of this account whose ``conversations.base_url`` is
        the server (needs ``pip install rehearsal-mock[twilio]``). The same one on every call."""
        if self._client is None:
            from twilio.rest import Client

            client = Client(self.credentials["account_sid"], self.credentials["auth_token"])
            # The library rewrites host names when an edge or region is set (from TWILIO_EDGE /
            # TWILIO_REGION too): 127.0.0.1 would become 127.us1.0.1.
            client.edge = None
            client.region = None
            client.conversations.base_url = self.server.url
            self._client = client
        return self._client

    def token(self, identity: str, ttl: Optional[int] = None) -> str:
        """An access token for ``identity`` on this account (``ttl`` seconds, 0-86400)."""
        c = self.credentials
        query = _query({"identity": identity, "ttl": ttl, "account": c["account_sid"], "key": c["token_key"]})
        return self.server._fetch("GET", f"{self.server.url}/token{query}", None, auth=False)["token"]

    def connections(self, identity: Optional[str] = None) -> List[Dict[str, Any]]:
        return self.server.request("GET", f"{self.path}/connections" + _query({"identity": identity}))["connections"]

    def action(self, target: Target, action: str, **fields: Any) -> ActionResult:
        """One connection action to the target sessions, answered once they applied it."""
        body: Dict[str, Any] = {"action": action, **_drop_none(**fields)}
        t = _target(target)
        if t is not None:
            body["target"] = t
        return self.server.request("POST", f"{self.path}/connections/actions", body)

    def drop(self, target: Target = None) -> ActionResult:
        """Drops the socket without a close handshake, like a network failure."""
        return self.action(target, "drop")

    def close(
        self,
        target: Target,
        code: int,
        *,
        backoff_ms: Optional[int] = None,
        description: Optional[str] = None,
        error_code: Optional[int] = None,
    ) -> ActionResult:
        """A twilsock ``close`` with ``code`` (308 reconnects; 401, 406, 410, 417 are terminal)."""
        return self.action(
            target, "close", code=code, backoff_ms=backoff_ms, description=description, error_code=error_code
        )

    def expire_token(self, target: Target = None) -> ActionResult:
        """As if the token expired now: ``close`` 410 with error 20104."""
        return self.action(target, "expire_token")

    def warn_token_expiry(self, target: Target = None) -> ActionResult:
        """Sends ``token_about_to_expire`` now."""
        return self.action(target, "warn_token_expiry")

    def latency(self, target: Target, ms: int) -> ActionResult:
        return self.action(target, "latency", ms=ms)

    def hold_notifications(self, target: Target = None) -> ActionResult:
        return self.action(target, "hold_notifications")

    def release_notifications(self, target: Target = None) -> ActionResult:
        return self.action(target, "release_notifications")

    def stall(self, target: Target = None) -> ActionResult:
        return self.action(target, "stall")

    def unstall(self, target: Target = None) -> ActionResult:
        return self.action(target, "unstall")

    def refuse_connections(self, ms: int) -> Dict[str, Any]:
        """Refuses new connections (503) for ``ms`` of this account's clock."""
        return self.server.request("POST", f"{self.path}/connections/refuse", {"for_ms": ms})

    def deny_inits(
        self,
        status: int,
        *,
        identity: Optional[str] = None,
        count: int = 1,
        error_code: Optional[int] = None,
        description: Optional[str] = None,
        backoff_ms: Optional[int] = None,
    ) -> Dict[str, Any]:
        body = _drop_none(
            status=status,
            identity=identity,
            count=count,
            error_code=error_code,
            description=description,
            backoff_ms=backoff_ms,
        )
        return self.server.request("POST", f"{self.path}/inits/deny", body)

    def act(self, action: str, *, actor: Optional[str] = None, **fields: Any) -> Dict[str, Any]:
        """Any actor action (``post``, ``typing``, ``join``, …) as ``actor`` (an identity) or, with
        ``actor=None``, as the REST API."""
        body = {"as": actor, "action": action, **_drop_none(**fields)}
        return self.server.request("POST", f"{self.path}/actors", body)

    def post(
        self,
        conversation: str,
        body: Optional[str] = None,
        *,
        actor: Optional[str] = None,
        attributes: Union[None, str, Mapping[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Posts a message in ``conversation`` (SID or unique name) as ``actor``."""
        if attributes is not None and not isinstance(attributes, str):
            attributes = json.dumps(attributes)
        return self.act("post", actor=actor, conversation=conversation, body=body, attributes=attributes)

    def journal(
        self,
        *,
        kind: Union[None, str, Sequence[str]] = None,
        identity: Optional[str] = None,
        session: Optional[int] = None,
        after: Optional[int] = None,
        contains: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> JournalPage:
        """This account's journal entries matching the filters (``limit``: the newest N)."""
        query = _query(
            {"kind": kind, "identity": identity, "session": session, "after": after, "contains": contains, "limit": limit}
        )
        return self.server.request("GET", f"{self.path}/journal{query}")

    def wait_for(
        self,
        *,
        kind: Union[None, str, Sequence[str]] = None,
        identity: Optional[str] = None,
        session: Optional[int] = None,
        after: Optional[int] = None,
        contains: Optional[str] = None,
        timeout: float = 10.0,
    ) -> JournalEntry:
        """The next journal entry matching the filters (with ``after``, the ring is searched
        first), waiting at most ``timeout`` seconds."""
        query = _query(
            {"kind": kind, "identity": identity, "session": session, "after": after, "contains": contains, "limit": 1}
        )
        url = f"{self.server.control_url}{self.path}/journal/stream{query}"
        request = urllib.request.Request(url, headers=self.server._headers())
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                line = response.readline()
        except urllib.error.HTTPError as e:
            raise ControlError(f"GET {self.path}/journal/stream", e.code, _json(e.read())) from None
        except TimeoutError:
            raise TimeoutError(f"no journal entry matching {query} within {timeout} s") from None
        if not line.strip():
            raise ControlError(f"GET {self.path}/journal/stream", 200, {"message": "the stream ended without an entry"})
        return json.loads(line)


class Tenant(Account):
    """An isolated account with its own credentials; ``delete()`` removes it."""

    _deleted = False

    def delete(self) -> None:
        """Deletes the tenant: its credentials stop working. A second call does nothing."""
        if self._deleted:
            return
        self._deleted = True
        if self.server.running:
            self.server.request("DELETE", self.path)

    def reset(self) -> Credentials:
        """Back to its seed, with the same credentials."""
        return self.server.request("POST", f"{self.path}/reset")

    def __enter__(self) -> "Tenant":
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return {"message": raw.decode("utf-8", "replace")}


class Rehearsal(Account):
    """A running ``rehearsal serve``; its ``Account`` calls act on the seed's first account."""

    def __init__(
        self,
        process: "subprocess.Popen[bytes]",
        logs: "collections.deque[str]",
        url: str,
        control_token: str,
        request_timeout: float,
    ) -> None:
        self._process = process
        self._logs = logs
        self.url = url
        self.twilsock_url = url.replace("http", "ws", 1) + "/v3/wsconnect"
        self.control_url = url + CONTROL_PREFIX
        self.control_token = control_token
        self.request_timeout = request_timeout
        self.default_account_sid: Optional[str] = None
        super().__init__(self, {})

    def _adopt(self, credentials: Mapping[str, Any]) -> None:
        Account.__init__(self, self, credentials)
        self.default_account_sid = self.credentials.get("account_sid")

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def logs(self) -> str:
        """The server's last output lines."""
        return "\n".join(self._logs)

    def _headers(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self.control_token}", "Content-Type": "application/json"}

    def _fetch(self, method: str, url: str, body: Any, *, auth: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=self._headers() if auth else {})
        try:
            with urllib.request.urlopen(request, timeout=self.request_timeout) as response:
                return _json(response.read())
        except urllib.error.HTTPError as e:
            raise ControlError(f"{method} {url}", e.code, _json(e.read())) from None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One control-plane request (``path`` under ``/_rehearsal/v1``): its JSON answer, or a
        ``ControlError``. POSTs without a body send ``{}``."""
        if body is None and method in ("POST", "PUT"):
            body = {}
        return self._fetch(method, self.control_url + path, body)

    def tenant(self, seed: Optional[Mapping[str, Any]] = None, rng_seed: Optional[int] = None) -> Tenant:
        """A new isolated tenant: the default seed's content with fresh credentials (or ``seed``,
        one account in the seed format; ``rng_seed`` makes its SIDs and secrets reproducible)."""
        return Tenant(self, self.request("POST", "/tenants", _drop_none(seed=seed, rng_seed=rng_seed)))

    def stop(self) -> Optional[int]:
        """SIGTERM, then SIGKILL after 10 s; the exit status. Idempotent."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_TIMEOUT)
        return self._process.returncode

    def __enter__(self) -> "Rehearsal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_rehearsal(
    binary: Optional[str] = None,
    args: Sequence[str] = (),
    env: Optional[Mapping[str, str]] = None,
    startup_timeout: float = STARTUP_TIMEOUT,
    request_timeout: float = REQUEST_TIMEOUT,
) -> Rehearsal:
    """Starts ``rehearsal serve`` on 127.0.0.1, port 0 (a free port), with a fresh random control
    token, and returns once it listens. Stop it with ``stop()`` or a ``with`` block."""
    binary = binary or find_rehearsal_bin()
    control_token = secrets.token_hex(16)
    process = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--control-token", control_token, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    logs: "collections.deque[str]" = collections.deque(maxlen=LOG_LINES)
    listening = threading.Event()
    found: List[str] = []

    def drain() -> None:
        # Keeps reading for the server's whole life, so it never blocks on a full pipe.
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            logs.append(line)
            if not found and "listening on " in line:
                found.append(line.split("listening on ", 1)[1].split()[0])
                listening.set()
        listening.set()  # the process is gone: stop waiting

    threading.Thread(target=drain, name="rehearsal-output", daemon=True).start()
    if not listening.wait(startup_timeout) or not found:
        process.kill()
        process.wait(STOP_TIMEOUT)
        raise RuntimeError(
            f"rehearsal serve did not say where it listens within {startup_timeout} s "
            f"(exit status {process.returncode}); output:\n" + "\n".join(logs)
        )
    parsed = urllib.parse.urlsplit(found[0])
    server = Rehearsal(process, logs, f"{parsed.scheme}://{parsed.netloc}", control_token, request_timeout)
    try:
        tenants = server.request("GET", "/tenants")["tenants"]
    except Exception:
        server.stop()
        raise
    if tenants:
        server._adopt(tenants[0])
    return server

