"""The most recent runs in the queue streams (of one schedule, or of all), and how far each got.

Read newest first (XREVRANGE) in pages, within a budget of entries, so a queue of millions
costs a bounded read; a run's delivery state is read from its stream's consumer groups: waiting
(not delivered to the group yet), pending (delivered, not acknowledged), acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import redis
from redis import Redis

from scheduler.store.keys import Keys

PAGE = 500
# Entries read per queue at most: about 5 ms of Redis time; older runs of a rare schedule in a
# busy queue are left out (the page says how far it looked).
SCAN_BUDGET = 5000


@dataclass(frozen=True)
class RunView:
    run_id: str
    schedule: str
    job: str
    queue: str
    entry_id: str
    fire_time: str
    fire_ts: int | None
    enqueued_at: str
    lag_s: float | None  # enqueued at (the entry id's milliseconds) minus the fire time
    trigger: str
    token: str
    replica: str
    delivery: dict[str, str]  # consumer group -> waiting | pending | acknowledged


@dataclass(frozen=True)
class RecentRuns:
    runs: list[RunView]  # newest first
    scanned: int  # entries read
    complete: bool  # False: the budget ended the read before the streams did


def recent_runs(
    client: Redis,
    keys: Keys,
    queues: Iterable[str],
    *,
    schedule: str | None = None,
    limit: int = 20,
    budget: int = SCAN_BUDGET,
) -> RecentRuns:
    """Up to `limit` runs, newest first by entry id, from these queues' streams."""
    found: list[RunView] = []
    scanned = 0
    complete = True
    for queue in sorted(set(queues)):
        stream = keys.queue(queue)
        runs, read, whole = _scan(client, stream, queue, schedule, limit, budget)
        found += _with_delivery(client, stream, runs)
        scanned += read
        complete = complete and whole
    found.sort(key=lambda run: _id_key(run.entry_id), reverse=True)
    return RecentRuns(found[:limit], scanned, complete)


def _scan(
    client: Redis, stream: str, queue: str, schedule: str | None, limit: int, budget: int
) -> tuple[list[RunView], int, bool]:
    runs: list[RunView] = []
    upper = "+"
    read = 0
    while read < budget:
        page: list[Any] = (
            client.xrevrange(stream, max=upper, min="-", count=min(PAGE, budget - read)) or []
        )
        read += len(page)
        for entry_id, fields in page:
            if schedule is None or fields.get("schedule") == schedule:
                runs.append(_run(str(entry_id), fields, queue))
                if len(runs) >= limit:
                    return runs, read, True
        if len(page) < PAGE:
            return runs, read, True
        upper = "(" + str(page[-1][0])  # exclusive: the next page starts below the last entry
    return runs, read, False


def _run(entry_id: str, fields: Mapping[str, Any], queue: str) -> RunView:
    fire_ts = _int_or_none(fields.get("fire_ts"))
    added_ms = _id_key(entry_id)[0]
    return RunView(
        run_id=str(fields.get("run_id", "")),
        schedule=str(fields.get("schedule", "")),
        job=str(fields.get("job", "")),
        queue=str(fields.get("queue", queue)),
        entry_id=entry_id,
        fire_time=str(fields.get("fire_time", "")),
        fire_ts=fire_ts,
        enqueued_at=str(fields.get("enqueued_at", "")),
        lag_s=None if fire_ts is None else round(added_ms / 1000 - fire_ts, 3),
        trigger=str(fields.get("trigger", "")),
        token=str(fields.get("token", "")),
        replica=str(fields.get("replica", "")),
        delivery={},
    )


def _with_delivery(client: Redis, stream: str, runs: list[RunView]) -> list[RunView]:
    if not runs:
        return runs
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:  # no such stream any more
        return runs
    if not groups:
        return runs
    low = min((run.entry_id for run in runs), key=_id_key)
    high = max((run.entry_id for run in runs), key=_id_key)
    pipe = client.pipeline(transaction=False)
    for group in groups:
        pipe.xpending_range(stream, str(group["name"]), min=low, max=high, count=10 * PAGE)
    pending_lists = pipe.execute(raise_on_error=False)
    states: list[dict[str, str]] = [{} for _ in runs]
    for group, pending in zip(groups, pending_lists, strict=True):
        name = str(group["name"])
        delivered = _id_key(str(group.get("last-delivered-id") or "0-0"))
        in_pel = {str(p["message_id"]) for p in pending} if isinstance(pending, list) else set()
        for state, run in zip(states, runs, strict=True):
            if _id_key(run.entry_id) > delivered:
                state[name] = "waiting"
            elif run.entry_id in in_pel:
                state[name] = "pending"
            else:
                state[name] = "acknowledged"
    return [replace(run, delivery=state) for run, state in zip(runs, states, strict=True)]


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None
