"""`queues:` validation (DESIGN "Where runs go"): text in, problems out, each with its line.

Every case is parsed by parse_config, as `cronlease validate` and the daemon parse a file. The
YAML snippets start on line 1 so their line numbers can be counted by eye; REJECTIONS snippets
get TAIL (a valid schedules: mapping) appended after their last line, so it never moves them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from scheduler.core.config import parse_config
from scheduler.core.queues import IN_REDIS_TARGETS, QueueSpec, stream_queue
from scheduler.core.schedule import ConfigError

TAIL = "schedules:\n  tick: {every: 1s, job: test.tick}\n"


def problems_of(text: str) -> list[tuple[int, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "schedules.yaml")
    return [(p.line, p.message) for p in caught.value.problems]


def spec_of(body: str, queue: str = "q") -> QueueSpec:
    """The one queue `body` (its mapping, indented under `queue:`) describes, once valid."""
    config = parse_config(f"queues:\n  {queue}:\n{body}" + TAIL)
    return config.queues[queue]


# -- accepted: every target, defaults filled in ---------------------------------------------------

# Written out, not read from queues.OPTIONS: these are the defaults users are promised.
DEFAULTS: dict[str, dict[str, Any]] = {
    "stream": {},
    "celery": {"priority": 0, "global_keyprefix": ""},
    "rq": {"serializer": "pickle", "timeout": 180, "result_ttl": 500, "failure_ttl": 31536000},
    "sidekiq": {"retry": True, "timestamps": "seconds", "namespace": ""},
    "arq": {"expires": 86400},
    "dramatiq": {"namespace": "dramatiq"},
    "bullmq": {"prefix": "bull", "max_len_events": 10000},
}


@pytest.mark.parametrize("target", IN_REDIS_TARGETS)
def test_each_target_is_accepted_with_its_defaults(target: str) -> None:
    assert set(DEFAULTS) == set(IN_REDIS_TARGETS)
    spec = spec_of(f"    target: {target}\n", queue="mail")
    assert spec == QueueSpec(
        queue="mail", target=target, name="mail", db=None, options=DEFAULTS[target], line=2
    )
    assert spec.describe() == ("stream" if target == "stream" else f"{target} queue 'mail'")


OPTIONS_SET = [
    pytest.param(
        "celery",
        "    name: mail:high\n    db: 1\n    priority: 9\n    global_keyprefix: 'app:'\n",
        {"priority": 9, "global_keyprefix": "app:"},
        id="celery",
    ),
    pytest.param(
        "rq",
        "    name: reports\n    db: 2\n    serializer: json\n    timeout: 1h30m\n"
        "    result_ttl: 0d1h\n    failure_ttl: 7d\n",
        {"serializer": "json", "timeout": 5400, "result_ttl": 3600, "failure_ttl": 604800},
        id="rq, durations in seconds",
    ),
    pytest.param(
        "sidekiq",
        "    name: 'critical:mail'\n    db: 0\n    retry: 5\n    namespace: app\n",
        {"retry": 5, "timestamps": "seconds", "namespace": "app"},
        id="sidekiq 6 with a namespace",
    ),
    pytest.param(
        "sidekiq",
        "    retry: false\n    timestamps: milliseconds\n",
        {"retry": False, "timestamps": "milliseconds", "namespace": ""},
        id="sidekiq 8",
    ),
    pytest.param(
        "sidekiq",
        "    timestamps: milliseconds\n    namespace: ''\n",
        {"retry": True, "timestamps": "milliseconds", "namespace": ""},
        id="sidekiq 8 with an empty namespace is no contradiction",
    ),
    pytest.param("arq", "    name: 'arq:queue'\n    expires: 90\n", {"expires": 90}, id="arq"),
    pytest.param(
        "dramatiq",
        "    name: _jobs.v2-x\n    namespace: myapp\n",
        {"namespace": "myapp"},
        id="dramatiq",
    ),
    pytest.param(
        "bullmq",
        "    name: emails\n    db: 15\n    prefix: '{bull}'\n    max_len_events: 1\n",
        {"prefix": "{bull}", "max_len_events": 1},
        id="bullmq",
    ),
]


@pytest.mark.parametrize(("target", "body", "options"), OPTIONS_SET)
def test_options_given_are_kept_and_durations_are_seconds(
    target: str, body: str, options: dict[str, Any]
) -> None:
    spec = spec_of(f"    target: {target}\n{body}")
    assert spec.target == target
    assert dict(spec.options) == options


def test_name_and_db_and_how_they_are_described() -> None:
    spec = spec_of("    target: celery\n    name: mail\n    db: 1\n")
    assert (spec.name, spec.db) == ("mail", 1)
    assert spec.describe() == "celery queue 'mail' in db 1"
    assert spec_of("    target: rq\n    db: 0\n").describe() == "rq queue 'q' in db 0"


def test_a_queue_spec_is_frozen() -> None:
    spec = spec_of("    target: rq\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.target = "celery"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.options["timeout"] = 1  # type: ignore[index]


def test_a_queue_not_named_in_queues_is_a_stream() -> None:
    config = parse_config("queues:\n  mail: {target: celery}\n" + TAIL)
    assert config.queue("mail").target == "celery"
    assert config.queue("default") == stream_queue("default")
    assert config.queue("default").describe() == "stream"
    assert set(config.queues) == {"mail"}


# -- a file with only stream queues behaves as before ----------------------------------------------

STREAMS_ONLY = """\
schedules:
  a: {every: 1s, job: test.a}
  b: {every: 1m, job: test.b, queue: reports, args: [1, 2]}
