"""An operator's runs into a queue's target: `trigger`, `backfill` and the page's "trigger now".

For a schedule whose queue is a cronlease stream, those write with the MANUAL and BACKFILL
scripts (status/actions.py, cli/backfill.py). For a queue delivered into another job system
(Celery, RQ, Sidekiq, arq, Dramatiq, BullMQ), a stream entry would be read by nobody, so the
run is built here as the leader builds its own (router.py): a `Run` with the run table's fields,
encoded by the target's module, written by WRITE_RUNS (store/runwrites.py), which checks every
key's type before its first write and skips a run whose guard key (its job, in RQ, arq or
BullMQ) exists already. Outside the cron cursor, as for streams: neither read nor moved.

The runs carry what MANUAL and BACKFILL give theirs: run id `<schedule>@<fire time>` (a manual
one ends in `#manual-<random>`), the current lease's token or the epoch without a leader,
`replica` who asked, `enqueued_at` Redis's TIME. The payload is built in Python, so the token is
read first; WRITE_RUNS writes only if it is still current, and a lease acquired in between
makes the write start again with the new token (nothing was written), so tokens in a target's
queue never go down behind a new leader's runs either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from scheduler.core.queues import QueueSpec
from scheduler.core.runs import Trigger, manual_run_id
from scheduler.core.schedule import Schedule
from scheduler.core.timefmt import rfc3339_utc, rfc3339_utc_ms
from scheduler.store.connection import client_db, is_cluster
from scheduler.store.keys import Keys
from scheduler.store.runwrites import FIRST_TARGET_KEY, RunWriter, WrongKeyType
from scheduler.store.scripts import Scripts
from scheduler.targets.encoding import Encoder, Run, add_writes
from scheduler.targets.registry import ENCODERS, encoder_for
from scheduler.targets.router import MAX_ARGS_PER_CALL
from scheduler.targets.stream import run_id as scheduled_run_id

# A lease changes hands at most every few seconds; this many in the milliseconds between our
# read and our write means something else is wrong.
TOKEN_ATTEMPTS = 5
BACKFILL = "backfill"


class OperatorRefused(Exception):
    """The runs cannot go into their queue's target here; the sentence says why and that
    nothing (or what) was written. The commands print it and exit 1; the page answers 409."""


@dataclass(frozen=True)
class TargetTriggered:
    run_id: str
    job_id: str  # the target's own job id: the run id, or its encoding (runid.py)
    target: str  # where it went, as `validate` and `status` say it: "rq queue 'jobs'"
    fire_time: str
    token: str


@dataclass(frozen=True)
class TargetRun:
    """One backfilled fire: in the target now, or found there already."""

    fire_ts: int
    run_id: str
    job_id: str
    token: str
    written: bool  # False: its job was there already (guard key), nothing written for it


def current_token(client: Redis, keys: Keys) -> str:
    """The token a run written now would carry: the lease's, else the epoch (as MANUAL)."""
    leader, epoch = client.mget([keys.leader, keys.epoch])
    return _token(leader, epoch)


