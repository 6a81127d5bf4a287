"""ErrorEpisodes: what an operator reads while Redis stays unreachable, with time as a value.

The clock is injected, so an outage of an hour takes no time at all; the errors are the ones
redis-py raises, built directly (no server needed to say what their absence looks like).
"""

from __future__ import annotations

import itertools
import logging

import pytest
import redis

from scheduler.store.connection import REPEAT_GAPS_S, ErrorEpisodes

REFUSED = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")
TIMEOUT = redis.TimeoutError("Timeout reading from socket")


class Clock:
    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def episodes(clock: Clock) -> ErrorEpisodes:
    return ErrorEpisodes("redis", now=clock)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def fail_every(
    episodes: ErrorEpisodes, clock: Clock, step_s: float, until_s: float, error: Exception
) -> int:
    """Fail once every `step_s` until `until_s` on the clock, as a retry loop would; the count."""
    count = 0
    while clock.now_s < until_s:
        episodes.failed(error)
        count += 1
        clock.now_s += step_s
    return count


def test_the_first_failure_is_one_warning_and_the_next_ones_are_debug(
    episodes: ErrorEpisodes, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="scheduler.store.connection")

    fail_every(episodes, clock, 1.0, clock.now_s + 9.5, REFUSED)

    assert warnings_of(caplog) == [
        "redis: cannot reach Redis (refused or reset); retrying with backoff "
        f"(ConnectionError: {REFUSED})"
    ]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 9


def test_a_long_outage_is_repeated_at_growing_intervals_up_to_five_minutes(
    episodes: ErrorEpisodes, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.store.connection")
    start = clock.now_s
    times: list[float] = []
    while clock.now_s < start + 3600:
        before = len(caplog.records)
        episodes.failed(REFUSED)
        if len(caplog.records) > before:
            times.append(clock.now_s - start)
        clock.now_s += 0.5

    assert REPEAT_GAPS_S == (10.0, 30.0, 60.0, 120.0, 300.0)
    assert times[:7] == [0.0, 10.0, 40.0, 100.0, 220.0, 520.0, 820.0]
    # The cap holds for the rest of the hour: 16 lines, not one per retry (7200 of them).
    assert [b - a for a, b in itertools.pairwise(times)][4:] == [300.0] * 11
    assert len(times) == 16


def test_a_repeat_says_how_many_attempts_over_how_long_and_when_it_last_worked(
    episodes: ErrorEpisodes, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.store.connection")
    episodes.recovered()  # the last success
    clock.now_s += 2.0
    attempts = fail_every(episodes, clock, 0.5, clock.now_s + 10.0, REFUSED)
    caplog.clear()

    episodes.failed(REFUSED)  # 10 s after the first failure: the first reminder is due

    assert attempts == 20
    assert warnings_of(caplog) == [
        "redis: still failing: 21 attempts over 10s; last success 12s ago (cannot reach Redis "
        f"(refused or reset); retrying with backoff: ConnectionError: {REFUSED})"
    ]


def test_minutes_are_spelled_as_minutes(
    episodes: ErrorEpisodes, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.store.connection")
    episodes.recovered()
    clock.now_s += 5.0
    fail_every(episodes, clock, 1.0, clock.now_s + 220.5, REFUSED)  # 10+30+60+120 = 220 s

    assert warnings_of(caplog)[-1].startswith(
        "redis: still failing: 221 attempts over 3m40s; last success 3m45s ago ("
    )


def test_an_outage_from_the_start_says_there_was_no_success_yet(
    episodes: ErrorEpisodes, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.store.connection")
    clock.now_s += 3.0
    fail_every(episodes, clock, 1.0, clock.now_s + 11.0, REFUSED)

    last = warnings_of(caplog)[-1]
    assert "still failing: 11 attempts over 10s; no success yet (started 13s ago)" in last


def test_a_new_kind_of_error_is_said_at_once_and_the_reminder_waits_a_full_gap(
    episodes: ErrorEpisodes, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.store.connection")
    episodes.failed(REFUSED)
    clock.now_s += 8.0
    episodes.failed(TIMEOUT)  # same episode, new meaning: said now
    clock.now_s += 8.0
    episodes.failed(TIMEOUT)  # 16 s in, 8 s after the last WARNING: quiet
    clock.now_s += 2.0
    episodes.failed(TIMEOUT)  # a full gap after the last WARNING: the reminder

    messages = warnings_of(caplog)
    assert len(messages) == 3
    assert messages[1].startswith("redis: Redis did not answer in time")
    assert messages[2].startswith("redis: still failing: 4 attempts over 18s; no success yet")


def test_recovery_is_said_once_and_a_new_outage_starts_the_intervals_again(
    episodes: ErrorEpisodes, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.store.connection")
    fail_every(episodes, clock, 1.0, clock.now_s + 100.0, REFUSED)  # reminders at 10 and 40 s
    episodes.recovered()
    episodes.recovered()
    caplog.clear()
    clock.now_s += 30.0

    fail_every(episodes, clock, 1.0, clock.now_s + 10.5, REFUSED)

    messages = warnings_of(caplog)
    assert len(messages) == 2  # the first failure, then the 10 s reminder, not a 5 min gap
    assert messages[1].startswith("redis: still failing: 11 attempts over 10s; last success 40s")


def test_the_recovery_line_counts_the_failed_calls(
    episodes: ErrorEpisodes, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.store.connection")
    fail_every(episodes, clock, 0.25, clock.now_s + 3.0, REFUSED)

    episodes.recovered()

    assert warnings_of(caplog)[-1] == "redis: Redis is back after 12 failed calls over 3.0 s"
    assert not episodes.in_episode