"""


@pytest.mark.parametrize(
    "queues",
    [
        pytest.param("", id="no queues key"),
        pytest.param("queues:\n", id="an empty queues key"),
        pytest.param("queues: {}\n", id="an empty queues mapping"),
        pytest.param(
            "queues:\n  default: {target: stream}\n  reports:\n    target: stream\n",
            id="queues that say stream",
        ),
    ],
)
def test_a_file_with_only_stream_queues_behaves_as_before(queues: str) -> None:
    before = parse_config(STREAMS_ONLY)
    config = parse_config(STREAMS_ONLY + queues)
    assert config.schedules == before.schedules
    for queue in ("default", "reports", "other"):
        spec = config.queue(queue)
        assert (spec.target, spec.name, spec.db, dict(spec.options)) == (
            "stream",
            queue,
            None,
            {},
        )
        assert spec.describe() == "stream"
    assert all(spec.target == "stream" for spec in config.queues.values())


def test_list_args_are_fine_for_targets_with_positional_arguments() -> None:
    text = "queues:\n"
    for target in ("celery", "rq", "sidekiq", "arq", "dramatiq"):
        text += f"  {target}-q: {{target: {target}}}\n"
    text += "schedules:\n"
    for target in ("celery", "rq", "sidekiq", "arq", "dramatiq"):
        text += f"  {target}-s: {{every: 1s, job: j, queue: {target}-q, args: [1, x]}}\n"
    config = parse_config(text)
    assert [s.args for s in config.schedules] == [(1, "x")] * 5


def test_a_bullmq_queue_takes_a_mapping_of_args() -> None:
    config = parse_config(
        "queues:\n  jobs: {target: bullmq}\n"
        "schedules:\n  s: {every: 1s, job: send, queue: jobs, args: {to: a}}\n"
        "  t: {every: 1s, job: send, queue: jobs}\n"
    )
    assert [dict(s.args) for s in config.schedules] == [{"to": "a"}, {}]


# -- rejections ------------------------------------------------------------------------------------


def bad_option(target: str, option: str, value: str, fragments: list[str], case: str) -> Any:
    """`option: value` on line 4 of a `target` queue must be refused with these fragments."""
    return pytest.param(
        f"queues:\n  q:\n    target: {target}\n    {option}: {value}\n",
        [(4, [f"queue 'q': {option} ", *fragments])],
        id=f"{target} {option}: {case}",
    )


BAD_VALUES = [
    # Common to every in-Redis target.
    bad_option("rq", "db", "-1", ["from 0 to 65535, not -1"], "negative"),
    bad_option("celery", "db", "65536", ["from 0 to 65535, not 65536"], "too large"),
    bad_option("sidekiq", "db", "one", ["whole number", "not 'one'"], "text"),
    bad_option("arq", "db", "true", ["whole number", "not True"], "a boolean"),
    bad_option("bullmq", "db", "1.0", ["whole number", "not 1.0"], "a float"),
    bad_option("rq", "name", "5", ["non-empty one-line text, not 5"], "a number"),
    bad_option("celery", "name", "''", ["non-empty one-line text, not ''"], "empty"),
    bad_option("sidekiq", "name", '"a\\nb"', ["one-line text"], "two lines"),
    bad_option("arq", "name", "[a]", ["non-empty one-line text, not ['a']"], "a list"),
    # celery
    bad_option("celery", "priority", "10", ["from 0 to 9, not 10"], "above 9"),
    bad_option("celery", "priority", "-1", ["from 0 to 9, not -1"], "negative"),
    bad_option("celery", "priority", "high", ["whole number", "not 'high'"], "text"),
    bad_option("celery", "priority", "true", ["not True"], "a boolean"),
    bad_option("celery", "global_keyprefix", "5", ["one-line text, not 5"], "a number"),
    bad_option("celery", "global_keyprefix", '"a\\nb"', ["one-line text"], "two lines"),
    # rq
    bad_option("rq", "serializer", "yaml", ["one of pickle, json, not 'yaml'"], "unknown"),
    bad_option("rq", "serializer", "JSON", ["one of pickle, json, not 'JSON'"], "upper case"),
    bad_option("rq", "timeout", "0", ["must be longer than 0s"], "zero"),
    bad_option("rq", "timeout", "0s", ["must be longer than 0s"], "zero seconds"),
    bad_option("rq", "timeout", "-5", ["-5 is negative"], "negative"),
    bad_option("rq", "timeout", "ten", ["'ten' is not a duration", "90s, 15m"], "text"),
    bad_option("rq", "timeout", "1.5", ["not a whole number of seconds"], "a fraction"),
    bad_option("rq", "timeout", "true", ["True is not a duration"], "a boolean"),
    bad_option("rq", "result_ttl", "5m1h", ["reorders units"], "units out of order"),
    bad_option("rq", "failure_ttl", "1w", ["'1w' is not a duration"], "weeks"),
    # sidekiq
    bad_option("sidekiq", "retry", "-1", ["true, false or a number of retries, not -1"], "neg"),
    bad_option("sidekiq", "retry", "1001", ["number of retries, not 1001"], "too many"),
    bad_option("sidekiq", "retry", "'yes'", ["number of retries, not 'yes'"], "quoted yes"),
    bad_option("sidekiq", "retry", "2.5", ["number of retries, not 2.5"], "a fraction"),
    bad_option("sidekiq", "timestamps", "ms", ["one of seconds, milliseconds, not 'ms'"], "ms"),
    bad_option("sidekiq", "namespace", "[a]", ["one-line text, not ['a']"], "a list"),
    # arq
    bad_option("arq", "expires", "0", ["must be longer than 0s"], "zero"),
    bad_option("arq", "expires", "1x", ["'1x' is not a duration"], "bad unit"),
    # dramatiq
    bad_option("dramatiq", "namespace", "''", ["non-empty one-line text, not ''"], "empty"),
    bad_option("dramatiq", "namespace", "5", ["non-empty one-line text, not 5"], "a number"),
    # bullmq
    bad_option("bullmq", "prefix", "''", ["non-empty one-line text, not ''"], "empty"),
    bad_option("bullmq", "max_len_events", "0", ["from 1 to 1000000000, not 0"], "zero"),
    bad_option("bullmq", "max_len_events", "1000000001", ["not 1000000001"], "too large"),
    bad_option("bullmq", "max_len_events", "many", ["not 'many'"], "text"),
]

REJECTIONS = [
    *BAD_VALUES,
    # -- unknown options -------------------------------------------------------------------
    pytest.param(
        "queues:\n  q:\n    target: rq\n    serialiser: json\n",
        [
            (
                4,
                [
                    "queue 'q': unknown option 'serialiser' for target rq",
                    "did you mean 'serializer'?",
                ],
            )
        ],
        id="a misspelt option has a did-you-mean",
    ),
    pytest.param(
        "queues:\n  q:\n    target: bullmq\n    perfix: app\n",
        [(4, ["unknown option 'perfix' for target bullmq", "did you mean 'prefix'?"])],
        id="a misspelt bullmq option has a did-you-mean",
    ),
    pytest.param(
        "queues:\n  q:\n    target: rq\n    priority: 3\n",
        [
            (
                4,
                [
                    "unknown option 'priority' for target rq",
                    "known options: target, name, db",
                    "serializer, timeout, result_ttl, failure_ttl",
                ],
            )
        ],
        id="another target's option lists the known options",
    ),
    pytest.param(
        "queues:\n  q:\n    target: stream\n    name: other\n",
        [(4, ["unknown option 'name' for target stream", "known options: target"])],
        id="a stream takes no options, not even name",
    ),
    pytest.param(
        "queues:\n  q:\n    target: stream\n    url: redis://other/0\n",
        [(4, ["unknown option 'url' for target stream"])],
        id="a stream is always in the scheduler's own Redis",
    ),
    pytest.param(
        "queues:\n  q:\n    target: stream\n    db: 1\n",
        [(4, ["unknown option 'db' for target stream"])],
        id="a stream takes no db",
    ),
    pytest.param(
        "queues:\n  q:\n    target: rq\n    1: x\n",
        [(4, ["unknown option 1 for target rq"])],
        id="a non-text option is named on its own line",
    ),
    # -- targets ---------------------------------------------------------------------------
    pytest.param(
        "queues:\n  q:\n    name: x\n    target: celry\n",
        [(4, ["queue 'q': unknown target 'celry'", "did you mean 'celery'?", "known targets:"])],
        id="a misspelt target has a did-you-mean",
    ),
    pytest.param(
        "queues:\n  q:\n    target: Sidekiq\n",
        [(3, ["unknown target 'Sidekiq'", "did you mean 'sidekiq'?"])],
        id="targets are lower case",
    ),
    pytest.param(
        "queues:\n  q:\n    target: kafka\n",
        [(3, ["unknown target 'kafka'", "known targets: stream, celery, rq, sidekiq, arq"])],
        id="an unknown target lists the known ones",
    ),
    pytest.param(
        "queues:\n  q:\n    target: 5\n",
        [(3, ["unknown target 5"])],
        id="a target that is a number",
    ),
    pytest.param(
        "queues:\n  q:\n    target:\n",
        [(3, ["unknown target None"])],
        id="an empty target",
    ),
    pytest.param(
        "queues:\n  q:\n    name: x\n",
        [(2, ["queue 'q' needs a target: one of stream, celery, rq"])],
        id="a missing target",
    ),
    pytest.param(
        "queues:\n  q: {}\n",
        [(2, ["queue 'q' needs a target"])],
        id="an empty queue mapping has no target",
    ),
    # -- contradictions --------------------------------------------------------------------
    pytest.param(
        "queues:\n  q:\n    target: sidekiq\n    namespace: app\n    timestamps: milliseconds\n",
        [
            (
                5,
                [
                    "queue 'q': namespace and timestamps: milliseconds contradict each other",
                    "Sidekiq 6 (redis-namespace)",
                    "Sidekiq 8",
                    "drop one of them",
                ],
            )
        ],
        id="a sidekiq namespace with millisecond timestamps contradict",
    ),
    pytest.param(
        "queues:\n  q:\n    target: sidekiq\n    namespace: app\n    timestamps: minutes\n",
        [(5, ["timestamps must be one of seconds, milliseconds, not 'minutes'"])],
        id="a namespace beside a bad timestamps value is one problem, not a crash",
    ),
    # -- queue names and target names ------------------------------------------------------
    pytest.param(
        "queues:\n  bad/name: {target: rq}\n",
        [(2, ["queue name 'bad/name' is not allowed", "letters, digits, '_', '.' or '-'"])],
        id="a queue name with a slash",
    ),
    pytest.param(
        "queues:\n  yes: {target: rq}\n",
        [(2, ["queue name True is not allowed", "quote it"])],
        id="a queue name YAML reads as a boolean",
    ),
    pytest.param(
        "queues:\n  2024: {target: rq}\n",
        [(2, ["queue name 2024 is not allowed", "quote it"])],
        id="a queue name YAML reads as a number",
    ),
    pytest.param(
        f"queues:\n  {'q' * 129}: {{target: rq}}\n",
        [(2, ["is not allowed; use 1 to 128"])],
        id="a queue name too long",
    ),
    pytest.param(
        'queues:\n  "": {target: rq}\n',
        [(2, ["queue name '' is not allowed"])],
        id="an empty queue name",
    ),
    pytest.param(
        "queues:\n  q: {target: rq}\n  q: {target: celery}\n",
        [(3, ["duplicate key 'q' (first on line 2)"])],
        id="a queue named twice",
    ),
    pytest.param(
        "queues:\n  q:\n    target: bullmq\n    name: 'a:b'\n",
        [(4, ["queue 'q': name 'a:b' contains ':', which bullmq reserves"])],
        id="bullmq reserves ':' in its queue names",
    ),
    pytest.param(
        "queues:\n  q:\n    target: rq\n    name: 'rq:queue:x'\n",
        [(4, ["name 'rq:queue:x' contains ':', which rq reserves"])],
        id="rq reserves ':' in its queue names",
    ),
    *[
        pytest.param(
            f"queues:\n  q:\n    target: dramatiq\n    name: '{name}'\n",
            [(4, [f"name '{name}' is not a Dramatiq queue name", "a letter or _ first"])],
            id=f"dramatiq refuses the queue name {name!r}",
        )
        for name in ("1jobs", "-jobs", ".jobs", "my jobs", "jobs:x", "jobs.DQ", "jobs.XQ")
    ],
    pytest.param(
        "queues:\n  1jobs:\n    target: dramatiq\n",
        [
            (
                2,
                [
                    "queue '1jobs': its default name '1jobs' is not a Dramatiq queue name",
                    "write a name: that dramatiq accepts",
                ],
            )
        ],
        id="a queue name dramatiq refuses needs a name of its own",
    ),
    pytest.param(
        "queues:\n  mail.DQ: {target: dramatiq}\n",
        [(2, ["its default name 'mail.DQ'", "delay and dead letter queues"])],
        id="a queue named like dramatiq's delay queue needs a name of its own",
    ),
    # -- the shape of queues: --------------------------------------------------------------
    pytest.param(
        "queues: [mail, reports]\n",
        [(1, ["queues must be a mapping of queue name -> target"])],
        id="queues as a list",
    ),
    pytest.param(
        "queues: celery\n",
        [(1, ["queues must be a mapping"])],
        id="queues as text",
    ),
    pytest.param(
        "queues:\n  mail: celery\n",
        [(2, ["queue 'mail' must be a mapping with a target, e.g. {target: rq}"])],
        id="a queue given as text",
    ),
    pytest.param(
        "queues:\n  mail:\n",
        [(2, ["queue 'mail' must be a mapping with a target"])],
        id="a queue with nothing under it",
    ),
    pytest.param(
        "queues:\n  mail: [celery]\n",
        [(2, ["queue 'mail' must be a mapping with a target"])],
        id="a queue given as a list",
    ),
    pytest.param(
        "queue:\n  mail: {target: celery}\n",
        [(1, ["unknown key 'queue'", "did you mean 'queues'?"])],
        id="a misspelt queues key",
    ),
    # -- several problems in one queue, one per line ---------------------------------------
    pytest.param(
        "queues:\n  q:\n    target: rq\n    serializer: yaml\n    timeout: soon\n"
        "    db: 99999\n    colour: red\n",
        [
            (4, ["serializer must be one of pickle, json"]),
            (5, ["timeout 'soon' is not a duration"]),
            (6, ["db must be a whole number from 0 to 65535"]),
            (7, ["unknown option 'colour'"]),
        ],
        id="every bad option of one queue is reported",
    ),
]


@pytest.mark.parametrize(("text", "expected"), REJECTIONS)
def test_each_rejection_names_its_line(text: str, expected: list[tuple[int, list[str]]]) -> None:
    found = problems_of(text + TAIL)
    assert [line for line, _ in found] == [line for line, _ in expected], found
    for (_, message), (_, fragments) in zip(found, expected, strict=True):
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} not in {message!r}"


# -- the cross-check with schedules: list args on a bullmq queue -----------------------------------

LIST_ARGS = [
    pytest.param(
        """\
