"""The worker's pure parts: backoff bounds, verdicts, option durations, jobs and their args."""

from __future__ import annotations

import random

import pytest

from scheduler.worker import GiveUp, job
from scheduler.worker.engine import read_order
from scheduler.worker.execute import decide
from scheduler.worker.jobs import MARK, JobSpec, bind_args
from scheduler.worker.policy import backoff_bound_s, retry_delay_s, seconds
from scheduler.worker.runs import dead_letter, next_attempt, read_run


def spec_of(func: object) -> JobSpec:
    specs: tuple[JobSpec, ...] = getattr(func, MARK)
    return specs[0]


@job("p.retrying", retries=2, backoff_base="1s", backoff_cap="3s", give_up_on=(KeyError,))
def retrying(run: object, a: int = 0) -> None:
    del run, a


@pytest.mark.parametrize(
    ("attempt", "bound"),
    [pytest.param(1, 1.0, id="first failure waits up to the base"),
     pytest.param(2, 2.0, id="then twice that"),
     pytest.param(3, 3.0, id="capped"),
     pytest.param(2000, 3.0, id="a huge attempt does not overflow")],
)  # fmt: skip
def test_the_backoff_bound_doubles_per_attempt_up_to_the_cap(attempt: int, bound: float) -> None:
    assert backoff_bound_s(attempt, 1.0, 3.0) == bound
    assert retry_delay_s(attempt, 1.0, 3.0, 0.0) == 0.0
    assert retry_delay_s(attempt, 1.0, 3.0, 0.5) == bound / 2


def test_verdicts_follow_the_jobs_policy() -> None:
    spec = spec_of(retrying)
    assert decide(spec, 1, None, 0.5).outcome == "succeeded"
    assert decide(spec, 1, RuntimeError(), 0.5).outcome == "retried"
    assert decide(spec, 1, RuntimeError(), 0.5).delay_s == 0.5
    assert decide(spec, 2, RuntimeError(), 0.5).outcome == "retried"
    assert decide(spec, 3, RuntimeError(), 0.5).reason == "retries_exhausted"
    assert decide(spec, 1, KeyError("x"), 0.5).reason == "give_up"
    assert decide(spec, 1, GiveUp("no"), 0.5).reason == "give_up"


@pytest.mark.parametrize(
    ("text", "value"),
    [("1s", 1.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25), ("0.2", 0.2), (3, 3.0)],
)
def test_job_option_durations(text: object, value: float) -> None:
    assert seconds(text, "x") == value


def test_bad_job_options_are_refused_when_the_module_loads() -> None:
    with pytest.raises(ValueError, match="retries"):
        job("x", retries=-1)
    with pytest.raises(ValueError, match="backoff_base"):
        job("x", backoff_base="soon")
    with pytest.raises(ValueError, match="give_up_on"):
        job("x", give_up_on=("ValueError",))  # type: ignore[arg-type]


def test_args_bind_as_keywords_or_positions_and_run_only_when_asked() -> None:
    spec = spec_of(retrying)
    assert bind_args(spec, {"a": 1}, "RUN").arguments == {"run": "RUN", "a": 1}
    assert bind_args(spec, None, "RUN").arguments == {"run": "RUN"}
    with pytest.raises(TypeError, match="do not fit"):
        bind_args(spec, {"b": 1}, "RUN")
    with pytest.raises(TypeError, match="run parameter"):
        bind_args(spec, {"run": 1}, "RUN")
    with pytest.raises(TypeError, match="mapping or a list"):
        bind_args(spec, 7, "RUN")


def test_the_attempt_travels_with_the_run_and_a_replay_drops_it() -> None:
    fields = {"run_id": "s@t", "job": "j", "args": "[1]", "attempt": "2", "retry_of": "1-0"}
    nxt = next_attempt(fields, "5-0", 1_700_000_000.0)
    assert (nxt["attempt"], nxt["retry_of"]) == ("3", "5-0")
    assert nxt["first_failed_at"] == "2023-11-14T22:13:20.000Z"
    run = read_run(nxt, "6-0", "default")
    assert (run.attempt, run.args, run.queue) == (3, [1], "default")
    letter = dead_letter(nxt, "6-0", "retries_exhausted", RuntimeError("x"), "", "w1", 1.7e9 + 5)
    assert (letter["attempts"], letter["error_class"], letter["original_id"]) == (
        "3",
        "RuntimeError",
        "6-0",
    )
    assert letter["first_failed_at"] < letter["last_failed_at"]


def test_weights_order_queues_by_chance_and_strict_order_is_kept_without() -> None:
    assert read_order(["a", "b"], None, random.Random(1)) == ["a", "b"]
    rng = random.Random(1)
    firsts = [read_order(["a", "b"], {"a": 3.0, "b": 1.0}, rng)[0] for _ in range(4000)]
    assert 0.7 < firsts.count("a") / len(firsts) < 0.8
