"""A cheap liveness check for pooled PostgreSQL connections (instead of ``pool_pre_ping``).

``pool_pre_ping`` sends ``SELECT 1`` on every checkout: a round trip and about 0.1 ms of CPU,
paid twice by every authenticated request (the caller's check, then the route's work). When
PostgreSQL ends a connection (``pg_terminate_backend``, a restart, an idle timeout) it sends a
FATAL message and closes the socket, so a dead idle connection is one whose socket has
something to read, while a healthy idle one never has. Checking that is one ``select()`` with
a zero timeout. A dead connection is refused at checkout (``DisconnectionError``) and the pool
opens a fresh one.

What this cannot see (a peer that vanished without closing, e.g. a cut network) fails the
statement instead; SQLAlchemy then recognises the disconnect and invalidates every pooled
connection opened before it, so the next request gets fresh ones (tests/test_faults.py).
"""

from __future__ import annotations

import select
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine


def _refuse_dead_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
        raise exc.DisconnectionError("the connection is closed")
    try:
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    except (OSError, ValueError) as error:  # no socket any more
        raise exc.DisconnectionError("the connection has no socket") from error
    if readable:
        raise exc.DisconnectionError("the server closed this idle connection")


def check_connections_on_checkout(engine: Engine) -> None:
    """Install the check on ``engine``'s pool (PostgreSQL through psycopg only)."""
    event.listen(engine, "checkout", _refuse_dead_connection)