queues:
  jobs:
    target: bullmq
schedules:
  ok: {every: 1s, job: send, queue: jobs, args: {to: a}}
  send:
    every: 1s
    job: send
    queue: jobs
    args: [1, 2]
""",
        (6, 2),
        id="a list of args on a bullmq queue is refused at the schedule",
    ),
    pytest.param(
        """\
defaults:
  queue: jobs
queues:
  jobs: {target: bullmq, name: emails}
schedules:
  send: {every: 1s, job: send, args: [a]}
""",
        (6, 4),
        id="also when the queue comes from defaults",
    ),
    pytest.param(
        """\
defaults:
  args: [a]
schedules:
  send:
    every: 1s
    job: send
    queue: jobs
queues:
  jobs: {target: bullmq}
""",
        (4, 9),
        id="also when the args come from defaults and queues: comes last",
    ),
]


# Each case: the YAML, then (the schedule's line, the queue's line).
@pytest.mark.parametrize(("text", "lines"), LIST_ARGS)
def test_list_args_on_a_bullmq_queue_are_refused(text: str, lines: tuple[int, int]) -> None:
    schedule_line, queue_line = lines
    [(found_line, message)] = problems_of(text)
    assert found_line == schedule_line
    for fragment in (
        "schedule 'send': args is a list, but queue 'jobs' goes to bullmq",
        "whose jobs take one data mapping",
        "write args as a mapping",
    ):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert f"(line {queue_line})" in message, "it names where the queue is declared"


def test_a_refused_queue_is_not_cross_checked_again() -> None:
    """The queue's own problem is reported; its schedules are not blamed for it as well."""
    found = problems_of(
        "queues:\n  jobs: {target: bullmq, db: x}\n"
        "schedules:\n  send: {every: 1s, job: send, queue: jobs, args: [1]}\n"
    )
    assert [line for line, _ in found] == [2]
    assert "db must be a whole number" in found[0][1]


