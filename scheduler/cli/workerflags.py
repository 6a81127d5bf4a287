"""`worker`'s own flags (and the common ones it and `dlq` take): parsing only, no Redis."""

from __future__ import annotations

import argparse

from scheduler.cli.settings import ALL_FLAGS, Flag, add_flags, duration_arg, int_arg

# `worker`'s own flags (scheduler/cli/worker.py), resolved like the common ones but kept out of
# Settings: no other command takes them. Its --import is a plain repeatable argument.
WORKER_FLAGS: tuple[Flag, ...] = (
    Flag(
        "--queues",
        "default",
        "the queues to run, highest priority first: a run of a later queue starts only when "
        "the earlier ones have none waiting (default: %(default)s)",
        metavar="Q1,Q2",
    ),
    Flag(
        "--weights",
        None,
        "read the queues by weight instead of strict priority, e.g. critical=6,default=3,low=1 "
        "(a queue left out weighs 1)",
        metavar="Q=W,...",
    ),
    Flag("--concurrency", "4", "jobs run at once, in threads (default: %(default)s)", int_arg),
    Flag(
        "--visibility-timeout",
        "30s",
        "a run unacknowledged and untouched this long (its worker died) is claimed by another "
        "worker; live runs are touched every third of it (default: %(default)s)",
        duration_arg,
        metavar="DURATION",
    ),
    Flag(
        "--grace",
        "30s",
        "on SIGTERM, how long running jobs may take to finish; what does not is left for "
        "another worker (default: %(default)s)",
        duration_arg,
        metavar="DURATION",
    ),
    Flag(
        "--group",
        "cronlease",
        "the consumer group the workers of a queue share (default: %(default)s)",
        metavar="NAME",
    ),
    Flag(
        "--idempotency-ttl",
        "7d",
        "how long a succeeded run id is remembered: a redelivery or backfill of it within that "
        "time is acknowledged without running (default: %(default)s)",
        duration_arg,
        metavar="DURATION",
    ),
)
# The common flags `worker` and `dlq` take: no lease, status page or WAIT settings.
WORKER_COMMON_FLAGS: tuple[str, ...] = tuple(
    option
    for option in ALL_FLAGS
    if option
    not in (
        "--lease-ttl", "--redis-wait-replicas", "--redis-wait-timeout", "--schedule-metrics",
        "--admin-token-file",
    )
)  # fmt: skip


def add_worker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--import",
        dest="imports",
        action="extend",
        nargs="+",
        metavar="MODULE",
        help="import these modules (dotted names, from the current folder too) and run the "
        "@job functions they define; repeatable, commas allowed [env CRONLEASE_IMPORT]",
    )
    add_flags(p, [flag.option for flag in WORKER_FLAGS], WORKER_FLAGS)
    for action in p._actions:  # the common flag, with the worker's own default
        if "--metrics-port" in action.option_strings:
            action.help = (
                "HTTP port for /metrics, /healthz, /readyz; 0 turns it off (default: 9465, "
                "beside `cronlease run`'s 9464) [env CRONLEASE_METRICS_PORT]"
            )
        if "--redis-timeout" in action.option_strings:
            action.help = "Redis socket timeout (default: 5s) [env CRONLEASE_REDIS_TIMEOUT]"


def add_dlq_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="dlq_action", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("queue", help="the queue (as in schedules.yaml and --queues)")
        add_flags(sub, WORKER_COMMON_FLAGS)
        return sub

    listing = action("list", "the dead runs of a queue, oldest first")
    listing.add_argument("--json", action="store_true", help="one JSON object per dead run")
    listing.add_argument(
        "--limit", type=int_arg, default=100, metavar="N", help="at most N (default: 100)"
    )
    replay = action(
        "replay", "put dead runs back on their queue's stream as first attempts (attempts reset)"
    )
    replay.add_argument("ids", nargs="*", metavar="ID", help="dead letters' ids (see `list`)")
    replay.add_argument("--all", action="store_true", help="every dead run of the queue")
    purge = action("purge", "delete dead runs of a queue: all, or the old ones")
    purge.add_argument(
        "--older-than",
        type=duration_arg,
        metavar="DURATION",
        help="only those that died more than DURATION ago (e.g. 7d)",
    )
