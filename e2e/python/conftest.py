"""Fixtures for the twilio-python end-to-end suite: a fresh Rehearsal server per module.

The server binary is found through $REHEARSAL_BIN (default <repo>/target/debug/rehearsal).
Everything waits on process output/exit with timeouts; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from twilio.rest import Client

REPO_ROOT = Path(__file__).resolve().parents[2]
REHEARSAL_BIN = os.environ.get("REHEARSAL_BIN") or str(REPO_ROOT / "target" / "debug" / "rehearsal")
LISTENING_RE = re.compile(r"listening on (http://\S+)")

STARTUP_TIMEOUT_S = 30.0
ENV_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0

# twilio-python rewrites request hostnames when an edge/region is configured
# (127.0.0.1:PORT would become 127.us1.0.1:PORT), and it reads them from the
# environment: make sure an outer TWILIO_REGION / TWILIO_EDGE cannot leak in.
os.environ.pop("TWILIO_REGION", None)
os.environ.pop("TWILIO_EDGE", None)

DEFAULT_SEED = {
    "TWILIO_ACCOUNT_SID": "AC72656865617273616c00000000000001",
    "TWILIO_AUTH_TOKEN": "rehearsal-auth-token",
    "TWILIO_API_KEY": "SK72656865617273616c00000000000001",
    "TWILIO_API_SECRET": "rehearsal-api-secret",
    "TWILIO_CONVERSATIONS_SERVICE_SID": "IS72656865617273616c00000000000001",
}


@dataclass
class RehearsalServer:
    process: subprocess.Popen
    base_url: str
    host: str
    port: int
    creds: dict
    creds_source: str
    creds_error: str | None = None
    log: collections.deque = field(default_factory=lambda: collections.deque(maxlen=400))

    def logs(self) -> str:
        return "\n".join(self.log)

    def client(self, username=None, password=None, account_sid=None) -> Client:
        """An official twilio-python client whose Conversations domain talks to Rehearsal.

        twilio-python builds every URL as `domain.base_url + "/v1/..."`, and
        `client.conversations` is one lazily created Domain object, so overwriting its
        `base_url` redirects all Conversations calls. Paging follows the absolute
        `meta.next_page_url` verbatim, which Rehearsal points at itself.
        """
        client = Client(
            username or self.creds["TWILIO_ACCOUNT_SID"],
            password or self.creds["TWILIO_AUTH_TOKEN"],
            account_sid=account_sid,
        )
        client.conversations.base_url = self.base_url
        return client


def _pump(stream, name, log, lines: queue.Queue | None):
    """Read a child's output line by line until EOF (keeps the pipe drained)."""
    for raw in iter(stream.readline, ""):
        line = raw.rstrip("\n")
        log.append(f"[{name}] {line}")
        if lines is not None:
            lines.put(line)
    if lines is not None:
        lines.put(None)  # EOF marker
    stream.close()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()  # SIGTERM
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)
        raise AssertionError(f"rehearsal serve did not exit within {STOP_TIMEOUT_S}s of SIGTERM")


def start_server() -> RehearsalServer:
    log: collections.deque = collections.deque(maxlen=400)
    try:
        process = subprocess.Popen(
            [REHEARSAL_BIN, "serve", "--listen", "127.0.0.1:0"],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
    except OSError as err:
        raise RuntimeError(f"cannot start {REHEARSAL_BIN}: {err}") from err

    stdout_lines: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, "stdout", log, stdout_lines), daemon=True).start()
    threading.Thread(target=_pump, args=(process.stderr, "stderr", log, None), daemon=True).start()

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    raw_url = None
    try:
        while raw_url is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(
                    f"rehearsal serve printed no 'listening on http://...' line within "
                    f"{STARTUP_TIMEOUT_S}s; output so far:\n" + "\n".join(log)
                )
            try:
                line = stdout_lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = process.wait(timeout=STOP_TIMEOUT_S)
                raise RuntimeError(
                    f"rehearsal serve exited (code {code}) before printing its listening line; "
                    "output:\n" + "\n".join(log)
                )
            match = LISTENING_RE.search(line)
            if match:
                raw_url = match.group(1)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
        raise

    parts = urlsplit(raw_url.rstrip(".,;)]"))
    base_url = f"{parts.scheme}://{parts.netloc}"
    host, port = parts.hostname, parts.port

    creds_source, creds_error = "env", None
    try:
        out = subprocess.run(
            [REHEARSAL_BIN, "env", "--json", "--listen", f"{host}:{port}"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=ENV_TIMEOUT_S,
            check=True,
        )
        creds = json.loads(out.stdout)
    except (subprocess.SubprocessError, OSError, ValueError) as err:
        creds_source, creds_error = "fallback", repr(err)
        creds = dict(DEFAULT_SEED, REHEARSAL_URL=base_url)

    return RehearsalServer(
        process=process,
        base_url=base_url,
        host=host,
        port=port,
        creds=creds,
        creds_source=creds_source,
        creds_error=creds_error,
        log=log,
    )


@pytest.fixture(scope="module")
def server():
    srv = start_server()
    try:
        yield srv
    finally:
        _stop(srv.process)


@pytest.fixture(scope="module")
def client(server):
    return server.client()