# -- several problems at once, in line order -------------------------------------------------------


def test_several_problems_are_reported_at_once_in_line_order() -> None:
    text = """\
schedules:
  send:
    every: 1s
    job: send
    queue: jobs
    args: [1]
  warm:
    every: 15m
    job: cache.warm
    jittter: 5s
queues:
  jobs:
    target: bullmq
  mail:
    target: celery
    priority: 11
  reports:
    target: rqq
  billing:
    target: dramatiq
    name: 9lives
  other:
    target: rq
    colour: red
  legacy:
    target: sidekiq
    namespace: app
    timestamps: milliseconds
  bad name: {target: rq}
  nothing: {}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "deploy/schedules.yaml")
    lines = caught.value.lines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"deploy/schedules.yaml:{n}" for n in (2, 10, 16, 18, 21, 24, 28, 29, 30)
    ]
    assert "goes to bullmq" in lines[0]
    assert "did you mean 'jitter'?" in lines[1]
    assert "priority must be a whole number from 0 to 9" in lines[2]
    assert "did you mean 'rq'?" in lines[3]
    assert "is not a Dramatiq queue name" in lines[4]
    assert "unknown option 'colour' for target rq" in lines[5]
    assert "contradict each other" in lines[6]
    assert "queue name 'bad name' is not allowed" in lines[7]
    assert "queue 'nothing' needs a target" in lines[8]
    assert str(caught.value) == "\n".join(lines)