class OperatorWriter:
    """Operator runs of one queue's target, on one client."""

    def __init__(
        self,
        client: Redis,
        keys: Keys,
        spec: QueueSpec,
        make_encoder: Callable[[QueueSpec], Encoder] = encoder_for,
    ) -> None:
        if spec.target not in ENCODERS:  # a relayed target (the outbox relay's)
            raise OperatorRefused(
                f"{spec.describe()}: operator runs into a {spec.target} target are not written "
                "by this command yet; nothing was written"
            )
        if is_cluster(client):
            # As the leader refuses them (router.py): a script's keys share one slot there.
            raise OperatorRefused(
                f"{spec.describe()} cannot be written on Redis Cluster (one hash slot per "
                "script, db 0 only); nothing was written"
            )
        own_db = client_db(client)
        self._db = None if spec.db is None or spec.db == own_db else spec.db
        self._client = client
        self._keys = keys
        self._spec = spec
        self._encoder = make_encoder(spec)
        self._writer = RunWriter(client, keys)

    @property
    def target(self) -> str:
        return self._spec.describe()

    def trigger(self, schedule: Schedule, by: str) -> TargetTriggered:
        """One manual run of `schedule` now, announced on the events channel (the leader logs
        it), as MANUAL does for a stream."""

        def build(token: str, now: float) -> Run:
            fire_ts = int(now)
            fire_time = rfc3339_utc(fire_ts)
            run_id = manual_run_id(schedule.name, fire_time)
            return _run(schedule, fire_ts, run_id, Trigger.MANUAL.value, token, by, now)

        [(run, written)] = self._send([0], lambda _fire, token, now: build(token, now))
        del written  # a manual run id is new: never there already
        triggered = TargetTriggered(
            run.run_id, self._encoder.job_id(run.run_id), self.target, run.fire_time, run.token
        )
        notice: dict[str, str | int] = {
            "run_id": run.run_id,
            "schedule": schedule.name,
            "queue": schedule.queue,
            "target": self.target,
            "job_id": triggered.job_id,
            "token": run.token,
            "by": by,
        }
        # The run is written: an error now must not make the operator run it again. The
        # notice is for the leader's log only (pub/sub is at most once anyway).
        with suppress(RedisError):
            Scripts(self._client, self._keys).announce("manual", notice)
        return triggered

    def backfill(
        self, schedule: Schedule, fires: Sequence[int], by: str, max_runs: int
    ) -> Iterator[list[TargetRun]]:
        """The fires with the run ids their scheduled runs had, trigger `backfill`, in atomic
        calls of at most `max_runs` runs (and about MAX_ARGS_PER_CALL arguments): yields each
        call's runs once written, so a caller cut short by an error knows what is done."""

        def build(fire_ts: int, token: str, now: float) -> Run:
            run_id = scheduled_run_id(schedule.name, rfc3339_utc(fire_ts))
            return _run(schedule, fire_ts, run_id, BACKFILL, token, by, now)

        position = 0
        while position < len(fires):
            done = self._send(fires[position:], build, max_runs)
            position += len(done)
            yield [
                TargetRun(
                    run.fire_ts, run.run_id, self._encoder.job_id(run.run_id), run.token, written
                )
                for run, written in done
            ]

    def _send(
        self,
        fires: Sequence[int],
        build: Callable[[int, str, float], Run],
        max_runs: int = 1,
    ) -> list[tuple[Run, bool]]:
        """One WRITE_RUNS call of the first fires (as many as fit); each run with whether it
        was written. Built again with the new token if a lease was acquired meanwhile."""
        for _ in range(TOKEN_ATTEMPTS):
            token, now = self._token_and_time()
            keys: dict[str, int] = {}
            args: list[object] = []
            runs: list[Run] = []
            for fire in fires:
                if runs and (len(runs) >= max_runs or len(args) >= MAX_ARGS_PER_CALL):
                    break
                run = build(fire, token, now)
                add_writes(args, keys, self._encoder.writes(run), FIRST_TARGET_KEY)
                runs.append(run)
            try:
                reply = self._writer.write(token, list(keys), self._db, len(runs), args)
            except WrongKeyType as error:
                raise OperatorRefused(
                    f"{self.target}: the key {error.key} holds a {error.found}, where "
                    f"{self._spec.target} writes a {error.wanted} (is another program using "
                    "that key?); nothing was written"
                ) from None
            if reply.token_now is None:
                return [(run, code == 1) for run, code in zip(runs, reply.codes, strict=True)]
        raise OperatorRefused(
            f"{self.target}: the lease changed hands {TOKEN_ATTEMPTS} times while writing; "
            "nothing was written by the last attempt, try again"
        )

    def _token_and_time(self) -> tuple[str, float]:
        """The token a run written now carries, and Redis's TIME, in one MULTI."""
        pipe = self._client.pipeline(transaction=True)
        pipe.mget([self._keys.leader, self._keys.epoch])
        pipe.time()
        (leader, epoch), (seconds, micros) = pipe.execute()
        return _token(leader, epoch), int(seconds) + int(micros) / 1e6


def _token(leader: object, epoch: object) -> str:
    if leader is not None:
        token, colon, _ = _text(leader).partition(":")
        if colon and token.isascii() and token.isdigit():  # as MANUAL's '^(%d+):'
            return token
    return "0" if epoch is None else _text(epoch)


def _run(
    schedule: Schedule, fire_ts: int, run_id: str, trigger: str, token: str, by: str, now: float
) -> Run:
    return Run(
        run_id=run_id,
        schedule=schedule.name,
        job=schedule.job,
        args=schedule.args,
        args_json=schedule.args_json,
        queue=schedule.queue,
        fire_time=rfc3339_utc(fire_ts),
        fire_ts=fire_ts,
        enqueued_at=now,
        enqueued_at_text=rfc3339_utc_ms(now),
        trigger=trigger,
        token=token,
        replica=by,
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
