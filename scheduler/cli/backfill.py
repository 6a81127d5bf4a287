"""`cronlease backfill`: which past fires of a range it re-offers, and how it writes and says so.

A backfill re-offers every fire of one schedule from `--from` to `--to`, both ends included,
oldest first, each with the run id its scheduled run had (`<schedule>@<fire time>`): a worker
that deduplicates by run id runs only the fires it never ran, so backfilling a range twice, or
one that overlaps what the leader enqueued, is harmless for it. The
cursor is neither read nor moved: the leader's own catch-up goes on as if nothing happened.

The plan (the fires, the refusals) is a function of the config and the two instants, computed
before Redis is reached; only "not in Redis's future" needs Redis's clock. Runs are written in
chunks of BACKFILL_CHUNK, each one atomic script call (BACKFILL in store/lua/enqueue.py), so
one call never blocks Redis for long; a backfill cut short by a Redis error can be run again as
it was. A queue delivered into another job system gets its runs in that system's format instead
(targets/operator.py, WRITE_RUNS); a fire whose job is still there (RQ, arq and BullMQ keep a
job's key) is not written again, and the output says which were "already there".
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import timezone

import redis

from scheduler.cli.util import UsageError
from scheduler.core.schedule import Schedule
from scheduler.core.timefmt import parse_instant, rfc3339_local, rfc3339_utc
from scheduler.core.wording import plural
from scheduler.store.scripts import Scripts
from scheduler.targets.operator import OperatorRefused, OperatorWriter, TargetRun
from scheduler.targets.stream import run_id

# 500 XADDs take Redis about a millisecond: short enough not to stall the leader's enqueues.
BACKFILL_CHUNK = 500


@dataclass(frozen=True)
class Plan:
    schedule: Schedule
    from_ts: int
    to_ts: int
    fires: list[int]  # oldest first, from_ts <= fire <= to_ts

    @property
    def span(self) -> str:
        return f"{rfc3339_utc(self.from_ts)} .. {rfc3339_utc(self.to_ts)}"


@dataclass(frozen=True)
class Written:
    stream: str
    entries: list[tuple[int, str, str]]  # (fire_ts, entry id, token) per run, oldest first


def parse_time(option: str, text: str) -> int:
    try:
        return int(parse_instant(text, timezone.utc).timestamp())
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None


def plan_backfill(schedule: Schedule, from_text: str, to_text: str, max_runs: int) -> Plan:
    """The fires to re-offer; UsageError (exit 2) for bad times, a reversed range or too many."""
    if max_runs < 1:
        raise UsageError(f"--max must be at least 1, not {max_runs}")
    from_ts = parse_time("--from", from_text)
    to_ts = parse_time("--to", to_text)
    if from_ts > to_ts:
        raise UsageError(
            f"--from {rfc3339_utc(from_ts)} is after --to {rfc3339_utc(to_ts)}; "
            "give the older instant as --from"
        )
    fires: list[int] = []
    # Inclusive at both ends: "strictly after from - 1" is "at or after from" in whole seconds.
    fire = schedule.timeline.next_after(from_ts - 1)
    while fire is not None and fire <= to_ts:
        if len(fires) == max_runs:  # stop counting here: a year of 1s fires is 31 million
            raise UsageError(
                f"{schedule.name} fires more than {max_runs} times from {rfc3339_utc(from_ts)} "
                f"to {rfc3339_utc(to_ts)}; nothing was enqueued. Narrow the range, or raise "
                "--max if you mean it"
            )
        fires.append(fire)
        fire = schedule.timeline.next_after(fire)
    return Plan(schedule, from_ts, to_ts, fires)


def refuse_future(plan: Plan, now_s: int) -> None:
    """A fire not yet due would reach workers early under the id its scheduled run will have,
    and a deduplicating worker would then skip that real run: backfill is for the past."""
    if plan.fires and plan.fires[-1] > now_s:
        raise UsageError(
            f"--to {rfc3339_utc(plan.to_ts)} includes fires after Redis's clock "
            f"({rfc3339_utc(now_s)}); backfill re-offers past fires only (use `trigger` to run "
            "one now); nothing was enqueued"
        )


def write_backfill(scripts: Scripts, plan: Plan, stream: str, by: str) -> Written:
    """Every fire of the plan into `stream`, one atomic BACKFILL call per chunk."""
    s = plan.schedule
    fields = (s.name, s.job, s.args_json, s.queue, by)
    entries: list[tuple[int, str, str]] = []
    for start in range(0, len(plan.fires), BACKFILL_CHUNK):
        chunk = plan.fires[start : start + BACKFILL_CHUNK]
        try:
            reply = scripts.backfill(stream, fields, chunk)
        except redis.RedisError:
            if entries:  # the caller prints the error itself; this says what is already done
                print(
                    f"cronlease backfill: {len(entries)} of {plural(len(plan.fires), 'run')} "
                    "were enqueued before the error below; running the same backfill again "
                    "re-offers them under the same run ids, so a deduplicating worker runs "
                    "each fire once",
                    file=sys.stderr,
                )
            raise
        entries += [(f, e, reply.token) for f, e in zip(chunk, reply.entry_ids, strict=True)]
    return Written(stream, entries)


@dataclass(frozen=True)
class WrittenIntoTarget:
    target: str  # "rq queue 'jobs'"
    runs: list[TargetRun]  # oldest first; `written` False: already there


def write_into_target(writer: OperatorWriter, plan: Plan, by: str) -> WrittenIntoTarget:
    """Every fire of the plan into the queue's target, one atomic WRITE_RUNS call per chunk."""
    done: list[TargetRun] = []
    try:
        for chunk in writer.backfill(plan.schedule, plan.fires, by, BACKFILL_CHUNK):
            done += chunk
    except (redis.RedisError, OperatorRefused):
        if done:
            print(
                f"cronlease backfill: {len(done)} of {plural(len(plan.fires), 'run')} were "
                f"written into {writer.target} (or found there) before the error below; "
                "running the same backfill again skips those still there",
                file=sys.stderr,
            )
        raise
    return WrittenIntoTarget(writer.target, done)


