"""An in-Redis job system (Celery, RQ, Sidekiq, arq, Dramatiq, BullMQ) on ANOTHER Redis instance.

The enqueue script cannot write there (a script reaches one instance), so such a queue's runs
go through the outbox, and this deliverer writes each one with the same writes the target's
module (scheduler/targets/<kind>.py) builds for the scheduler's own Redis, in one script call on
the target's instance (store/lua/remote.py REMOTE_WRITE) that also sets the run's dedup key
`cronlease:dedup:<run id>`.

Guarantee: exactly once in the target while the dedup key lives. The key and the run's writes
are one atomic script call, so a run is either written with its key or not at all; a run
delivered again (the relay died between the call and its XACK, or a new leader claimed the
batch) finds the key and writes nothing, counted in `duplicates`. The key lives
max(7 days, twice the catch-up window): a delivered run comes back only if its XACK was lost,
when the next leader claims it (a lease later) or the scheduler's Redis is back, far sooner
than that. The target's own job key, where it has one (RQ's job hash, arq's job key), is
checked too, as inside the enqueue script. A key of the wrong type stops the batch at that run
(the runs before it confirmed, nothing written for it). Confirmed means that Redis answered
the call: durable as it is configured (appendfsync always, or replicas), as for any job the
target's own clients enqueue there.

Sources: TARGETS.md sections 1 and 2 (the Lua `SET cronlease:dedup:<run> NX EX <ttl>` then the
push); Redis EVAL/EVALSHA and SET NX EX documentation; each target module's own sources.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timezone
from typing import Any

import redis
from redis import Redis

from scheduler.core.queues import QueueSpec
from scheduler.core.timefmt import parse_instant
from scheduler.store.connection import classify, connect, redact
from scheduler.store.lua.remote import REMOTE_WRITE
from scheduler.targets.encoding import Encoder, Run, Writes, add_writes
from scheduler.targets.registry import encoder_for
from scheduler.targets.relay.base import Delivered, OutboxRun, TargetUnavailable
from scheduler.targets.relay.secrets import resolve_url

log = logging.getLogger(__name__)

DEDUP_PREFIX = "cronlease:dedup:"
MIN_DEDUP_TTL_S = 7 * 86400
# Connect and per-command deadline: a blocked port surfaces as TargetUnavailable this soon.
SOCKET_TIMEOUT_S = 3.0
# A call blocks that Redis for its whole length: cut as the enqueue calls are (router.py).
MAX_ARGS_PER_CALL = 4096
MAX_RUNS_PER_CALL = 256
_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)


def dedup_ttl_s(catchup_window_s: int) -> int:
    return max(MIN_DEDUP_TTL_S, 2 * catchup_window_s)


def run_of(outbox_run: OutboxRun) -> Run:
    """The outbox run as the target modules take it (DESIGN's run table, parsed)."""
    fields = outbox_run.fields
    args = outbox_run.args
    enqueued_at_text = fields.get("enqueued_at", "")
    try:
        enqueued_at = parse_instant(enqueued_at_text, timezone.utc).timestamp()
    except ValueError:
        enqueued_at = float(fields["fire_ts"])
    return Run(
        run_id=outbox_run.run_id,
        schedule=fields["schedule"],
        job=fields["job"],
        args=tuple(args) if isinstance(args, list) else dict(args),
        args_json=fields.get("args") or "{}",
        queue=fields.get("queue", ""),
        fire_time=fields["fire_time"],
        fire_ts=int(fields["fire_ts"]),
        enqueued_at=enqueued_at,
        enqueued_at_text=enqueued_at_text,
        trigger=fields.get("trigger", "scheduled"),
        token=fields.get("token", ""),
        replica=fields.get("replica", ""),
    )


class RemoteRedisDeliverer:
    def __init__(self, spec: QueueSpec, catchup_window_s: int = 3600) -> None:
        self.spec = spec
        self._encoder: Encoder = encoder_for(spec)
        self._ttl_s = dedup_ttl_s(catchup_window_s)
        self._client: Redis | None = None
        self._where = f"{spec.target} on Redis"

    def open(self) -> list[str]:
        """Connect and check the instance: not a Cluster; eviction that may drop jobs warned."""
        url = resolve_url(self.spec)
        self._where = f"{self.spec.target} on Redis at {redact(url)}"
        self.close()
        client = connect(url, SOCKET_TIMEOUT_S, f"cronlease-relay-{self.spec.queue}")
        try:
            info = client.info()
        except redis.AuthenticationError as error:
            client.close()
            raise TargetUnavailable(f"{self._where} refused the login: {error}") from None
        except redis.RedisError as error:
            client.close()
            raise TargetUnavailable(f"cannot reach {self._where}: {_why(error)}") from None
        if int(info.get("cluster_enabled", 0)):
            client.close()
            raise TargetUnavailable(
                f"{self._where} is a Redis Cluster node: a run's keys (job, queue, dedup key) "
                "do not share a hash slot, so they cannot be written in one script call; "
                "deliver to a standalone or Sentinel-managed instance"
            )
        self._client = client
        warnings = []
        policy = str(info.get("maxmemory_policy", "noeviction"))
        if policy != "noeviction":
            warnings.append(
                f"{self._where} evicts keys under memory pressure (maxmemory-policy {policy}): "
                "queued jobs and cronlease's dedup keys may be dropped; use noeviction"
            )
        return warnings

    def deliver(self, runs: Sequence[OutboxRun]) -> Delivered:
        if not runs:
            return Delivered(0)
        if self._client is None:
            self.open()
        client = self._client
        assert client is not None
        confirmed = duplicates = 0
        for chunk in self._chunks(runs):
            keys: dict[str, int] = {}
            body: list[object] = []
            for run in chunk:
                dedup = DEDUP_PREFIX + run.run_id
                body.extend((keys.setdefault(dedup, len(keys) + 1), run.job_id))
                add_writes(body, keys, run.writes, 1)
            try:
                reply = _run_script(client, list(keys), [self._ttl_s, len(chunk), *body])
            except _UNAVAILABLE as error:
                self.close()
                why = f"{self._where}: {_why(error)}"
                if confirmed == 0:
                    raise TargetUnavailable(why) from None
                return Delivered(confirmed, duplicates, why)
            except redis.RedisError as error:
                return Delivered(confirmed, duplicates, f"{self._where}: {_why(error)}")
            for index, code in enumerate(reply):
                if code == -3:
                    key, kind, want = (str(part) for part in reply[index + 1 : index + 4])
                    run_id = chunk[index].run_id
                    return Delivered(
                        confirmed,
                        duplicates,
                        f"run {run_id!r} not written: key {key!r} on {self._where} holds a "
                        f"{kind}, where {self.spec.target} writes a {want} (another program "
                        "uses that key?)",
                    )
                confirmed += 1
                duplicates += int(code) == 0
        return Delivered(confirmed, duplicates)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except redis.RedisError as error:
                log.debug("closing %s: %s", self._where, error)

    def _chunks(self, runs: Sequence[OutboxRun]) -> list[list[_Prepared]]:
        """The runs' writes, in order, cut into calls of bounded size."""
        chunks: list[list[_Prepared]] = [[]]
        size = 0
        for outbox_run in runs:
            run = run_of(outbox_run)
            writes = self._encoder.writes(run)
            ops = writes.ops + writes.when_ops
            weight = 6 + sum(3 + len(op) for op in ops)
            if chunks[-1] and (
                size + weight > MAX_ARGS_PER_CALL or len(chunks[-1]) >= MAX_RUNS_PER_CALL
            ):
                chunks.append([])
                size = 0
            chunks[-1].append(_Prepared(run.run_id, self._encoder.job_id(run.run_id), writes))
            size += weight
        return chunks


@dataclass(frozen=True, slots=True)
class _Prepared:
    run_id: str
    job_id: str
    writes: Writes


_SHA = hashlib.sha1(REMOTE_WRITE.encode()).hexdigest()


def _run_script(client: Redis, keys: list[str], args: list[object]) -> list[Any]:
    """EVALSHA; EVAL when that Redis does not have the script (first call, or restarted)."""
    try:
        reply = client.evalsha(_SHA, len(keys), *keys, *args)  # type: ignore[arg-type]
    except redis.exceptions.NoScriptError:
        reply = client.eval(REMOTE_WRITE, len(keys), *keys, *args)  # type: ignore[arg-type]
    return list(reply)


def _why(error: Exception) -> str:
    kind, meaning = classify(error)
    return f"{meaning} ({type(error).__name__}: {error})" if kind != "other" else str(error)
