"""The catch-up planner: what a leader enqueues and drops, around one fixed `now`.

Most cases use a schedule that fires every minute on the minute, `now` = 12:00:30.25 UTC on
2026-01-07, and a one-hour window, so every count is easy to check by hand:
- fires between 11:01 and 12:00 are inside the window (60 of them);
- a fire at 11:00:00 or earlier is older than the window.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from scheduler.core.catchup import MAX_CATCHUP_PER_TICK, MISFIRE_COUNT_LIMIT, Plan, plan
from scheduler.core.cronexpr import parse_cron
from scheduler.core.schedule import CatchupPolicy
from scheduler.core.timeline import AtTimeline, CronTimeline, EveryTimeline, Timeline

MINUTELY = EveryTimeline(60)
NOON = int(datetime(2026, 1, 7, 12, tzinfo=timezone.utc).timestamp())
NOW = NOON + 30.25  # 12:00:30.25
HOUR_S = 3600


def at(hh_mm: str, day: int = 7) -> int:
    """A UTC instant on January `day`, 2026, written as HH:MM or HH:MM:SS."""
    parts = [int(p) for p in hh_mm.split(":")]
    hour, minute, second = [*parts, 0][:3]
    return int(datetime(2026, 1, day, hour, minute, second, tzinfo=timezone.utc).timestamp())


def minutes(first: str, last: str) -> tuple[int, ...]:
    return tuple(range(at(first), at(last) + 1, 60))


FAR_BEHIND = at("09:00")  # 3 hours of missed fires: 120 too old, 60 in the window
JUST_BEHIND = at("11:58")  # two missed fires: 11:59 and 12:00
UP_TO_DATE = at("12:00")
AHEAD = at("12:05")  # a cursor written by a leader whose clock ran ahead


@pytest.mark.parametrize(
    ("policy", "after", "expected"),
    [
        # -- all ------------------------------------------------------------------------------
        pytest.param(
            "all", FAR_BEHIND,
            Plan(minutes("11:01", "12:00"), (), MISFIRE_COUNT_LIMIT, at("12:00"), at("12:01")),
            id="all, cursor far behind: the window's 60 fires caught up, 120 older misfired "
            "(counted up to the limit)",
        ),
        pytest.param(
            "all", JUST_BEHIND,
            Plan((at("11:59"), at("12:00")), (), 0, at("12:00"), at("12:01")),
            id="all, cursor just behind: both missed fires caught up",
        ),
        pytest.param(
            "all", None,
            Plan((), (), 0, NOON + 30, at("12:01")),
            id="all, no cursor: a new schedule starts from now",
        ),
        pytest.param(
            "all", UP_TO_DATE,
            Plan((), (), 0, at("12:00"), at("12:01")),
            id="all, cursor at the last fire: nothing to do",
        ),
        pytest.param(
            "all", AHEAD,
            Plan((), (), 0, AHEAD, at("12:06")),
            id="all, cursor ahead of now: nothing due, the cursor is kept",
        ),
        # -- latest -----------------------------------------------------------------------------
        pytest.param(
            "latest", FAR_BEHIND,
            Plan((at("12:00"),), (), MISFIRE_COUNT_LIMIT + 59, NOON + 30, at("12:01")),
            id="latest, cursor far behind: only 12:00 enqueued, 120 too old (counted up to "
            "the limit) and 59 in the window misfired",
        ),
        pytest.param(
            "latest", JUST_BEHIND,
            Plan((at("12:00"),), (), 1, NOON + 30, at("12:01")),
            id="latest, cursor just behind: 12:00 enqueued, 11:59 misfired",
        ),
        pytest.param(
            "latest", None,
            Plan((), (), 0, NOON + 30, at("12:01")),
            id="latest, no cursor: a new schedule starts from now",
        ),
        pytest.param(
            "latest", AHEAD,
            Plan((), (), 0, AHEAD, at("12:06")),
            id="latest, cursor ahead of now: nothing due, the cursor is kept",
        ),
        # -- skip -------------------------------------------------------------------------------
        pytest.param(
            "skip", FAR_BEHIND,
            Plan((), (), MISFIRE_COUNT_LIMIT, NOON + 30, at("12:01")),
            id="skip, cursor far behind: all 180 missed fires misfired (counted up to the limit)",
        ),
        pytest.param(
            "skip", JUST_BEHIND,
            Plan((), (), 2, NOON + 30, at("12:01")),
            id="skip, cursor just behind: both missed fires misfired",
        ),
        pytest.param(
            "skip", None,
            Plan((), (), 0, NOON + 30, at("12:01")),
            id="skip, no cursor: a new schedule starts from now",
        ),
        pytest.param(
            "skip", AHEAD,
            Plan((), (), 0, AHEAD, at("12:06")),
            id="skip, cursor ahead of now: nothing due, the cursor is kept",
        ),
    ],
)  # fmt: skip
def test_take_over_with_each_policy(
    policy: CatchupPolicy, after: int | None, expected: Plan
) -> None:
    # A leader that has just taken over: everything before now was missed.
    assert plan(MINUTELY, after, NOW, NOW, policy, HOUR_S) == expected


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        pytest.param(
            "all",
            Plan((at("11:56"), at("11:57"), at("11:58")), (at("11:59"), at("12:00")), 0,
                 at("12:00"), at("12:01")),
            id="all: the missed three caught up, the on-time two scheduled",
        ),
        pytest.param(
            "latest",
            Plan((at("11:58"),), (at("11:59"), at("12:00")), 2, at("12:00"), at("12:01")),
            id="latest: 11:58 caught up, two misfired, the on-time two scheduled",
        ),
        pytest.param(
            "skip",
            Plan((), (at("11:59"), at("12:00")), 3, at("12:00"), at("12:01")),
            id="skip: the missed three misfired, the on-time two still scheduled",
        ),
    ],
)  # fmt: skip
def test_fires_after_on_time_from_are_scheduled_whatever_the_policy(
    policy: CatchupPolicy, expected: Plan
) -> None:
    # Cursor at 11:55; this leader has served the schedule since 11:58:30.
    on_time_from = at("11:58:30")
    result = plan(MINUTELY, at("11:55"), NOW, on_time_from, policy, HOUR_S, late_after_s=HOUR_S)
    assert result == expected


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        pytest.param(
            "all", Plan(minutes("11:51", "12:00"), (), 50, at("12:00"), at("12:01")),
            id="all: the ten inside the window caught up, fifty older misfired",
        ),
        pytest.param(
            "latest", Plan((at("12:00"),), (), 59, at("12:00"), at("12:01")),
            id="latest: only 12:00, the rest misfired",
        ),
        pytest.param(
            "skip", Plan((), (), 60, at("12:00"), at("12:01")),
            id="skip: all sixty misfired",
        ),
    ],
)  # fmt: skip
def test_a_stalled_loops_late_fires_follow_the_policy_and_the_window(
    policy: CatchupPolicy, expected: Plan
) -> None:
    # The leader has served since 09:00 but its loop stalled for an hour: fires planned later
    # than late_after_s are treated as missed, as a failover would have treated them.
    result = plan(MINUTELY, at("11:00"), NOW, at("09:00"), policy, 10 * 60, late_after_s=30)
    assert result == expected


@pytest.mark.parametrize(
    ("late_s", "scheduled", "catchup"),
    [
        pytest.param(30.0, (at("12:00"),), (), id="30.25 s late with a 30.5 s threshold: on time"),
        pytest.param(30.5, (at("12:00"),), (), id="exactly at the threshold: on time"),
        pytest.param(29.0, (), (at("12:00"),), id="past the threshold: missed, caught up"),
    ],
)
def test_the_late_threshold_edge(
    late_s: float, scheduled: tuple[int, ...], catchup: tuple[int, ...]
) -> None:
    # 12:00:00 planned at 12:00:30.25, served since long before.
    result = plan(
        MINUTELY, at("11:59"), NOW, at("09:00"), "all", HOUR_S, late_after_s=late_s + 0.25
    )
    assert (result.scheduled, result.catchup) == (scheduled, catchup)


def test_the_cap_cuts_a_long_catch_up_and_the_next_tick_resumes_it() -> None:
    window_s = 4 * HOUR_S  # all 180 fires since 09:00 are inside the window
    first = plan(MINUTELY, FAR_BEHIND, NOW, NOW, "all", window_s)
    assert first.catchup == minutes("09:01", "10:40")
    assert len(first.catchup) == MAX_CATCHUP_PER_TICK
    assert first.scheduled == ()
    assert first.misfired == 0
    assert first.handled_through == at("10:40")
    assert first.next_fire == at("10:41")
    assert first.next_fire <= NOW, "a cut batch says the next fire is already due"

    second = plan(MINUTELY, first.handled_through, NOW, NOW, "all", window_s)
    assert second.catchup == minutes("10:41", "12:00")
    assert second.misfired == 0
    assert second.next_fire == at("12:01")
    assert first.due + second.due == minutes("09:01", "12:00"), "nothing lost, nothing twice"


def test_the_cap_counts_catch_up_and_on_time_fires_together() -> None:
    result = plan(
        MINUTELY,
        at("10:00"),
        NOW,
        at("11:00:30"),
        "all",
        4 * HOUR_S,
        cap=100,
        late_after_s=math.inf,
    )
    assert result.catchup == minutes("10:01", "11:00")
    assert result.scheduled == minutes("11:01", "11:40")
    assert len(result.due) == 100
    assert result.handled_through == at("11:40")
    assert result.next_fire == at("11:41")


def test_the_cap_also_cuts_on_time_fires() -> None:
    result = plan(
        MINUTELY, at("09:00"), NOW, at("08:00"), "skip", HOUR_S, cap=10, late_after_s=math.inf
    )
    assert result.scheduled == minutes("09:01", "09:10")
    assert result.next_fire == at("09:11")
    assert result.misfired == 0


@pytest.mark.parametrize("cap", [1, 7, 100])
def test_repeated_ticks_with_a_cap_enqueue_every_fire_once(cap: int) -> None:
    after: int | None = FAR_BEHIND
    enqueued: list[int] = []
    for _ in range(500):
        result = plan(MINUTELY, after, NOW, NOW, "all", 4 * HOUR_S, cap=cap)
        enqueued.extend(result.due)
        after = result.handled_through
        if result.next_fire is None or result.next_fire > NOW:
            break
    assert tuple(enqueued) == minutes("09:01", "12:00")


# -- the window's edges ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "policy", "catchup", "misfired"),
    [
        pytest.param(NOON, "all", minutes("11:58", "12:00"), 1,
                     id="all: a fire exactly one window old is still caught up"),
        pytest.param(NOON + 0.5, "all", minutes("11:59", "12:00"), 2,
                     id="all: half a second older than the window is a misfire"),
        pytest.param(NOON + 59, "all", minutes("11:59", "12:00"), 2,
                     id="all: the window slides with now"),
        pytest.param(NOON, "latest", (at("12:00"),), 3,
                     id="latest: fires in and out of the window all count as misfires"),
        pytest.param(NOON, "skip", (), 4, id="skip: every missed fire is a misfire"),
    ],
)  # fmt: skip
def test_window_edges(
    now: float, policy: CatchupPolicy, catchup: tuple[int, ...], misfired: int
) -> None:
    # Cursor at 11:56: missed fires 11:57, 11:58, 11:59, 12:00; window 2 minutes.
    result = plan(MINUTELY, at("11:56"), now, now + 1, policy, 120)
    assert result.catchup == catchup
    assert result.misfired == misfired
    assert result.scheduled == ()


def test_latest_drops_everything_when_even_the_latest_fire_is_too_old() -> None:
    hourly = EveryTimeline(HOUR_S)
    result = plan(hourly, at("06:00"), NOW, NOW, "latest", 20)
    # Fires 07:00 .. 12:00 were missed; the window only reaches back to 12:00:10.25.
    assert result.catchup == ()
    assert result.misfired == 6
    assert result.next_fire == at("13:00")


def test_misfire_counting_stops_at_its_limit_for_a_cursor_months_behind() -> None:
    months_ago = at("00:00", day=1) - 90 * 86400
    result = plan(MINUTELY, months_ago, NOW, NOW, "all", HOUR_S)
    assert result.misfired == MISFIRE_COUNT_LIMIT
    assert result.catchup == minutes("11:01", "12:00")
    nightly = CronTimeline(parse_cron("0 3 * * *", "nightly"), ZoneInfo("Europe/Berlin"))
    result = plan(nightly, at("02:00", day=1) - 5 * 365 * 86400, NOW, NOW, "skip", HOUR_S)
    assert result.misfired == MISFIRE_COUNT_LIMIT


# -- other timelines --------------------------------------------------------------------------


def test_nightly_job_missed_for_three_nights_catches_up_only_inside_its_window() -> None:
    nightly = CronTimeline(parse_cron("0 3 * * *", "nightly"), ZoneInfo("Europe/Berlin"))
    now = at("02:20", day=7) + 0.5  # 03:20:00.5 in Berlin
    result = plan(nightly, at("02:00", day=4), now, now, "all", HOUR_S)
    assert result.catchup == (at("02:00", day=7),)
    assert result.misfired == 2  # the nights of the 5th and 6th
    assert result.next_fire == at("02:00", day=8)


def test_a_missed_one_shot_is_caught_up_once_and_then_the_timeline_ends() -> None:
    one_shot = AtTimeline(at("11:30"))
    result = plan(one_shot, at("11:00"), NOW, NOW, "all", HOUR_S)
    assert result == Plan((at("11:30"),), (), 0, at("11:30"), None)
    again = plan(one_shot, result.handled_through, NOW + 60, NOW + 60, "all", HOUR_S)
    assert again == Plan((), (), 0, at("11:30"), None)


def test_a_future_one_shot_waits() -> None:
    one_shot = AtTimeline(at("18:00"))
    assert plan(one_shot, None, NOW, NOW, "all", HOUR_S) == Plan((), (), 0, NOON + 30, at("18:00"))


@pytest.mark.parametrize(
    "timeline",
    [
        pytest.param(EveryTimeline(60), id="every"),
        pytest.param(CronTimeline(parse_cron("* * * * *", "m"), ZoneInfo("UTC")), id="cron"),
    ],
)
def test_a_fire_exactly_at_now_is_due_and_on_time(timeline: Timeline) -> None:
    result = plan(timeline, at("11:59"), float(NOON), float(NOON), "skip", HOUR_S)
    assert result.scheduled == (NOON,)
    assert result.misfired == 0
    assert result.handled_through == NOON


def test_a_fire_just_before_a_fractional_on_time_from_was_missed() -> None:
    result = plan(MINUTELY, at("11:58"), NOW, at("11:59") + 0.5, "skip", HOUR_S, late_after_s=60)
    assert result.misfired == 1  # 11:59:00 is half a second before this leader began
    assert result.scheduled == (at("12:00"),)
