"""The status report: a pure function of a snapshot, the local config and Redis's clock."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from scheduler.core.schedule import Config
from scheduler.core.timefmt import rfc3339_utc, rfc3339_utc_ms
from scheduler.status.nextfires import NextFires
from scheduler.status.snapshot import Snapshot
from scheduler.store.connection import redact
from scheduler.store.keys import Keys

# Many schedules share a last fire second (every hour on the hour, ...): its text is made once.
_utc = lru_cache(maxsize=4096)(rfc3339_utc)

# A replica silent for longer than this many lease TTLs is shown as stale. A replica that stops
# cleanly removes its heartbeat (daemon/farewell.py), so a stale one is one that vanished.
STALE_AFTER_TTLS = 3


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
    job: str
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
class GroupView:
    name: str
    consumers: int
    pending: int  # delivered, not acknowledged
    lag: int | None  # not delivered yet (None before Redis 7)


@dataclass(frozen=True)
class QueueView:
    name: str
    stream: str | None  # the queue's stream key; None when it goes to another job system
    length: int
    pending: int | None  # over every consumer group; None: no group reads it
    oldest_age_s: float | None  # of its first entry; None: empty
    groups: list[GroupView]
    # Where its runs go (`queues:`): "stream", or e.g. "celery queue 'mail' in db 1".
    target: str = "stream"


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


def build_report(
    snap: Snapshot,
    config: Config | None,
    config_error: str | None,
    *,
    config_path: str,
    keys: Keys,
    lease_ttl_s: float,
    redis_url: str,
    next_fires: NextFires | None = None,
) -> StatusReport:
    """`next_fires`: a memo kept between reports (the web page's); a fresh one by default."""
    memo = NextFires() if next_fires is None else next_fires
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
            upcoming = memo.after(schedule, start)
            fire = upcoming.fire
            schedules.append(
                ScheduleView(
                    name=schedule.name,
                    kind=schedule.kind,
                    spec=schedule.spec,
                    job=schedule.job,
                    queue=schedule.queue,
                    timezone=schedule.timezone.key,
                    enabled=schedule.enabled,
                    paused=schedule.name in snap.paused,
                    last_fire=None if cursor is None else _utc(cursor),
                    last_fire_ts=cursor,
                    last_fire_ago_s=None if cursor is None else round(max(0.0, now - cursor), 3),
                    next_fire=upcoming.utc,
                    next_fire_ts=fire,
                    next_fire_local=upcoming.local,
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
            _queue(snap, keys, name, length, config)
            for name, length in sorted(snap.queue_lengths.items())
        ],
    )


def _queue(snap: Snapshot, keys: Keys, name: str, length: int, config: Config | None) -> QueueView:
    groups = [
        GroupView(g.name, g.consumers, g.pending, g.lag) for g in snap.queue_groups.get(name, ())
    ]
    oldest_ms = snap.queue_oldest_ms.get(name)
    spec = config.queue(name) if config is not None else None
    is_stream = spec is None or spec.target == "stream"
    return QueueView(
        name=name,
        stream=keys.queue(name) if is_stream else None,
        target="stream" if spec is None else spec.describe(),
        length=length,
        pending=sum(g.pending for g in groups) if groups else None,
        oldest_age_s=None
        if oldest_ms is None
        else round(max(0.0, snap.now_s - oldest_ms / 1000), 3),
        groups=groups,
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
