"""The operator's writes, shared by the CLI and the web page: pause, resume, trigger now.

`pause` and `resume` are one set operation each: the leader reads the paused set on every
heartbeat and logs its changes. `trigger` writes its run through the MANUAL script, which
takes the current lease's token (or the epoch) and announces the run on the events channel, so
the leader's log says what happened and who did it. That is for a queue that is a cronlease
stream; a queue delivered into another job system gets its manual run from
targets/operator.py instead, which the callers (cli/, web/) choose by the queue's target
(status and targets are one layer and do not import each other).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from scheduler.core.runs import MANUAL_MARK, manual_run_id
from scheduler.core.schedule import Schedule
from scheduler.core.timefmt import rfc3339_utc, rfc3339_utc_ms
from scheduler.store.keys import Keys
from scheduler.store.scripts import Scripts

__all__ = ["MANUAL_MARK", "Triggered", "manual_run_id", "set_paused", "trigger"]


@dataclass(frozen=True)
class Triggered:
    run_id: str
    entry_id: str
    stream: str
    fire_time: str


def set_paused(client: Redis, keys: Keys, name: str, paused: bool) -> bool:
    """Pause or resume `name`; False when it already was in that state."""
    if paused:
        return bool(int(client.sadd(keys.paused, name)))
    return bool(int(client.srem(keys.paused, name)))


def trigger(
    client: Redis, keys: Keys, schedule: Schedule, by: str, stream: str | None = None
) -> Triggered:
    """Enqueue one manual run of `schedule` now (Redis's TIME), outside the cron cursor; `by`
    is who asked (a replica id, or the web page's `web@<replica>`). `stream`: where, when not
    the queue's stream (a relayed queue's outbox: the relay delivers it from there)."""
    seconds, micros = client.time()
    now = int(seconds) + int(micros) / 1e6
    fire_ts = int(seconds)
    fire_time = rfc3339_utc(fire_ts)
    run_id = manual_run_id(schedule.name, fire_time)
    stream = stream or keys.queue(schedule.queue)
    entry_id = Scripts(client, keys).manual(
        stream,
        [
            run_id,
            schedule.name,
            schedule.job,
            schedule.args_json,
            schedule.queue,
            fire_time,
            str(fire_ts),
            rfc3339_utc_ms(now),
            by,
        ],
    )
    return Triggered(run_id, entry_id, stream, fire_time)
