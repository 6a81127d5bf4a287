"""BullMQ (5.x and 6.x): a run as the standard job `Queue.add(name, data, {jobId})` stores.

The writes are those of BullMQ's addStandardJob-9.lua (and its includes storeJob,
addJobInTargetList, addBaseMarkerIfNeeded), identical in 5.81 and 6.7 for a job with no delay,
priority, parent or deduplication:
- `INCR <prefix>:<queue>:id` (always, even with a custom id);
- `HMSET <prefix>:<queue>:<jobId>` name, data, opts, timestamp, delay 0, priority 0
  (storeJob.lua; `opts` is the cjson of the client's options: `{"jobId": id, "attempts": 0}`
  as job.ts makes them for a plain add);
- `XADD <prefix>:<queue>:events * event added jobId <id> name <name>` (storeJob.lua, untrimmed);
- `LPUSH <prefix>:<queue>:wait <id>` and `ZADD <prefix>:<queue>:marker 0 "0"`, which wakes the
  Workers that block on the marker (addJobInTargetList.lua);
- `XADD <prefix>:<queue>:events MAXLEN ~ <maxLenEvents> * event waiting jobId <id>`.

The job id IS the run id, encoded by targets/runid.py (BullMQ refuses `:` in a custom id,
job.ts `validateOptions`); an encoded run id always holds `_40` (its `@`), so it is never the
all-digits id BullMQ refuses too. The guard is the job's own hash: BullMQ's own duplicate rule
(addStandardJob: `EXISTS <prefix>:<queue>:<jobId>` -> not added), so a run already in the queue
is never added twice. `data` is the schedule's args mapping plus a `cronlease` key holding the
run's fields (job.data.cronlease inside the Worker).

What unconditional writes cannot reproduce (addStandardJob reads before it writes):
- a paused queue (`paused` field in `<prefix>:<queue>:meta`): BullMQ 5 pushes to the `paused`
  list and adds no marker (getTargetQueueList.lua); BullMQ 6 pushes to `wait`, no marker
  (isQueuePausedOrMaxed.lua). A run pushed onto `wait` of a paused BullMQ 5 queue is LOST when
  the queue resumes, if a `paused` list exists (pause-7.lua moves wait there at pause, and adds
  land there): resume does `RENAME paused wait`, overwriting our list. `paused_writes` is that
  branch (correct for 6 too: 6's resume moves a legacy `paused` list onto `wait`); the enqueue
  script chooses it per run by `HEXISTS <meta> paused` (Writes.when_field).
- a queue at its global concurrency: BullMQ adds no marker; ours wakes a Worker once, which
  finds the queue maxed and waits again (moveToActive.lua: harmless).
- `opts.maxLenEvents` in the meta hash: BullMQ sets 10000 when absent and trims `waiting`
  events to it; we trim to the option `max_len_events` (default 10000) and leave the meta hash
  to the Queue (its constructor writes it) and the Workers' scripts (getOrSetMaxEvents.lua).
- a duplicate: BullMQ still INCRs `id` and XADDs `duplicated`; the guard writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from scheduler.core.queues import QueueSpec
from scheduler.targets.encoding import Length, Op, Run, Writes
from scheduler.targets.runid import encode_run_id

# getOrSetMaxEvents.lua: the events stream's approximate length when the Queue set none.
DEFAULT_MAX_LEN_EVENTS = 10000


class BullmqEncoder:
    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        # QueueKeys.getKeys (queue-keys.ts): every key is `<prefix>:<queue name>:<suffix>`.
        self._base = f"{spec.options.get('prefix', 'bull')}:{spec.name}:"
        self._max_len_events = int(spec.options.get("max_len_events", DEFAULT_MAX_LEN_EVENTS))

    def job_id(self, run_id: str) -> str:
        return encode_run_id(run_id)

    def key(self, suffix: str) -> str:
        """One of the queue's keys (`wait`, `meta`, `events`, ...) or a job's hash (its id)."""
        return self._base + suffix

    def lengths(self) -> Sequence[Length]:
        # Waiting jobs: the wait list (and BullMQ 5's paused list, while the queue is paused).
        return (Length(self.key("wait"), "list"), Length(self.key("paused"), "list"))

    def data(self, run: Run) -> str:
        """The job's data: the args mapping (BullMQ has no positional args: config refuses a
        list for this target) with the run's fields under `cronlease`."""
        data = dict(run.args) if not isinstance(run.args, tuple) else {}
        data["cronlease"] = run.meta()
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    def writes(self, run: Run) -> Writes:
        """The writes for a queue that is not paused (BullMQ 5 and 6 alike), and, chosen by
        the script at the instant when the queue's meta hash has `paused`, paused_writes'."""
        return Writes(
            ops=self._ops(run, paused=False),
            guard=self.key(self.job_id(run.run_id)),
            when_field=(self.key("meta"), "paused"),
            when_ops=self._ops(run, paused=True),
        )

    def paused_writes(self, run: Run) -> Writes:
        """The writes for a queue whose meta hash has `paused`: the branch addStandardJob takes
        then in BullMQ 5 (getTargetQueueList.lua: the `paused` list, no marker). BullMQ 6 reads
        that list too: its resume (pause-7.lua) moves a legacy `paused` list onto `wait`."""
        return Writes(ops=self._ops(run, paused=True), guard=self.key(self.job_id(run.run_id)))

    def _ops(self, run: Run, paused: bool) -> tuple[Op, ...]:
        job_id = self.job_id(run.run_id)
        events = self.key("events")
        # job.ts: `timestamp` is the add's Date.now(), in milliseconds.
        timestamp = round(run.enqueued_at * 1000)
        # What job.ts hands the script for `add(name, data, {jobId})`: the id and attempts 0.
        opts = json.dumps({"jobId": job_id, "attempts": 0}, separators=(",", ":"))
        stored: tuple[Op, ...] = (
            ("INCR", self.key("id")),
            (
                "HSET",
                self.key(job_id),
                "name",
                run.job,
                "data",
                self.data(run),
                "opts",
                opts,
                "timestamp",
                timestamp,
                "delay",
                0,
                "priority",
                0,
            ),
            ("XADD", events, "*", "event", "added", "jobId", job_id, "name", run.job),
        )
        listed: tuple[Op, ...] = (
            (("LPUSH", self.key("paused"), job_id),)
            if paused
            else (("LPUSH", self.key("wait"), job_id), ("ZADD", self.key("marker"), 0, "0"))
        )
        waiting: Op = (
            "XADD",
            events,
            "MAXLEN",
            "~",
            self._max_len_events,
            "*",
            "event",
            "waiting",
            "jobId",
            job_id,
        )
        return (*stored, *listed, waiting)
