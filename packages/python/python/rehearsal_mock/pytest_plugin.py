"""The pytest plugin (registered through the ``pytest11`` entry point, so installing the wheel
is enough):

- ``rehearsal_server``: one ``rehearsal serve`` for the whole session, stopped at its end;
- ``rehearsal``: a fresh isolated tenant of it for each test, deleted afterwards, with the typed
  control calls (``drop``, ``expire_token``, ``clock.advance``, ``post``, ``faults.http``,
  ``journal``, …) and ``rehearsal.client()``, a ``twilio`` client whose Conversations base URL is
  the server.

Options: ``--rehearsal-bin PATH`` (or ``REHEARSAL_BIN``) and the ini setting ``rehearsal_args``
(more ``rehearsal serve`` arguments, one per line).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from . import Rehearsal, Tenant, start_rehearsal


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rehearsal", "Rehearsal (mock Twilio Conversations backend)")
    group.addoption("--rehearsal-bin", default=None, help="the rehearsal binary (default: the one the wheel installed)")
    parser.addini("rehearsal_args", type="linelist", default=[], help="more `rehearsal serve` arguments, one per line")


@pytest.fixture(scope="session")
def rehearsal_server(pytestconfig: pytest.Config) -> Iterator[Rehearsal]:
    """One ``rehearsal serve`` on a free loopback port for the whole test session."""
    server = start_rehearsal(
        binary=pytestconfig.getoption("rehearsal_bin"),
        args=pytestconfig.getini("rehearsal_args"),
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rehearsal(rehearsal_server: Rehearsal) -> Iterator[Tenant]:
    """A fresh tenant (the default seed's content, its own credentials) for one test."""
    tenant = rehearsal_server.tenant()
    try:
        yield tenant
    finally:
        tenant.delete()
