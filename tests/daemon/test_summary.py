"""The leader's log lines as values: the summary line (time is a value moved by hand), operator
notices, the misfire line. No Redis, no process, no waiting."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from scheduler.core.ticker import Batch
from scheduler.daemon.events import describe
from scheduler.daemon.runmetrics import count_unwritten
from scheduler.daemon.summary import IDLE_EVERY_S, SUMMARY_EVERY_S, Summary
from scheduler.ops.metrics import Metrics
from scheduler.store.scripts import Notice, decode_notice

T0 = 1000.0  # monotonic seconds at election


def no_fire() -> float | None:
    return None


def in_2h() -> float | None:
    return 2 * 3600 + 13 * 60


def started(counts: dict[str, int] | None = None) -> Summary:
    summary = Summary()
    summary.start(17, T0)
    if counts:
        summary.add(counts)
    return summary


def zeros(**counts: int) -> str:
    names = ("enqueued", "caught_up", "deduplicated", "misfired", "skipped", "fenced", "refused")
    return " ".join(f"{name}={counts.get(name, 0)}" for name in names)


CASES: list[tuple[str, Callable[[], Summary], float, Callable[[], float | None], str | None]] = [
    (
        "nothing is said before a minute has passed",
        lambda: started({"enqueued": 5}),
        59.9,
        no_fire,
        None,
    ),
    (
        "a minute with runs gives one line with every count",
        lambda: started({"enqueued": 58, "caught_up": 2, "deduplicated": 1}),
        60,
        no_fire,
        f"leader summary, last 1m0s: {zeros(enqueued=58, caught_up=2, deduplicated=1)}",
    ),
    ("an idle minute says nothing", started, 61, no_fire, None),
    ("an idle nine minutes say nothing", started, IDLE_EVERY_S - 1, no_fire, None),
    (
        "ten idle minutes say idle, with the next fire",
        started,
        IDLE_EVERY_S,
        in_2h,
        "leader summary, idle for 10m0s, nothing was due (next fire in 2h13m)",
    ),
    (
        "ten idle minutes with no fire ahead say so",
        started,
        IDLE_EVERY_S,
        no_fire,
        "leader summary, idle for 10m0s, nothing was due (no fire ahead)",
    ),
    (
        "misfires, skips, fences and refusals are counted too",
        lambda: started({"misfired": 100, "skipped": 3, "fenced": 2, "refused": 1}),
        75,
        no_fire,
        f"leader summary, last 1m15s: {zeros(misfired=100, skipped=3, fenced=2, refused=1)}",
    ),
    (
        "zeros alone are not something happening",
        lambda: started({"enqueued": 0}),
        61,
        no_fire,
        None,
    ),
    ("between terms nothing is said", Summary, IDLE_EVERY_S * 2, no_fire, None),
]


@pytest.mark.parametrize(
    ("case", "make", "after_s", "ahead", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_the_summary_line(
    case: str,
    make: Callable[[], Summary],
    after_s: float,
    ahead: Callable[[], float | None],
    expected: str | None,
) -> None:
    assert make().poll(T0 + after_s, ahead) == expected, case


def test_counts_are_since_the_last_line_and_lines_come_at_most_once_a_minute() -> None:
    summary = started({"enqueued": 10})
    assert summary.poll(T0 + 60, no_fire) is not None
    summary.add({"enqueued": 4})
    summary.add({"enqueued": 3, "deduplicated": 1})
    assert summary.poll(T0 + 119, no_fire) is None  # 59 s after the last line
    line = summary.poll(T0 + 120, no_fire)
    assert line == f"leader summary, last 1m0s: {zeros(enqueued=7, deduplicated=1)}"
    # After a line with counts, the idle clock starts again from that line.
    assert summary.poll(T0 + 120 + IDLE_EVERY_S - 1, no_fire) is None
    assert summary.poll(T0 + 120 + IDLE_EVERY_S, no_fire) is not None


def test_the_end_of_a_term_says_what_was_not_said_yet_and_only_that(
    caplog: pytest.LogCaptureFixture,
) -> None:
    summary = started({"enqueued": 12, "skipped": 2})
    with caplog.at_level(logging.INFO, logger="scheduler.daemon"):
        line = summary.end(T0 + 23, "stopping")
    assert line == f"leader summary, last 23s: {zeros(enqueued=12, skipped=2)} (stopping)"
    [record] = caplog.records
    assert (record.token, record.event) == (17, "summary")  # type: ignore[attr-defined]
    assert not summary.active
    assert summary.end(T0 + 30, "stopping") is None  # nothing left to say
    quiet = started()
    assert quiet.end(T0 + 5, "the term ended") is None  # an empty term ends silently


def test_the_summary_interval_is_a_minute() -> None:
    assert SUMMARY_EVERY_S == 60


def test_a_manual_run_notice_reads_as_one_line_with_its_context() -> None:
    notice = decode_notice(
        '{"event":"manual","run_id":"beat@2026-01-01T00:00:00Z#manual-ab12","schedule":"beat",'
        '"queue":"default","stream":"{cronlease}:queue:default","entry_id":"1-0","token":"7",'
        '"by":"operator-7"}'
    )
    assert notice is not None
    text, extra = describe(notice)
    assert text == (
        "manual run beat@2026-01-01T00:00:00Z#manual-ab12 enqueued by operator-7 "
        "(entry 1-0 of {cronlease}:queue:default, token 7)"
    )
    assert extra == {
        "schedule": "beat",
        "run_id": "beat@2026-01-01T00:00:00Z#manual-ab12",
        "event": "manual_run",
    }


def test_a_backfill_notice_and_an_unknown_one() -> None:
    fields = {"schedule": "beat", "from": "a", "to": "b", "runs": "3", "by": "ops"}
    assert (
        describe(Notice("backfill", fields))[0]
        == "backfill of beat (a .. b): 3 runs enqueued by ops"
    )
    assert describe(Notice("rename", {"x": "1"})) == (
        "operator notice rename: x=1",
        {"event": "operator_notice"},
    )


@pytest.mark.parametrize("data", ["not json", "[1, 2]", '{"no": "event"}', b"\xff"])
def test_what_is_not_a_notice_is_ignored(data: object) -> None:
    assert decode_notice(data) is None


def test_the_misfire_line_says_run_for_one_and_runs_for_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(CollectorRegistry(), per_schedule=False)
    batch = Batch(misfired={"one": 1, "three": 3, "many": 100})
    with caplog.at_level(logging.WARNING, logger="scheduler.daemon"):
        assert count_unwritten(metrics, batch) == {"one", "three", "many"}
    said = {r.schedule: r.getMessage() for r in caplog.records}  # type: ignore[attr-defined]
    assert said["one"].startswith("dropped 1 missed run (")
    assert said["three"].startswith("dropped 3 missed runs (")
    assert said["many"].startswith("dropped at least 100 missed runs (")
