"""The ticker: what a leader has due, and how a batch moves it on. Pure: time is passed in.

Each test drives the ticker the way the daemon does (start, due, then settle or requeue) and
checks the fires that would be written, with no Redis and no clock.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

from scheduler.core.catchup import LATE_AFTER_S
from scheduler.core.config import parse_config
from scheduler.core.runs import Trigger
from scheduler.core.ticker import Batch, Ticker
from scheduler.core.timeline import jitter_ms

T0 = int(datetime(2026, 1, 7, 12, tzinfo=timezone.utc).timestamp())  # 12:00:00 UTC


def schedules(text: str) -> Ticker:
    return Ticker(parse_config(text).schedules)


def config(text: str):  # type: ignore[no-untyped-def]
    return parse_config(text).schedules


EVERY_SECOND = """
schedules:
  a: {every: 1s, job: j.a}
  b: {every: 1s, job: j.b, queue: other}
  c: {every: 1s, job: j.c}
"""


def fired(batch: Batch) -> list[tuple[str, int, str]]:
    return [(f.schedule.name, f.fire_ts, f.trigger.value) for f in batch.fires]


def drain(ticker: Ticker, until: float, step_s: float = 1.0) -> list[tuple[str, int, str]]:
    """Ask for due fires every `step_s` up to `until`, settling each batch as written."""
    out: list[tuple[str, int, str]] = []
    now = T0 + 0.0
    while now <= until:
        batch = ticker.due(now)
        out += fired(batch)
        ticker.settle()
        now += step_s
    return out


# -- the hand-over from ticker to write is all-or-nothing (issue: Redis restart in a lease) --


def test_a_batch_taken_but_never_settled_is_planned_again_by_the_next_due() -> None:
    # The daemon took the instant's batch, then failed before the write (the pool reconnected
    # and raised). Before the fix the heap was left empty: nothing fired ever again.
    ticker = schedules(EVERY_SECOND)
    ticker.start({"a": T0, "b": T0, "c": T0}, T0 + 0.5)
    taken = ticker.due(T0 + 1.0)
    assert {name for name, _, _ in fired(taken)} == {"a", "b", "c"}
    # ... the caller fails here: neither settle() nor requeue() ...
    again = ticker.due(T0 + 2.0)
    assert fired(again) == [
        (name, ts, "scheduled") for name in ("a", "b", "c") for ts in (T0 + 1, T0 + 2)
    ]


def test_settle_after_a_lost_batch_never_marks_its_fires_handled() -> None:
    # The other half of the defect: with other schedules still due, a later settle() moved the
    # stranded schedules' position past fires that were never written.
    text = EVERY_SECOND + "  slow: {every: 2s, job: j.slow}\n"
    ticker = schedules(text)
    ticker.start({}, T0 + 0.5)
    ticker.due(T0 + 1.0)  # a, b, c taken, then lost
    written = drain(ticker, T0 + 4)  # the next turns: `slow` is due, and settled, at T0 + 2
    for name in ("a", "b", "c"):
        assert [ts for n, ts, _ in written if n == name] == [T0 + 1, T0 + 2, T0 + 3, T0 + 4]
    assert [ts for n, ts, _ in written if n == "slow"] == [T0 + 2, T0 + 4]


def test_requeue_puts_a_batch_back_unchanged() -> None:
    ticker = schedules(EVERY_SECOND)
    ticker.start({}, T0 + 0.5)
    first = fired(ticker.due(T0 + 1.0))
    ticker.requeue()
    assert fired(ticker.due(T0 + 1.0)) == first


# -- a planning turn has a budget (issue: a takeover after a long outage) ----------------------


def test_a_budget_cuts_a_big_instant_and_the_next_turns_finish_it_exactly_once() -> None:
    names = [f"s{i}" for i in range(1000)]
    text = "schedules:\n" + "".join(f"  {n}: {{every: 1m, job: j}}\n" for n in names)
    ticker = schedules(text)
    ticker.start({n: T0 - 4 * 86400 for n in names}, T0 + 0.5)
    asks = itertools.count()
    written: list[tuple[str, int, str]] = []
    turns = 0
    while True:
        turns += 1
        # "Over budget" on every fifth question: at most a few hundred schedules per turn.
        batch = ticker.due(T0 + 0.5, lambda: next(asks) % 5 == 4)
        written += fired(batch)
        ticker.settle()
        if not batch.partial:
            break
    assert turns > 3
    assert len(written) == len(set(written)), "nothing twice"
    # Every schedule: the catch-up window's 60 fires (the cap is 100 per tick), oldest first.
    for name in names[::97]:
        fires = [ts for n, ts, _ in written if n == name]
        assert fires == list(range(T0 - 3540, T0 + 1, 60))


# -- a changed timeline restarts from now; lateness follows the policy ------------------------


def test_a_reload_that_changes_the_timeline_does_not_replay_the_new_timelines_past() -> None:
    # `every: 1h` -> `every: 1m` at 12:45 under `catchup: skip`: before the fix, the old
    # position (12:00) made the new timeline's 45 past minutes due as `scheduled` runs.
    ticker = schedules("schedules:\n  r: {every: 1h, job: j, catchup: skip}\n")
    ticker.start({"r": T0}, T0 + 0.5)
    now = T0 + 45 * 60 + 0.5
    assert fired(ticker.due(now)) == []
    changes = ticker.reconfigure(
        config("schedules:\n  r: {every: 1m, job: j, catchup: skip}\n"), now
    )
    assert changes.changed == ("r",)
    assert changes.restarted == {"r": T0 + 45 * 60}, "the new position must reach Redis"
    assert fired(ticker.due(now)) == []
    assert fired(ticker.due(now + 60)) == [("r", T0 + 46 * 60, "scheduled")]


def test_a_reload_that_changes_only_the_job_keeps_the_position() -> None:
    ticker = schedules("schedules:\n  r: {every: 1m, job: j}\n")
    ticker.start({"r": T0}, T0 + 0.5)
    changes = ticker.reconfigure(config("schedules:\n  r: {every: 1m, job: k}\n"), T0 + 90.5)
    assert changes.restarted == {}
    batch = ticker.due(T0 + 120.5)
    assert [(f.schedule.job, f.fire_ts) for f in batch.fires] == [("k", T0 + 60), ("k", T0 + 120)]


def test_added_and_re_enabled_schedules_are_restarted_from_now() -> None:
    ticker = schedules("schedules:\n  a: {every: 1m, job: j, enabled: false}\n")
    ticker.start({"a": T0 - 3600}, T0 + 0.5)
    changes = ticker.reconfigure(
        config("schedules:\n  a: {every: 1m, job: j}\n  n: {cron: '0 0 * * 1', job: j}\n"),
        T0 + 30.5,
    )
    assert changes.added == ("n",)
    assert changes.restarted == {"a": T0 + 30, "n": T0 + 30}
    assert fired(ticker.due(T0 + 60.5)) == [("a", T0 + 60, "scheduled")]


def test_a_stalled_loop_applies_the_window_to_its_late_fires() -> None:
    # Served since T0, then the loop stalled two hours: fires older than the window (1 h) are
    # misfires, the rest are caught up, and none is passed off as on time.
    ticker = schedules("schedules:\n  s: {every: 1m, job: j}\n")
    ticker.start({"s": T0}, T0 + 0.5)
    batch = ticker.due(T0 + 7200.5)
    assert batch.misfired == {"s": 60}
    catchup = Trigger.CATCHUP.value
    assert fired(batch) == [
        *(("s", ts, catchup) for ts in range(T0 + 3660, T0 + 7200, 60)),
        ("s", T0 + 7200, "scheduled"),  # half a second late: on time
    ]


def test_a_slightly_late_fire_is_still_on_time() -> None:
    ticker = schedules("schedules:\n  s: {every: 1m, job: j, catchup: skip}\n")
    ticker.start({"s": T0}, T0 + 0.5)
    late = LATE_AFTER_S - 1
    assert fired(ticker.due(T0 + 60 + late)) == [("s", T0 + 60, "scheduled")]


# -- jitter and new schedules at a takeover ---------------------------------------------------


def test_the_first_fire_after_a_takeover_keeps_its_jitter() -> None:
    ticker = schedules("schedules:\n  j: {every: 1h, job: j, jitter: 10m}\n")
    ticker.start({"j": T0}, T0 + 60.5)
    delay_s = jitter_ms("j", T0 + 3600, 600) / 1000
    assert delay_s > 0
    assert ticker.next_due() == T0 + 3600 + delay_s
    assert fired(ticker.due(T0 + 3600 + delay_s - 0.001)) == []
    assert fired(ticker.due(T0 + 3600 + delay_s)) == [("j", T0 + 3600, "scheduled")]


def test_a_missed_fire_at_a_takeover_goes_out_at_once() -> None:
    ticker = schedules("schedules:\n  j: {every: 1h, job: j, jitter: 10m}\n")
    ticker.start({"j": T0 - 3600}, T0 + 60.5)
    assert ticker.next_due() == T0
    assert fired(ticker.due(T0 + 60.5)) == [("j", T0, "catchup")]


def test_unseen_names_the_enabled_schedules_without_a_cursor_and_where_they_start() -> None:
    ticker = schedules(
        "schedules:\n  old: {every: 1m, job: j}\n  new: {cron: '0 9 * * 1', job: j}\n"
        "  paused-off: {every: 1m, job: j, enabled: false}\n"
    )
    ticker.start({"old": T0 - 60}, T0 + 30.5)
    assert ticker.unseen({"old": T0 - 60}) == {"new": T0 + 30}


def test_a_held_schedule_waits_without_moving_and_the_others_go_on() -> None:
    ticker = schedules(EVERY_SECOND)
    ticker.start({"a": T0, "b": T0, "c": T0}, T0 + 0.5)
    ticker.due(T0 + 1.0)
    ticker.settle(held={"b"}, retry_at=T0 + 5.0)
    batch = ticker.due(T0 + 4.0)
    assert {name for name, _, _ in fired(batch)} == {"a", "c"}
    ticker.settle()
    batch = ticker.due(T0 + 5.0)
    assert [(n, ts) for n, ts, _ in fired(batch) if n == "b"] == [
        ("b", T0 + ts) for ts in range(1, 6)
    ]
