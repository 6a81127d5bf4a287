"""`cronlease dlq list|replay|purge QUEUE`: the dead runs of a queue, read and put back.

Like `status`, it reaches Redis with `--redis-url` or the running embedded Redis, never starting
one; Redis trouble is one line on stderr and exit 1 (cli/control.py's with_redis).
"""

from __future__ import annotations

import argparse
import json

from redis import Redis

from scheduler.cli.control import with_redis
from scheduler.cli.settings import Settings
from scheduler.cli.util import UsageError, table
from scheduler.core.wording import plural
from scheduler.store.keys import Keys
from scheduler.store.workqueue import Entry, WorkQueue
from scheduler.worker.runs import ATTEMPT_FIELDS, DEAD_FIELDS

EXIT_OK = 0
EXIT_USAGE = 2
REPLAY_CHUNK = 500
ERROR_COLUMN = 60


def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    action = args.dlq_action
    if action == "replay" and bool(args.ids) == bool(args.all):
        raise UsageError("dlq replay: give the dead letters' ids, or --all (not both)")
    if action == "list" and args.limit < 1:
        raise UsageError("dlq list: --limit must be at least 1")

    def run(client: Redis, keys: Keys, url: str) -> int:
        del url
        # The group name does not matter here: these calls touch no consumer group.
        work = WorkQueue(client, keys, group="")
        if action == "list":
            return list_dead(work, args.queue, args.limit, args.json)
        if action == "replay":
            return replay(work, args.queue, list(args.ids), args.all)
        older_ms = None if args.older_than is None else round(args.older_than * 1000)
        count = work.purge(args.queue, older_ms)
        print(f"purged {plural(count, 'dead run')} of {args.queue}")
        return EXIT_OK

    return with_redis("dlq", settings, run)


def list_dead(work: WorkQueue, queue: str, limit: int, as_json: bool) -> int:
    entries = work.dead(queue, limit + 1)
    shown, more = entries[:limit], len(entries) > limit
    if as_json:
        for entry_id, fields in shown:
            print(json.dumps({"id": entry_id, **fields}))
        return EXIT_OK
    if not shown:
        print(f"no dead runs in {work.keys.dead_letters(queue)}")
        return EXIT_OK
    print(
        "\n".join(
            table(
                ("ID", "RUN ID", "JOB", "ATTEMPTS", "REASON", "LAST FAILURE", "ERROR"),
                [row(e) for e in shown],
            )
        )
    )
    if more:
        print(f"(more than {limit}: --limit N shows more)")
    return EXIT_OK


def row(entry: Entry) -> tuple[str, ...]:
    entry_id, f = entry
    error = f"{f.get('error_class', '')}: {f.get('error_message', '')}".replace("\n", " ")
    if len(error) > ERROR_COLUMN:
        error = error[: ERROR_COLUMN - 3] + "..."
    return (
        entry_id,
        f.get("run_id", "?"),
        f.get("job", "?"),
        f.get("attempts", "?"),
        f.get("reason", "?"),
        f.get("last_failed_at", "?"),
        error,
    )


def replay(work: WorkQueue, queue: str, ids: list[str], replay_all: bool) -> int:
    drop = (*ATTEMPT_FIELDS, *DEAD_FIELDS)
    stream = work.keys.queue(queue)
    if replay_all:
        # Up to the newest dead letter now: runs that die while this replays wait for the next.
        end = work.last_dead_id(queue)
        replayed = 0
        while end is not None:
            chunk = [entry_id for entry_id, _ in work.dead(queue, REPLAY_CHUNK, "-", end)]
            if not chunk:
                break
            replayed += sum(1 for new in work.replay(queue, chunk, drop) if new)
        print(f"replayed {plural(replayed, 'dead run')} of {queue} to {stream} as first attempts")
        return EXIT_OK
    results = work.replay(queue, ids, drop)
    missing = [entry_id for entry_id, new in zip(ids, results, strict=True) if not new]
    done = len(ids) - len(missing)
    print(f"replayed {plural(done, 'dead run')} of {queue} to {stream} as first attempts")
    if missing:
        print(f"not in {work.keys.dead_letters(queue)}: {', '.join(missing)}")
        return EXIT_USAGE
    return EXIT_OK
