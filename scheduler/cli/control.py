"""The operator's commands: `status`, `trigger NAME`, `pause NAME`, `resume NAME`.

They reach Redis the way `run` does (`--redis-url`, else the embedded Redis beside the config) but
never start an embedded server: a status that quietly started an empty Redis would report "no
leader" for a cluster that is fine elsewhere. Any Redis error is one line on stderr and exit 1.

`status` reads everything in one MULTI snapshot (plus one round trip for queue lengths); the
report is a pure function of that snapshot, the local config and Redis's clock (`build_report`),
and both the table and `--json` are renderings of the same report.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis
from redis import Redis

from scheduler.cli.settings import Settings
from scheduler.cli.util import UsageError, find_schedule, table
from scheduler.core.config import Config, ConfigError, load_config
from scheduler.core.timefmt import rfc3339_local, rfc3339_utc, rfc3339_utc_ms
from scheduler.store.connection import redact
from scheduler.store.embedded import data_dir_for, socket_path_for, unix_url
from scheduler.store.keys import Keys
from scheduler.store.scripts import Scripts
from scheduler.store.topology import connector_for

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
DEFAULT_TIMEOUT_S = 2.0
# A replica silent for longer than this many lease TTLs is shown as stale.
STALE_AFTER_TTLS = 3
MANUAL_MARK = "#manual-"


class Unavailable(Exception):
    """Redis cannot be used (not running, unreachable): printed as one line, exit 1."""


# -- reaching Redis ---------------------------------------------------------------------------


def resolve_url(settings: Settings) -> str:
    """`--redis-url`, else the embedded Redis of the config's folder if one is running."""
    if settings.redis_url:
        return settings.redis_url
    socket_path = socket_path_for(data_dir_for(settings.config_path))
    if not os.path.exists(socket_path):
        raise Unavailable(
            f"no --redis-url given and no embedded Redis is running for {settings.config_path} "
            f"(no socket at {socket_path}); start `cronlease run` there first, or pass "
            "--redis-url"
        )
    return unix_url(socket_path)


def explain(error: redis.RedisError, url: str) -> str:
    """One line saying what went wrong, with the URL's password redacted."""
    detail = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return f"cannot reach Redis at {redact(url)}: {detail}"
    return f"Redis at {redact(url)} answered with an error: {detail}"


