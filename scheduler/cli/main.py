"""The `cronlease` command line: parse, dispatch, turn user mistakes into exit 2 and a sentence."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from scheduler import __version__
from scheduler.cli.settings import (
    ALL_FLAGS,
    CONFIG_FLAGS,
    Settings,
    add_flags,
    int_arg,
    settings_from_args,
)
from scheduler.cli.util import UsageError, find_schedule, table
from scheduler.cli.workerflags import WORKER_COMMON_FLAGS, add_dlq_arguments, add_worker_arguments
from scheduler.core.config import load_config
from scheduler.core.schedule import ConfigError
from scheduler.core.timefmt import parse_instant, rfc3339_local, rfc3339_utc
from scheduler.core.wording import plural
from scheduler.store.keys import Keys

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
EXIT_USAGE = 2


Handler = Callable[[argparse.Namespace, Settings], int]


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    # The core reads no clock; `now` is given here, and only here: warnings about dates are for
    # the person checking a file, while the daemon must keep loading a file that aged.
    config = load_config(settings.config_path, now_ts=int(time.time()))
    for line in config.warning_lines():
        print(line, file=sys.stderr)
    enabled = sum(1 for s in config.schedules if s.enabled)
    warned = f", {plural(len(config.warnings), 'warning')}" if config.warnings else ""
    print(
        f"{settings.config_path}: OK, {plural(len(config.schedules), 'schedule')} "
        f"({enabled} enabled){warned}, config hash {config.digest}"
    )
    # Where each queue's runs go: a typo'd queue name silently makes a new stream, so say it.
    used: dict[str, int] = {}
    for schedule in config.schedules:
        used[schedule.queue] = used.get(schedule.queue, 0) + 1
    for queue in sorted(set(used) | set(config.queues)):
        spec = config.queue(queue)
        where = (
            f"stream {Keys(settings.namespace).queue(queue)}"
            if spec.target == "stream"
            else spec.describe()
        )
        users = plural(used.get(queue, 0), "schedule")
        print(f"  queue {queue}: {where} ({users})")
    return EXIT_OK


def cmd_next(args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings.config_path)
    if args.n < 1:
        raise UsageError("-n must be at least 1")
    if args.from_ is None:
        start = math.ceil(time.time())
    else:
        try:
            start = _first_second_from(parse_instant(args.from_, timezone.utc))
        except ValueError as error:
            raise UsageError(f"--from: {error}") from None
    schedules = [find_schedule(config, args.name)] if args.name else list(config.schedules)
    rows: list[tuple[str, str, str]] = []
    for schedule in schedules:
        # Fires at or after `start`, whatever the trigger: every timeline answers "strictly
        # after", and fires are whole seconds, so that is the fires after start - 1.
        fires = schedule.timeline.upcoming(start - 1, args.n)
        for fire in fires:
            if args.json:
                print(
                    json.dumps(
                        {
                            "schedule": schedule.name,
                            "fire_time": rfc3339_utc(fire),
                            "local_time": rfc3339_local(fire, schedule.timezone),
                        }
                    )
                )
            else:
                rows.append(
                    (
                        schedule.name + ("" if schedule.enabled else " (disabled)"),
                        f"{rfc3339_local(fire, schedule.timezone)} {schedule.timezone.key}",
                        rfc3339_utc(fire),
                    )
                )
        if not fires and not args.json:
            rows.append((schedule.name, "no more fires", "-"))
    if not args.json:
        print("\n".join(table(("SCHEDULE", "LOCAL TIME", "UTC"), rows)))
    return EXIT_OK


def _first_second_from(moment: datetime) -> int:
    """The first whole second at or after `moment`: a fire at 12:00:00 is not "from"
    12:00:00.5."""
    whole = int(moment.replace(microsecond=0).timestamp())
    return whole + 1 if moment.microsecond else whole


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cronlease",
        description="A leader-elected cron scheduler: replicas share a Redis lease; the leader "
        "enqueues every due run into a Redis Stream exactly once.",
    )
    parser.add_argument("--version", action="version", version=f"cronlease {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, help_text: str, flags: tuple[str, ...] = ALL_FLAGS
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_flags(p, flags)
        return p

    command(
        "validate",
        "check the schedules file; print FILE:LINE: message per problem, and FILE:LINE: "
        "warning: ... for what is valid but likely a mistake (exit 0)",
        CONFIG_FLAGS,
    )
    nxt = command(
        "next",
        "print the next fire times of one or all schedules: the first N at or after --from "
        "(default: now)",
        CONFIG_FLAGS,
    )
    command(
        "migrate",
        "create the tables the config's postgres queues write to (the ledger of delivered run "
        "ids and cronlease_runs); safe to run again; never done at start-up",
        CONFIG_FLAGS,
    )
    nxt.add_argument("name", nargs="?", help="one schedule (default: all)")
    nxt.add_argument("-n", type=int_arg, default=5, help="how many fire times (default: 5)")
    nxt.add_argument(
        "--from",
        dest="from_",
        metavar="TIME",
        help="list fires from TIME instead of from now; a fire at exactly TIME is included, "
        "for cron, every and at alike: ISO 8601 (UTC unless it has an offset) or Unix seconds",
    )
    nxt.add_argument("--json", action="store_true", help="one JSON object per line")
    for name, help_text, extra in EXTRA_COMMANDS:
        extra(command(name, help_text))
    add_worker_arguments(
        command(
            "worker",
            "run the @job functions of the --import modules on the runs of cronlease streams: "
            "retries with backoff, dead letters, at most one success per run id; SIGTERM stops "
            "reading and lets running jobs finish within --grace (exit 0)",
            WORKER_COMMON_FLAGS,
        )
    )
    add_dlq_arguments(
        command(
            "dlq", "list, replay or purge a queue's dead runs (exit 1 if Redis is unreachable)", ()
        )
    )
    return parser


def _add_run(p: argparse.ArgumentParser) -> None:
    del p


def _add_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object")


def _add_name(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the schedule's name")


# `backfill`'s default --max; kept here, not in cli/backfill.py, so parsing loads no Redis code.
BACKFILL_MAX = 1000


def _add_backfill(p: argparse.ArgumentParser) -> None:
    _add_name(p)
    when = "ISO 8601 (UTC unless it has an offset) or Unix seconds"
    p.add_argument(
        "--from",
        dest="from_",
        metavar="TIME",
        required=True,
        help=f"the oldest fire time to re-offer, INCLUSIVE: a fire at exactly TIME is included; "
        f"{when}",
    )
    p.add_argument(
        "--to",
        metavar="TIME",
        required=True,
        help=f"the newest fire time to re-offer, INCLUSIVE; not after Redis's clock; {when}",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the runs (run id, local fire time) and the token they would carry; write "
        "nothing",
    )
    p.add_argument(
        "--max",
        type=int_arg,
        default=BACKFILL_MAX,
        metavar="N",
        help="refuse (exit 2, nothing written) a range of more than N fires (default: %(default)s)",
    )
    p.add_argument(
        "--json", action="store_true", help="one JSON object per run (with --dry-run too)"
    )


EXTRA_COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = [
    ("run", "the daemon: elect a leader, lead or follow, serve metrics", _add_run),
    ("status", "leader, fencing token, replicas, per-schedule last and next fire", _add_status),
    ("trigger", "enqueue one manual run of a schedule now", _add_name),
    (
        "backfill",
        "re-offer every past fire of a schedule from --from to --to (both ends INCLUSIVE), "
        "oldest first, with the run ids their scheduled runs had (so a worker that "
        "deduplicates by run id runs only the fires it never ran) and trigger `backfill`; "
        "fenced like `trigger` (the lease's token, or the epoch without a leader); the cursor "
        "is not touched. Exit 0, 1 if Redis is unreachable, 2 on bad input (unknown name, bad "
        "times, --from after --to, fires in the future, more than --max)",
        _add_backfill,
    ),
    ("pause", "pause a schedule (kept in Redis, honoured by the leader)", _add_name),
    ("resume", "resume a paused schedule", _add_name),
]


def handler(command: str) -> Handler:
    """The offline commands are here; the Redis ones load redis, prometheus and the daemon,
    which `validate` and `next` do not need (they start about three times faster without)."""
    if command == "validate":
        return cmd_validate
    if command == "next":
        return cmd_next
    if command == "migrate":
        from scheduler.cli.migrate import cmd_migrate

        return cmd_migrate
    if command in ("worker", "dlq"):
        from scheduler.cli.worker import WORKER_COMMANDS

        return WORKER_COMMANDS[command]
    from scheduler.cli.run import REDIS_COMMANDS

    return REDIS_COMMANDS[command]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
        return handler(args.command)(args, settings)
    except ConfigError as error:
        for line in error.lines():
            print(line, file=sys.stderr)
        print(
            f"{error.source}: invalid ({plural(len(error.problems), 'problem')})", file=sys.stderr
        )
        return EXIT_USAGE
    except UsageError as error:
        print(f"cronlease {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
