"""Operator notices in the leader's log: runs that `trigger` and `backfill` (and the page's
"trigger now") wrote straight into a stream or a target's queue, without the leader, announced
on the events channel.

Only the leader logs them, so one line per notice appears in the cluster's logs, next to the
leader's own runs; followers hear them too and say nothing above DEBUG.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from scheduler.store.scripts import Notice, decode_notice

log = logging.getLogger("scheduler.daemon")


class EventLog:
    def __init__(self, leading_token: Callable[[], int | None]) -> None:
        # Read from the listener thread: the loop's view, a moment old at worst, which for a
        # log line during a failover means the old or the new leader writes it, or neither.
        self._leading_token = leading_token

    def on_notice(self, data: object) -> None:
        notice = decode_notice(data)
        if notice is None:
            log.debug("ignored a message on the events channel: %r", data)
            return
        token = self._leading_token()
        if token is None:
            log.debug("operator notice (not leading): %s %s", notice.event, dict(notice.fields))
            return
        text, extra = describe(notice)
        log.info("%s", text, extra={"token": token, **extra})


def describe(notice: Notice) -> tuple[str, dict[str, str]]:
    """A notice as one log line and its context fields (`schedule`, `run_id`, `event`)."""
    f = notice.fields
    by = f.get("by", "an operator")
    schedule = f.get("schedule", "?")
    if notice.event == "manual":
        if "job_id" in f:  # into another job system's queue (targets/operator.py)
            where = f"job {f['job_id']} of {f.get('target', '?')}"
        else:
            where = f"entry {f.get('entry_id', '?')} of {f.get('stream', '?')}"
        token = f.get("token", "?")
        text = f"manual run {f.get('run_id', '?')} enqueued by {by} ({where}, token {token})"
        return text, {"schedule": schedule, "run_id": f.get("run_id", ""), "event": "manual_run"}
    if notice.event == "backfill":
        # `cronlease backfill` announces {schedule, from, to, runs, by} once its runs are
        # written (cli/control.py announce_backfill); into another job system's queue also
        # {target, already}: how many of the fires were there already, not written again.
        span = f"{f.get('from', '?')} .. {f.get('to', '?')}"
        text = f"backfill of {schedule} ({span}): {f.get('runs', '?')} runs enqueued by {by}"
        if "target" in f:
            text += f" into {f['target']} ({f.get('already', '0')} already there)"
        return text, {"schedule": schedule, "event": "backfill"}
    details = ", ".join(f"{k}={v}" for k, v in sorted(f.items()))
    return f"operator notice {notice.event}: {details}", {"event": "operator_notice"}