def with_redis(command: str, settings: Settings, action: Callable[[Redis, Keys, str], int]) -> int:
    """Run `action` on a short-timeout client; Redis trouble is one line on stderr and exit 1."""
    try:
        url = resolve_url(settings)
    except Unavailable as error:
        print(f"cronlease {command}: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    timeout_s = settings.redis_timeout_s or DEFAULT_TIMEOUT_S
    try:
        connector = connector_for(url, settings, wait_for_cluster=False)
    except ValueError as error:  # TopologyError is one
        raise UsageError(f"--redis-url {redact(url)}: {error}") from None
    try:
        # Not named `cronlease-...`: the embedded server counts those as replicas still using it.
        client = connector(timeout_s, f"cronlease.{command}")
    except ValueError as error:
        raise UsageError(f"--redis-url {redact(url)}: {error}") from None
    except redis.RedisError as error:  # a Redis Cluster is asked for its slot map at once
        print(f"cronlease {command}: {explain(error, url)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        return action(client, Keys(settings.namespace), url)
    except redis.RedisError as error:
        print(f"cronlease {command}: {explain(error, url)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        client.close()


# -- status: the snapshot ---------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What Redis knows, read in one MULTI (queue lengths in a second round trip)."""

    now_s: float  # Redis TIME
    leader_value: str | None
    lease_left_ms: int
    epoch: int
    leader_info: Mapping[str, str]
    replicas: Sequence[tuple[str, float]]  # (replica id, last seen in Redis ms)
    replica_info: Mapping[str, str]  # replica id -> JSON
    cursors: Mapping[str, int]
    paused: frozenset[str]
    queue_lengths: Mapping[str, int]


def read_snapshot(client: Redis, keys: Keys, queues: Iterable[str]) -> Snapshot:
    pipe = client.pipeline(transaction=True)
    # TIME has no key, so Redis Cluster cannot put it in a MULTI: read it just before instead.
    clustered = not isinstance(client, Redis)
    time_before = client.time() if clustered else None
    if not clustered:
        pipe.time()
    pipe.get(keys.leader)
    pipe.pttl(keys.leader)
    pipe.get(keys.epoch)
    pipe.hgetall(keys.leader_info)
    pipe.zrange(keys.replicas, 0, -1, withscores=True)
    pipe.hgetall(keys.replica_info)
    pipe.hgetall(keys.cursor)
    pipe.smembers(keys.paused)
    replies = pipe.execute()
    if time_before is not None:
        replies = [time_before, *replies]
    (now, leader, pttl, epoch, leader_info, replicas, replica_info, cursors, paused) = replies
    prefix = keys.queue("")
    names = set(queues)
    for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=1000, _type="stream"):
        names.add(str(key)[len(prefix) :])
    ordered = sorted(names)
    lengths = client.pipeline(transaction=False)
    for name in ordered:
        lengths.xlen(keys.queue(name))
    counts = lengths.execute() if ordered else []
    return Snapshot(
        now_s=int(now[0]) + int(now[1]) / 1e6,
        leader_value=leader,
        lease_left_ms=max(0, int(pttl)),
        epoch=int(epoch or 0),
        leader_info=leader_info,
        replicas=[(str(member), float(score)) for member, score in replicas],
        replica_info=replica_info,
        cursors={name: int(float(ts)) for name, ts in cursors.items()},
        paused=frozenset(paused),
        queue_lengths=dict(zip(ordered, (int(c) for c in counts), strict=True)),
    )


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


# -- status: the report (pure) ----------------------------------------------------------------


@dataclass(frozen=True)
class LeaderView:
    replica: str
    token: int
    lease_left_ms: int | None  # None for a previous leader
    since: str | None  # RFC 3339 UTC; None when the leader has not recorded it (yet)
    since_ts: float | None
    for_s: float | None
    config_hash: str | None


@dataclass(frozen=True)
class ReplicaView:
    id: str
    role: str  # leader (holds the lease now), follower, ex-leader (says leader, holds none)
    reported_role: str | None
    last_seen: str
    last_seen_ts: float
    last_seen_ago_s: float
    stale: bool
    config_hash: str | None
    config_drift: bool
    version: str | None
    host: str | None
    pid: int | None
    started_at: str | None
    started_at_ts: float | None


@dataclass(frozen=True)
class ConfigView:
    path: str
    loaded: bool
    error: str | None
    hash: str | None
    matches_leader: bool | None  # None: no leader hash to compare with


@dataclass(frozen=True)
class ScheduleView:
    name: str
    kind: str
    spec: str
    queue: str
    timezone: str
    enabled: bool
    paused: bool
    last_fire: str | None
    last_fire_ts: int | None
    last_fire_ago_s: float | None
    next_fire: str | None
    next_fire_ts: int | None
    next_fire_local: str | None
    next_fire_in_s: float | None


@dataclass(frozen=True)
class UnknownScheduleView:
    """A name Redis has a cursor or a pause flag for, absent from the local config."""

    name: str
    last_fire: str | None
    last_fire_ts: int | None
    last_fire_ago_s: float | None
    paused: bool


@dataclass(frozen=True)
class QueueView:
    name: str
    stream: str
    length: int


@dataclass(frozen=True)
class StatusReport:
    redis_url: str  # password redacted
    namespace: str
    now: str
    now_ts: float
    epoch: int
    leader: LeaderView | None
    previous_leader: LeaderView | None  # from leader-info when it is not the lease holder's
    replicas: list[ReplicaView]
    config: ConfigView
    config_drift: list[str]  # live replicas whose config hash differs from the leader's
    schedules: list[ScheduleView]
    unknown_schedules: list[UnknownScheduleView]
    paused: list[str]
    queues: list[QueueView]

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def build_report(
    snap: Snapshot,
    config: Config | None,
    config_error: str | None,
    *,
    config_path: str,
    keys: Keys,
    lease_ttl_s: float,
    redis_url: str,
) -> StatusReport:
    now = snap.now_s
    now_whole = int(now)
    leader, previous = _leaders(snap)
    info = {rid: _json_object(raw) for rid, raw in snap.replica_info.items()}
    leader_hash = leader.config_hash if leader is not None else None
    if leader is not None and leader_hash is None:
        leader_hash = _str_or_none(info.get(leader.replica, {}).get("config_hash"))
    replicas = [
        _replica(rid, seen_ms, info.get(rid, {}), leader, leader_hash, now, lease_ttl_s)
        for rid, seen_ms in sorted(snap.replicas, key=lambda item: item[0])
    ]
    if leader is not None:
        leader = replace(leader, config_hash=leader_hash)

    schedules: list[ScheduleView] = []
    known: set[str] = set()
    if config is not None:
        for schedule in config.schedules:
            known.add(schedule.name)
            cursor = snap.cursors.get(schedule.name)
            start = now_whole if cursor is None else max(cursor, now_whole)
            fire = schedule.timeline.next_after(start)
            local = None if fire is None else rfc3339_local(fire, schedule.timezone)
            schedules.append(
                ScheduleView(
                    name=schedule.name,
                    kind=schedule.kind,
                    spec=schedule.spec,
                    queue=schedule.queue,
                    timezone=schedule.timezone.key,
                    enabled=schedule.enabled,
                    paused=schedule.name in snap.paused,
                    last_fire=None if cursor is None else rfc3339_utc(cursor),
                    last_fire_ts=cursor,
                    last_fire_ago_s=None if cursor is None else round(max(0.0, now - cursor), 3),
                    next_fire=None if fire is None else rfc3339_utc(fire),
                    next_fire_ts=fire,
                    next_fire_local=local,
                    next_fire_in_s=None if fire is None else round(max(0.0, fire - now), 3),
                )
            )
    unknown = [
        UnknownScheduleView(
            name=name,
            last_fire=None if name not in snap.cursors else rfc3339_utc(snap.cursors[name]),
            last_fire_ts=snap.cursors.get(name),
            last_fire_ago_s=(
                None if name not in snap.cursors else round(max(0.0, now - snap.cursors[name]), 3)
            ),
            paused=name in snap.paused,
        )
        for name in sorted((set(snap.cursors) | snap.paused) - known)
    ]
    return StatusReport(
        redis_url=redact(redis_url),
        namespace=keys.namespace,
        now=rfc3339_utc_ms(now),
        now_ts=now,
        epoch=snap.epoch,
        leader=leader,
        previous_leader=previous,
        replicas=replicas,
        config=ConfigView(
            path=config_path,
            loaded=config is not None,
            error=config_error,
            hash=config.digest if config is not None else None,
            matches_leader=(
                None if config is None or leader_hash is None else config.digest == leader_hash
            ),
        ),
        config_drift=[r.id for r in replicas if r.config_drift],
        schedules=schedules,
        unknown_schedules=unknown,
        paused=sorted(snap.paused),
        queues=[
            QueueView(name, keys.queue(name), length)
            for name, length in sorted(snap.queue_lengths.items())
        ],
    )


def _leaders(snap: Snapshot) -> tuple[LeaderView | None, LeaderView | None]:
    """(the lease holder, the leader-info's leader when that is someone else or no one)."""
    info = snap.leader_info
    recorded_token = _int_or_none(info.get("token"))
    since_ts = _float_or_none(info.get("since"))
    recorded: LeaderView | None = None
    if recorded_token is not None and info.get("replica"):
        recorded = LeaderView(
            replica=str(info["replica"]),
            token=recorded_token,
            lease_left_ms=None,
            since=None if since_ts is None else rfc3339_utc(int(since_ts)),
            since_ts=since_ts,
            for_s=None,
            config_hash=info.get("config_hash") or None,
        )
    if snap.leader_value is None:
        return None, recorded
    token_text, _, replica = snap.leader_value.partition(":")
    token = _int_or_none(token_text) or 0
    if recorded is not None and recorded.token == token and recorded.replica == replica:
        current = LeaderView(
            replica=replica,
            token=token,
            lease_left_ms=snap.lease_left_ms,
            since=recorded.since,
            since_ts=recorded.since_ts,
            for_s=None if since_ts is None else round(max(0.0, snap.now_s - since_ts), 3),
            config_hash=recorded.config_hash,
        )
        return current, None
    # A fresh leader that has not written its leader-info yet, or a stale record.
    current = LeaderView(replica, token, snap.lease_left_ms, None, None, None, None)
    return current, recorded


def _replica(
    rid: str,
    seen_ms: float,
    info: Mapping[str, Any],
    leader: LeaderView | None,
    leader_hash: str | None,
    now: float,
    lease_ttl_s: float,
) -> ReplicaView:
    seen = seen_ms / 1000
    ago = max(0.0, now - seen)
    # A replica reports its own lease TTL; --lease-ttl is the fallback for older ones.
    ttl_s = _float_or_none(info.get("lease_ttl_s")) or lease_ttl_s
    stale = ago > STALE_AFTER_TTLS * ttl_s
    reported = _str_or_none(info.get("role"))
    if leader is not None and rid == leader.replica:
        role = "leader"
    elif reported == "leader":
        role = "ex-leader"
    else:
        role = reported or "unknown"
    config_hash = _str_or_none(info.get("config_hash"))
    started_ts = _float_or_none(info.get("started_at"))
    return ReplicaView(
        id=rid,
        role=role,
        reported_role=reported,
        last_seen=rfc3339_utc_ms(seen),
        last_seen_ts=seen,
        last_seen_ago_s=round(ago, 3),
        stale=stale,
        config_hash=config_hash,
        config_drift=(
            not stale
            and leader_hash is not None
            and config_hash is not None
            and config_hash != leader_hash
        ),
        version=_str_or_none(info.get("version")),
        host=_str_or_none(info.get("host")),
        pid=_int_or_none(info.get("pid")),
        started_at=None if started_ts is None else rfc3339_utc(int(started_ts)),
        started_at_ts=started_ts,
    )


def _json_object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _str_or_none(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _float_or_none(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None


# -- status: the table ------------------------------------------------------------------------


def span(seconds: float) -> str:
    """A short human duration: `0.4s`, `42s`, `3m12s`, `2h5m`, `3d4h`."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count or parts:
            parts.append(f"{count}{unit}")
    return "".join(part for part in parts[:2] if not part.startswith("0"))


def render_text(report: StatusReport) -> list[str]:
    lines = [f"Redis     {report.redis_url}  namespace {report.namespace}  time {report.now}"]
    leader = report.leader
    if leader is None:
        lines.append(f"Leader    none: the lease is free (epoch {report.epoch})")
    else:
        who = f"{leader.replica}  fencing token {leader.token}"
        lines.append(f"Leader    {who}  epoch {report.epoch}")
        if leader.since is not None and leader.for_s is not None:
            lines.append(f"Since     {leader.since}  for {span(leader.for_s)}")
        else:
            lines.append("Since     not recorded yet")
        lines.append(f"Lease     {(leader.lease_left_ms or 0) / 1000:.2f}s left")
    previous = report.previous_leader
    if previous is not None:
        since = f" since {previous.since}" if previous.since else ""
        lines.append(f"Previous  {previous.replica}  fencing token {previous.token}{since}")
    config = report.config
    if config.loaded:
        same = {None: "", True: ", same as the leader's", False: ", DIFFERS from the leader's"}
        lines.append(f"Config    {config.path}  hash {config.hash}{same[config.matches_leader]}")
    else:
        lines.append(f"Config    {config.path} does not load: {config.error}")
    if report.config_drift:
        hash_text = report.leader.config_hash if report.leader else None
        lines.append(
            f"Drift     {', '.join(report.config_drift)} run a config other than the leader's "
            f"({hash_text})"
        )
    else:
        lines.append("Drift     none")

    rows: list[tuple[str, ...]]
    lines.append("")
    if report.replicas:
        rows = [
            (
                r.id,
                r.role,
                f"{span(r.last_seen_ago_s)} ago" + (", STALE" if r.stale else ""),
                (r.config_hash or "-") + (" (drift)" if r.config_drift else ""),
                r.version or "-",
                r.host or "-",
            )
            for r in report.replicas
        ]
        lines += table(("REPLICA", "ROLE", "LAST SEEN", "CONFIG", "VERSION", "HOST"), rows)
    else:
        lines.append("No replica has sent a heartbeat.")

    lines.append("")
    if report.schedules:
        rows = [
            (
                s.name,
                s.kind,
                s.spec,
                s.queue,
                _when(s.last_fire, s.last_fire_ago_s, "ago"),
                "-" if s.next_fire is None else f"{s.next_fire} (in {span(s.next_fire_in_s or 0)})",
                "-" if s.next_fire_local is None else f"{s.next_fire_local} {s.timezone}",
                "yes" if s.paused else "no",
                "yes" if s.enabled else "no",
            )
            for s in report.schedules
        ]
        header = ("SCHEDULE", "KIND", "SPEC", "QUEUE", "LAST FIRE", "NEXT FIRE (UTC)")
        lines += table((*header, "NEXT FIRE (LOCAL)", "PAUSED", "ENABLED"), rows)
    elif config.loaded:
        lines.append(f"{config.path} has no schedules.")
    else:
        lines.append("Schedules: only what Redis knows (the config did not load):")
    if report.unknown_schedules:
        if report.schedules:
            lines += ["", f"Unknown to this config ({config.path}):"]
        rows = [
            (u.name, _when(u.last_fire, u.last_fire_ago_s, "ago"), "yes" if u.paused else "no")
            for u in report.unknown_schedules
        ]
        lines += table(("SCHEDULE", "LAST FIRE", "PAUSED"), rows)

    lines.append("")
    if report.queues:
        lines += table(
            ("QUEUE", "STREAM", "LENGTH"),
            [(q.name, q.stream, str(q.length)) for q in report.queues],
        )
    else:
        lines.append("No queue streams.")
    return lines


def _when(text: str | None, seconds: float | None, word: str) -> str:
    if text is None or seconds is None:
        return "never"
    return f"{text} ({span(seconds)} {word})"


# -- the commands -----------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    config: Config | None = None
    config_error: str | None = None
    try:
        config = load_config(settings.config_path)
    except ConfigError as error:
        first = error.lines()[0] if error.problems else str(error)
        more = len(error.problems) - 1
        config_error = first + (f" (and {more} more problems)" if more > 0 else "")

    def action(client: Redis, keys: Keys, url: str) -> int:
        queues = {s.queue for s in config.schedules} if config is not None else set()
        snap = read_snapshot(client, keys, queues)
        report = build_report(
            snap,
            config,
            config_error,
            config_path=settings.config_path,
            keys=keys,
            lease_ttl_s=settings.lease_ttl_s,
            redis_url=url,
        )
        if args.json:
            print(report.to_json())
        else:
            print("\n".join(render_text(report)))
        return EXIT_OK

    return with_redis("status", settings, action)


def manual_run_id(name: str, fire_time: str) -> str:
    """`<name>@<fire_time>#manual-<random>`: never equal to a scheduled run's id."""
    return f"{name}@{fire_time}{MANUAL_MARK}{secrets.token_hex(6)}"


def cmd_trigger(args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings.config_path)  # ConfigError -> exit 2 with every problem
    schedule = find_schedule(config, args.name)

    def action(client: Redis, keys: Keys, url: str) -> int:
        del url
        seconds, micros = client.time()
        now = int(seconds) + int(micros) / 1e6
        fire_ts = int(seconds)
        fire_time = rfc3339_utc(fire_ts)
        run_id = manual_run_id(schedule.name, fire_time)
        stream = keys.queue(schedule.queue)
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
                settings.replica_id,
            ],
        )
        print(f"enqueued manual run {run_id} as entry {entry_id} of {stream}")
        if not schedule.enabled:
            print(f"note: {schedule.name!r} is disabled in {config.source}; ran it anyway")
        return EXIT_OK

    return with_redis("trigger", settings, action)


def cmd_pause(args: argparse.Namespace, settings: Settings) -> int:
    return _set_paused(args, settings, paused=True)


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    return _set_paused(args, settings, paused=False)


def _set_paused(args: argparse.Namespace, settings: Settings, paused: bool) -> int:
    name = find_schedule(load_config(settings.config_path), args.name).name

    def action(client: Redis, keys: Keys, url: str) -> int:
        del url
        if paused and int(client.sadd(keys.paused, name)):
            print(f"paused {name}: the leader skips its fires until resume (not replayed later)")
        elif paused:
            print(f"{name} was already paused")
        elif int(client.srem(keys.paused, name)):
            print(f"resumed {name}: it runs from its next fire; the paused period is not replayed")
        else:
            print(f"{name} was not paused")
        return EXIT_OK

    return with_redis("pause" if paused else "resume", settings, action)


CONTROL_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "status": cmd_status,
    "trigger": cmd_trigger,
    "pause": cmd_pause,
    "resume": cmd_resume,
}
