"""The embedded Redis's clean stop: the last replica shuts it down, nobody else does.

The server outlives the replica that started it (embedded.py); whoever stops last stops it, and
only when no other replica and no other client (a worker, a redis-cli) is connected.
"""

from __future__ import annotations

import logging
import shlex

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scheduler.core.wording import plural

log = logging.getLogger("scheduler.store.embedded")

_CLIENTS_SHOWN = 3  # other clients named in the "left running" line; the count covers the rest


def shutdown_if_last(
    client: redis.Redis, own_name: str, *, name_prefix: str = "cronlease-"
) -> bool:
    """SHUTDOWN SAVE the embedded server if nothing but this replica is connected to it.

    Replicas name their connections `cronlease-<replica-id>`; connections named `own_name` are
    this replica's own pool and do not count. Any other connection keeps the server running:
    another replica, and just as much a worker reading a stream or a redis-cli, whose connection
    a shutdown would cut under it. Returns True if the server was shut down. A replica that is
    between reconnects is invisible here, so replicas must re-run ensure_embedded_redis when the
    socket disappears under them.
    """
    replicas, clients = _others_connected(client.client_list(), own_name, name_prefix)
    if replicas or clients:
        socket_path = client.connection_pool.connection_kwargs.get("path")
        reason = _left_running(replicas, clients, str(socket_path or ""))
        log.info("embedded redis-server left running: %s", reason)
        return False
    pool = client.connection_pool
    # A client of its own without retries: the hang-up is how SHUTDOWN succeeds, and the
    # caller's retry policy would answer it by reconnecting to a server that is going away.
    options = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
    one_shot = redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **options)
    )
    try:
        one_shot.shutdown(save=True)  # returns once the server has hung up
    except redis.ResponseError as error:
        raise RuntimeError(f"redis-server refused SHUTDOWN SAVE: {error}") from error
    finally:
        one_shot.close()
    log.info("embedded redis-server shut down: no other replica or client was connected")
    return True


def _others_connected(
    entries: list[dict[str, str]], own_name: str, name_prefix: str = "cronlease-"
) -> tuple[set[str], list[str]]:
    """From CLIENT LIST: (names of the other cronlease replicas, one per replica rather than per
    connection; every other connection, as `<name or unnamed>, last command <cmd>`)."""
    replicas: set[str] = set()
    clients: list[str] = []
    for entry in entries:
        name = entry.get("name", "")
        if name.startswith(name_prefix) and name != own_name:
            replicas.add(name)
        elif name != own_name:
            clients.append(f"{name or 'unnamed'}, last command {entry.get('cmd', '?')}")
    return replicas, clients


def _left_running(replicas: set[str], clients: list[str], socket_path: str) -> str:
    """E.g. `2 other cronlease replicas, 1 other client (unnamed, last command xread)`."""
    parts = [plural(len(replicas), "other cronlease replica")] if replicas else []
    if clients:
        shown = "; ".join(clients[:_CLIENTS_SHOWN])
        if len(clients) > _CLIENTS_SHOWN:
            shown += f"; {len(clients) - _CLIENTS_SHOWN} more"
        parts.append(f"{plural(len(clients), 'other client')} ({shown})")
    text = ", ".join(parts)
    if not replicas and socket_path:
        # No replica is left to stop it later: say how, or it runs until someone notices.
        text += (
            "; the next replica started from this folder reuses it, and `redis-cli -s "
            f"{shlex.quote(socket_path)} shutdown` stops it once those clients are done"
        )
    return text
