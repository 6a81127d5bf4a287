"""The catch-up planner: given where a schedule stands and `now`, what to enqueue and what to drop.

Pure. The leader loop calls `plan` whenever a schedule's next fire is due, at take-over and in
steady state alike, so there is one code path for both.

Vocabulary:
- `after`: the last fire already handled (enqueued or dropped); None for a schedule never seen,
  which starts from now.
- `on_time_from`: when this leader began to serve the schedule. Fires before it were missed
  (while no one led) and follow the policy.
- `late_after_s`: a fire from `on_time_from` on that is planned more than this late (a stalled
  loop, a long Redis outage the lease survived) was missed too: the policy and the window apply
  to it as they would have after a failover. Fires later than that are on time: enqueued.
- `window_s`: a missed fire older than `now - window_s` is a misfire, whatever the policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scheduler.core.schedule import CatchupPolicy
from scheduler.core.timeline import Timeline

MAX_CATCHUP_PER_TICK = 100
# Counting misfires steps through fires one by one for cron (about 60 us a step); past this many
# we stop counting and report this number ("at least"): a takeover after days of outage plans
# thousands of schedules, and 1,000 steps each kept the loop past its watchdog.
MISFIRE_COUNT_LIMIT = 100
# How late a fire may be planned and still count as on time (Quartz's misfireThreshold is 60 s).
# Above any blip a lease survives (a renewal every TTL/3), below any catch-up window worth
# having; the daemon never plans on-time fires anywhere near this late unless its loop stalled.
LATE_AFTER_S = 30.0


@dataclass(frozen=True, slots=True)
class Plan:
    catchup: tuple[int, ...]  # missed fires to enqueue now, oldest first (trigger `catchup`)
    scheduled: tuple[int, ...]  # on-time fires due now, oldest first (trigger `scheduled`)
    misfired: int  # missed fires dropped by the policy or the window
    handled_through: int  # the new `after`: every fire up to here is decided
    next_fire: int | None  # the first undecided fire; may be <= now when the cap cut a batch

    @property
    def due(self) -> tuple[int, ...]:
        return self.catchup + self.scheduled


def plan(
    timeline: Timeline,
    after: int | None,
    now: float,
    on_time_from: float,
    policy: CatchupPolicy,
    window_s: int,
    cap: int = MAX_CATCHUP_PER_TICK,
    late_after_s: float = LATE_AFTER_S,
) -> Plan:
    now_s = math.floor(now)
    if after is None:
        after = now_s
    # Fires f with after < f < missed_until were missed; those below window_from are too old.
    missed_until = min(math.ceil(max(on_time_from, now - late_after_s)), now_s + 1)
    window_from = math.ceil(now - window_s)
    position = after
    misfired = 0
    catchup: list[int] = []

    if after + 1 < missed_until:
        too_old_until = min(window_from, missed_until)
        if policy == "skip":
            too_old_until = missed_until
        if after + 1 < too_old_until:
            misfired += timeline.count_between(after, too_old_until, MISFIRE_COUNT_LIMIT)
            position = max(position, too_old_until - 1)
        if policy == "all":
            fire = timeline.next_after(position)
            while fire is not None and fire < missed_until:
                if len(catchup) == cap:
                    return Plan(tuple(catchup), (), misfired, position, fire)
                catchup.append(fire)
                position = fire
                fire = timeline.next_after(fire)
        elif policy == "latest":
            latest = timeline.prev_before(missed_until)
            if latest is not None and latest > position:
                misfired += timeline.count_between(position, latest, MISFIRE_COUNT_LIMIT)
                catchup.append(latest)
            position = max(position, missed_until - 1)

    scheduled: list[int] = []
    fire = timeline.next_after(position)
    while fire is not None and fire <= now_s:
        if len(scheduled) + len(catchup) == cap:
            break
        scheduled.append(fire)
        position = fire
        fire = timeline.next_after(fire)
    return Plan(tuple(catchup), tuple(scheduled), misfired, position, fire)
