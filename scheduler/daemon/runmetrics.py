"""What a batch did, turned into metrics and debug lines: aggregated, one counter update per
(schedule, outcome) and one histogram update per (write time, fire time), not one per run; and
the batch's totals for the leader's summary line (summary.py)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from scheduler.core.catchup import MISFIRE_COUNT_LIMIT
from scheduler.core.runs import DueFire, Outcome, Trigger, Written
from scheduler.core.ticker import Batch
from scheduler.core.timefmt import rfc3339_utc
from scheduler.core.wording import plural
from scheduler.ops.metrics import Metrics
from scheduler.targets.stream import run_id

log = logging.getLogger("scheduler.daemon")

# (outcome, reason) of the occurrences metric -> the summary line's name for it.
SUMMARY_NAMES = {
    ("enqueued", ""): "enqueued",
    ("caught_up", ""): "caught_up",
    ("deduplicated", ""): "deduplicated",
    ("skipped", "paused"): "skipped",
    ("failed", "queue_wrong_type"): "refused",
    ("fenced", ""): "fenced",
}


def count_written(
    metrics: Metrics, fires: Sequence[DueFire], written: Written, token: int
) -> Counter[str]:
    """Metrics for a written batch; its totals by summary name."""
    per_schedule = metrics.per_schedule
    outcomes: Counter[tuple[str, str, str]] = Counter()
    lags: Counter[tuple[float, int]] = Counter()
    last_fire: dict[str, int] = {}
    debug = log.isEnabledFor(logging.DEBUG)
    for fire, outcome, at in zip(fires, written.outcomes, written.enqueued_at_s, strict=True):
        name = fire.schedule.name if per_schedule else ""
        if outcome is Outcome.ENQUEUED:
            caught_up = fire.trigger is Trigger.CATCHUP
            outcomes[(name, "caught_up" if caught_up else "enqueued", "")] += 1
            lags[(at, fire.fire_ts)] += 1
            last_fire[name] = fire.fire_ts
        elif outcome is Outcome.DUPLICATE:
            outcomes[(name, "deduplicated", "")] += 1
        elif outcome is Outcome.PAUSED:
            outcomes[(name, "skipped", "paused")] += 1
        elif outcome is Outcome.REFUSED:
            outcomes[(name, "failed", "queue_wrong_type")] += 1
        else:
            outcomes[(name, "fenced", "")] += 1
        if debug:
            log.debug(
                "%s (%s)",
                outcome.value,
                fire.trigger.value,
                extra={
                    "schedule": fire.schedule.name,
                    "run_id": run_id(fire.schedule.name, rfc3339_utc(fire.fire_ts)),
                    "token": token,
                },
            )
    totals: Counter[str] = Counter()
    for (name, result, reason), count in outcomes.items():
        metrics.occurrences.labels(name, result, reason).inc(count)
        totals[SUMMARY_NAMES[(result, reason)]] += count
    for (at, fire_ts), count in lags.items():
        metrics.lag.observe(max(0.0, at - fire_ts), count)
    if per_schedule:
        for name, fire_ts in last_fire.items():
            metrics.last_fire.labels(name).set(fire_ts)
    return totals


def count_unwritten(metrics: Metrics, batch: Batch) -> set[str]:
    """Misfires and disabled schedules' fires; the schedules they concern."""
    for name, count in batch.misfired.items():
        metrics.occurrence(name, "misfired", count=count)
        log.warning(
            "dropped %s%s (older than the catch-up window or by policy)",
            "at least " if count >= MISFIRE_COUNT_LIMIT else "",
            plural(count, "missed run"),
            extra={"schedule": name, "event": "misfire"},
        )
    for name, count in batch.disabled.items():
        metrics.occurrence(name, "skipped", "disabled", count)
    return {*batch.misfired, *batch.disabled}