def target_lines(plan: Plan, written: WrittenIntoTarget, as_json: bool) -> list[str]:
    s = plan.schedule
    if as_json:
        return [
            _json(s, r.fire_ts, r.token, target=(written.target, r.job_id, r.written))
            for r in written.runs
        ]
    new = [r for r in written.runs if r.written]
    there = [r for r in written.runs if not r.written]
    count = _runs(plan) if not there else f"{len(new)} of {_runs(plan)}"
    line = f"enqueued {count} of {s.name} ({plan.span}) into {written.target}"
    if new:
        tokens = _span(new[0].token, new[-1].token)
        line += f" with token {tokens}: {_span(new[0].run_id, new[-1].run_id)}"
    lines = [line]
    if there:
        lines.append(
            f"{len(there)} already there (their job is still in {written.target}), not written "
            f"again: {_span(there[0].run_id, there[-1].run_id)}"
        )
    return lines


def _span(first: str, last: str) -> str:
    return first if first == last else f"{first} .. {last}"


def dry_run_lines(plan: Plan, stream: str, token: str, as_json: bool) -> list[str]:
    s = plan.schedule
    if as_json:
        return [_json(s, fire, token) for fire in plan.fires]
    lines = [
        f"{run_id(s.name, rfc3339_utc(fire))}  {rfc3339_local(fire, s.timezone)} {s.timezone.key}"
        for fire in plan.fires
    ]
    summary = f"dry run: would enqueue {_runs(plan)} of {s.name} ({plan.span}) into {stream}"
    return [*lines, f"{summary} with token {token}; nothing was written"]


def written_lines(plan: Plan, written: Written, as_json: bool) -> list[str]:
    s = plan.schedule
    if as_json:
        return [_json(s, f, token, written.stream, entry) for f, entry, token in written.entries]
    first, last = written.entries[0], written.entries[-1]
    ids = run_id(s.name, rfc3339_utc(first[0]))
    if len(written.entries) > 1:
        ids += f" .. {run_id(s.name, rfc3339_utc(last[0]))}"
    tokens = first[2] if first[2] == last[2] else f"{first[2]} .. {last[2]}"
    return [
        f"enqueued {_runs(plan)} of {s.name} ({plan.span}) into {written.stream} with token "
        f"{tokens}: {ids}"
    ]


def nothing_line(plan: Plan) -> str:
    return f"{plan.schedule.name} has no fire in {plan.span} (inclusive): nothing to backfill"


def _runs(plan: Plan) -> str:
    return plural(len(plan.fires), "backfill run")


def _json(
    schedule: Schedule,
    fire: int,
    token: str,
    stream: str | None = None,
    entry: str | None = None,
    target: tuple[str, str, bool] | None = None,  # where, job id, written (else already there)
) -> str:
    fire_time = rfc3339_utc(fire)
    row: dict[str, str | int] = {
        "schedule": schedule.name,
        "run_id": run_id(schedule.name, fire_time),
        "fire_time": fire_time,
        "local_time": rfc3339_local(fire, schedule.timezone),
        "fire_ts": fire,
        "trigger": "backfill",
        "token": token,
    }
    if stream is not None and entry is not None:
        row |= {"stream": stream, "entry_id": entry}
    if target is not None:
        where, job_id, written = target
        row |= {"target": where, "job_id": job_id}
        row["result"] = "enqueued" if written else "already there"
    return json.dumps(row)
