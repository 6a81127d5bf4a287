"""The operator's commands (`status`, `trigger`, `backfill`, `pause`, `resume`), via Redis.

`trigger` and `backfill` write their runs without the leader and announce them on the events
channel, so the leader's log says what happened and who did it (`backfill`'s plan and writes:
cli/backfill.py); `pause` and `resume` need no notice: the leader reads the paused set on every
heartbeat and logs its changes. A schedule whose queue goes into another job system gets its
runs there, in that system's format (targets/operator.py), never into a stream nobody reads.

They reach Redis the way `run` does (`--redis-url`, else the embedded Redis beside the config) but
never start an embedded server: a status that quietly started an empty Redis would report "no
leader" for a cluster that is fine elsewhere. Any Redis error is one line on stderr and exit 1.

`status` reads everything in one MULTI snapshot (plus one round trip for queue figures; see
`status/snapshot.py`); the report is a pure function of that snapshot, the local config and
Redis's clock (`status/report.py`), and both the table (`render`) and `--json`
(`status/jsonview.py`, also the web page's /api/status) are renderings of the same report. The
writes of `trigger`, `pause` and `resume` are `status/actions.py`, which the web page shares.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import redis
from redis import Redis

from scheduler.cli import backfill
from scheduler.cli.connect import connector_for
from scheduler.cli.render import render_text
from scheduler.cli.settings import Settings
from scheduler.cli.util import UsageError, find_schedule
from scheduler.core.config import load_config
from scheduler.core.schedule import Config, ConfigError
from scheduler.core.timefmt import rfc3339_utc
from scheduler.core.wording import plural
from scheduler.status import actions
from scheduler.status.jsonview import render_json
from scheduler.status.report import build_report
from scheduler.status.snapshot import read_snapshot
from scheduler.store.connection import redact
from scheduler.store.embedded import data_dir_for, socket_path_for, unix_url
from scheduler.store.keys import Keys
from scheduler.store.scripts import Scripts
from scheduler.targets.operator import OperatorRefused, OperatorWriter, current_token
from scheduler.targets.registry import target_queues_of

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
DEFAULT_TIMEOUT_S = 2.0


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
    except OperatorRefused as error:  # the queue's target cannot take the run: said as it is
        print(f"cronlease {command}: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except redis.RedisError as error:
        print(f"cronlease {command}: {explain(error, url)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        client.close()


# -- the commands -----------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    config: Config | None = None
    config_error: str | None = None
    try:
        config = load_config(settings.config_path)
    except ConfigError as error:
        first = error.lines()[0] if error.problems else str(error)
        more = len(error.problems) - 1
        config_error = first + (f" (and {plural(more, 'more problem')})" if more > 0 else "")

    def action(client: Redis, keys: Keys, url: str) -> int:
        queues = {s.queue for s in config.schedules} if config is not None else set()
        targets = target_queues_of(config.queues, keys) if config is not None else {}
        snap = read_snapshot(client, keys, queues, targets)
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
            print(render_json(report))
        else:
            print("\n".join(render_text(report)))
        return EXIT_OK

    return with_redis("status", settings, action)


def cmd_trigger(args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings.config_path)  # ConfigError -> exit 2 with every problem
    schedule = find_schedule(config, args.name)

    spec = config.queue(schedule.queue)

    def action(client: Redis, keys: Keys, url: str) -> int:
        del url
        if spec.target != "stream" and not spec.relayed:
            into = OperatorWriter(client, keys, spec).trigger(schedule, settings.replica_id)
            print(
                f"enqueued manual run {into.run_id} as job {into.job_id} of {into.target} "
                f"(token {into.token})"
            )
        else:
            # A relayed queue's run goes to its outbox; the leader's relay delivers it.
            outbox = keys.outbox(schedule.queue) if spec.relayed else None
            run = actions.trigger(client, keys, schedule, settings.replica_id, outbox)
            print(f"enqueued manual run {run.run_id} as entry {run.entry_id} of {run.stream}")
        if not schedule.enabled:
            print(f"note: {schedule.name!r} is disabled in {config.source}; ran it anyway")
        return EXIT_OK

    return with_redis("trigger", settings, action)


def announce_backfill(
    scripts: Scripts,
    schedule: str,
    from_ts: int,
    to_ts: int,
    runs: int,
    by: str,
    *,
    target: str | None = None,
    already: int = 0,
) -> None:
    """Once `backfill`'s runs are written, tell the leader, which logs "backfill of <schedule>
    (<from> .. <to>): N runs enqueued by <by>" (into which target, and how many were already
    there, for a queue of another job system). `trigger` needs no such call: its MANUAL script
    (or targets/operator.py) announces the run itself; BACKFILL does not, as one backfill spans
    several calls."""
    fields: dict[str, str | int] = {
        "schedule": schedule,
        "from": rfc3339_utc(from_ts),
        "to": rfc3339_utc(to_ts),
        "runs": runs,
        "by": by,
    }
    if target is not None:
        fields |= {"target": target, "already": already}
    scripts.announce("backfill", fields)


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings.config_path)  # ConfigError -> exit 2 with every problem
    schedule = find_schedule(config, args.name)
    # Every refusal that needs no Redis comes first, so a typo never waits for a connection.
    plan = backfill.plan_backfill(schedule, args.from_, args.to, args.max)

    spec = config.queue(schedule.queue)

    def action(client: Redis, keys: Keys, url: str) -> int:
        del url
        backfill.refuse_future(plan, int(client.time()[0]))
        in_stream = spec.target == "stream" or spec.relayed  # a relayed queue: its outbox
        into = None if in_stream else OperatorWriter(client, keys, spec)
        stream = keys.outbox(schedule.queue) if spec.relayed else keys.queue(schedule.queue)
        where = stream if into is None else into.target
        if not plan.fires:
            print(backfill.nothing_line(plan))
            return EXIT_OK
        if args.dry_run:
            lines = backfill.dry_run_lines(plan, where, current_token(client, keys), args.json)
            print("\n".join(lines))
            return EXIT_OK
        scripts = Scripts(client, keys)
        by = settings.replica_id
        span = (schedule.name, plan.from_ts, plan.to_ts)
        if into is not None:
            done = backfill.write_into_target(into, plan, by)
            new = sum(run.written for run in done.runs)
            already = len(done.runs) - new
            announce_backfill(scripts, *span, new, by, target=done.target, already=already)
            print("\n".join(backfill.target_lines(plan, done, args.json)))
        else:
            written = backfill.write_backfill(scripts, plan, where, by)
            announce_backfill(scripts, *span, len(written.entries), by)
            print("\n".join(backfill.written_lines(plan, written, args.json)))
        if not schedule.enabled and not args.json:
            print(f"note: {schedule.name!r} is disabled in {config.source}; backfilled it anyway")
        return EXIT_OK

    return with_redis("backfill", settings, action)


def cmd_pause(args: argparse.Namespace, settings: Settings) -> int:
    return _set_paused(args, settings, paused=True)


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    return _set_paused(args, settings, paused=False)


def _set_paused(args: argparse.Namespace, settings: Settings, paused: bool) -> int:
    name = find_schedule(load_config(settings.config_path), args.name).name

    def action(client: Redis, keys: Keys, url: str) -> int:
        del url
        changed = actions.set_paused(client, keys, name, paused)
        if paused and changed:
            print(f"paused {name}: the leader skips its fires until resume (not replayed later)")
        elif paused:
            print(f"{name} was already paused")
        elif changed:
            print(f"resumed {name}: it runs from its next fire; the paused period is not replayed")
        else:
            print(f"{name} was not paused")
        return EXIT_OK

    return with_redis("pause" if paused else "resume", settings, action)


CONTROL_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "status": cmd_status,
    "trigger": cmd_trigger,
    "backfill": cmd_backfill,
    "pause": cmd_pause,
    "resume": cmd_resume,
}
