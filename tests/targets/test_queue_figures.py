"""Queue figures of target queues, through a real leader: /metrics, `status`, `validate`.

A real `cronlease run` on a real redis-server delivers every-second schedules into a cronlease
stream, an RQ queue in db 2 and a Celery queue. No worker runs, so the runs accumulate; once
they are paused (and the leader has counted a paused fire of each, so nothing more arrives),
the queue-length gauges scraped from /metrics and parsed by prometheus-client must equal the
target's own list length, read here with LLEN, and `cronlease status` (text and --json) and
`cronlease validate` must name each queue's target. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import redis as redis_py

from scheduler.cli.main import main
from tests.daemon.test_operate import scrape, start, value
from tests.daemons import KEYS, wait_for_leader
from tests.redis_server import RedisServer, wait_until

RQ_DB = 2
CONFIG = f"""\
queues:
  reports:
    target: rq
    db: {RQ_DB}
  mail:
    target: celery
    name: mail-tasks
  spare:
    target: sidekiq
schedules:
  tick:
    every: 1s
    job: test.tick
  report:
    every: 1s
    job: reports.build
    queue: reports
    args: {{format: pdf}}
  send:
    every: 1s
    job: mail.send
    queue: mail
    args: [1, 2]
"""
SCHEDULE_OF = {"default": "tick", "reports": "report", "mail": "send"}
TARGET_OF = {
    "default": "stream",
    "reports": f"rq queue 'reports' in db {RQ_DB}",
    "mail": "celery queue 'mail-tasks'",
}


def cli(*argv: str) -> str:
    """One CLI call in this process; its stdout (exit 0 asserted)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    assert code == 0, err.getvalue()
    return out.getvalue()


def table_rows(text: str, header_start: str) -> dict[str, dict[str, str]]:
    """The rows of the table whose header line starts with `header_start`, first column ->
    {column: cell}, cut at the header's column offsets (cells may hold single spaces)."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = lines[at]
    names = [name for name in header.split("  ") if name.strip()]
    offsets = [header.index(name) for name in names]
    rows: dict[str, dict[str, str]] = {}
    for line in lines[at + 1 :]:
        if not line.strip():
            break
        cells = [
            line[begin:end].strip()
            for begin, end in zip(offsets, [*offsets[1:], len(line)], strict=True)
        ]
        rows[cells[0]] = dict(zip([n.strip() for n in names], cells, strict=True))
    return rows


def test_target_queue_lengths_and_targets_in_metrics_status_and_validate(
    redis_server: RedisServer, redis: redis_py.Redis, tmp_path: Path
) -> None:
    config = tmp_path / "schedules.yaml"
    config.write_text(CONFIG)
    rq_db = redis_server.client(db=RQ_DB)

    def lengths() -> dict[str, int]:
        """Each queue's waiting runs, as its own system counts them."""
        return {
            "default": int(redis.xlen(KEYS.queue("default"))),
            "reports": int(rq_db.llen("rq:queue:reports")),
            "mail": int(redis.llen("mail-tasks")),
        }

    daemon, port = start("leader", config, redis_server, tmp_path)
    try:
        assert wait_for_leader(redis) == "leader"

        def three_runs_each() -> bool:
            return min(lengths().values()) >= 3

        wait_until(three_runs_each, 15, 0.05)
        # Paused, and a paused fire of each counted: from then on no queue grows.
        redis.sadd(KEYS.paused, *SCHEDULE_OF.values())

        def all_seen_paused() -> bool:
            samples = scrape(port)
            return all(
                value(
                    samples,
                    "cronlease_occurrences_total",
                    schedule=schedule,
                    outcome="skipped",
                    reason="paused",
                )
                >= 1
                for schedule in SCHEDULE_OF.values()
            )

        wait_until(all_seen_paused, 10, 0.05)
        frozen = lengths()

        # The gauges are refreshed every few seconds: poll until they show the frozen lengths.
        gauges: dict[str, float] = {}

        def gauges_caught_up() -> bool:
            samples = scrape(port)
            gauges.clear()
            gauges.update(
                {q: value(samples, "cronlease_queue_length", queue=q) for q in SCHEDULE_OF}
            )
            return gauges == frozen

        try:
            wait_until(gauges_caught_up, 15, 0.1)
        except AssertionError:
            raise AssertionError(f"gauges {gauges} != lengths {frozen}") from None
        assert lengths() == frozen, "a paused schedule wrote a run"
        samples = scrape(port)
        # A target queue has no consumer group or stream age here: those are its system's.
        for queue in ("reports", "mail"):
            assert not any(
                name in ("cronlease_queue_pending", "cronlease_queue_oldest_age_seconds")
                and ("queue", queue) in labels
                for name, labels in samples
            )
        info = {
            dict(labels)["queue"]: (dict(labels), sample)
            for (name, labels), sample in samples.items()
            if name == "cronlease_queue_target_info"
        }
        assert info == {
            "default": ({"queue": "default", "target": "stream", "name": "default", "db": ""}, 1),
            "mail": ({"queue": "mail", "target": "celery", "name": "mail-tasks", "db": ""}, 1),
            "reports": (
                {"queue": "reports", "target": "rq", "name": "reports", "db": str(RQ_DB)},
                1,
            ),
            "spare": ({"queue": "spare", "target": "sidekiq", "name": "spare", "db": ""}, 1),
        }

        common = ("--config", str(config), "--redis-url", redis_server.url)
        report = json.loads(cli("status", "--json", *common))
        queues = {q["name"]: q for q in report["queues"]}
        for queue, target in TARGET_OF.items():
            assert queues[queue]["target"] == target
            assert queues[queue]["length"] == frozen[queue]
        assert queues["default"]["stream"] == KEYS.queue("default")
        assert queues["reports"]["stream"] is None and queues["mail"]["stream"] is None
        assert queues["reports"]["pending"] is None and queues["reports"]["groups"] == []

        rows = table_rows(cli("status", *common), "QUEUE")
        assert {q: (row["RUNS GO TO"], row["LENGTH"]) for q, row in rows.items()} == {
            "default": (f"stream {KEYS.queue('default')}", str(frozen["default"])),
            "mail": (TARGET_OF["mail"], str(frozen["mail"])),
            "reports": (TARGET_OF["reports"], str(frozen["reports"])),
        }
    finally:
        daemon.kill()

    validated = cli("validate", "--config", str(config)).splitlines()
    assert validated[1:] == [
        f"  queue default: stream {KEYS.queue('default')} (1 schedule)",
        "  queue mail: celery queue 'mail-tasks' (1 schedule)",
        f"  queue reports: rq queue 'reports' in db {RQ_DB} (1 schedule)",
        "  queue spare: sidekiq queue 'spare' (0 schedules)",
    ]
