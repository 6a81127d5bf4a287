"""Taking over as leader, in Redis: read the cursors, start the ticker from them, record where
schedules without a cursor start, and say who leads. All of it before the replica calls itself
leader (the loop gives the lease back if any step fails)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis import Redis

from scheduler.core.runs import Lease
from scheduler.core.ticker import Ticker
from scheduler.ops import failpoints
from scheduler.store.keys import Keys
from scheduler.store.lease import LeaseKeeper
from scheduler.store.scripts import Scripts

log = logging.getLogger("scheduler.daemon")


class FencedError(Exception):
    """A fenced write while taking over: the lease is someone else's already."""


@dataclass(frozen=True)
class TakeOver:
    now: float  # Redis time the new term's plan starts from
    with_cursor: int  # schedules that now have a cursor in Redis


def take_over(
    client: Redis,
    keys: Keys,
    scripts: Scripts,
    ticker: Ticker,
    lease: Lease,
    now: float,
    replica_id: str,
    config_digest: str,
) -> TakeOver:
    raw: dict[str, str] = client.hgetall(keys.cursor)  # type: ignore[assignment]
    cursors = {name: int(ts) for name, ts in raw.items()}
    failpoints.hit("promote")
    ticker.start(cursors, now)
    # A schedule without a cursor starts from now; say so in Redis, or its first fire is lost
    # if this leader goes before it (the next would start from ITS now).
    unseen = ticker.unseen(cursors)
    if unseen and not scripts.advance_cursors(lease.value, unseen):
        raise FencedError("fenced while recording the cursors of new schedules")
    if not scripts.leader_info(lease.value, lease.token, replica_id, now, config_digest):
        raise FencedError("fenced while recording the leader info")
    return TakeOver(now, len(cursors) + len(unseen))


def abandon_lease(keeper: LeaseKeeper, error: BaseException) -> None:
    """Taking over failed part-way: give the lease back (if Redis lets us) so another replica
    can lead now rather than after a TTL with no leader."""
    lease = keeper.lease
    log.warning(
        "could not take over (%s: %s); giving the lease back",
        type(error).__name__,
        error,
        extra={"token": lease.token if lease else None, "event": "takeover_failed"},
    )
    keeper.give_back()
