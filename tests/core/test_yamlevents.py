"""The event builder (yamlevents.py) gives what PyYAML's full loader gives, or hands over to it.

load_yaml builds values from libyaml's events, without a node tree, and falls back to the full
loader for whatever it does not build (tags, anchors, merge keys, complex keys, broken
documents). Either way the value, its lines and its problems are the full loader's; and
parse_config, which checks schedules while they stream out of the builder, says what it says
when they do not stream.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from scheduler.core import config, yamlevents
from scheduler.core.schedule import Config, ConfigError
from scheduler.core.yamlsource import LineMap, YamlDocument, _load_fully, load_yaml

DOCUMENTS = {
    "plain scalars of every kind": (
        "a: 1\nb: 0x1f\nc: 1_000\nd: 1.5\ne: .inf\nf: yes\ng: Off\nh: ~\ni:\nj: 1:30\n"
        "k: 2030-01-01\nl: '5'\nm: \"x\\ty\"\nn: |\n  block\no: [1, {p: q}]\n"
    ),
    "keys that are not strings": "1: a\ntrue: b\nnull: c\n1.5: d\n",
    "duplicate keys, nested too": "a:\n  x: 1\n  x: 2\nb: 1\nb:\n  y: 1\n  y: 2\n",
    "1 and true are one key": "1: a\ntrue: b\n",
    "NaN keys are each their own": ".nan: a\n.nan: b\n",
    "a duplicate whose value holds an anchor": "a: 1\na: &x 2\nb: *x\n",
    "anchors and aliases": "a: &x {k: 1}\nb: *x\n",
    "a merge key": "base: &b {job: x}\ns:\n  <<: *b\n  every: 1m\n",
    "tags": "a: !!set {x, y}\nb: !!str 5\nc: !!binary aGk=\nd: ! 5\n",
    "a value tag": "a: =\n",
    "a complex key": "? [1, 2]\n: a\n",
    "a mapping key in flow": "{[1]: a}\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "an explicit document": "--- \na: 1\n...\n",
    "empty": "",
    "only a comment": "# nothing\n",
    "a scalar root": "just text\n",
    "a sequence root": "- a\n- b: 1\n",
    "a syntax error": "a: [1, 2\nb: 3\n",
    "a tab": "a:\n\tb: 1\n",
    "an unclosed quote": 'a: "x\nb: 1\nc: "y"\n',
}


def same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, LineMap):
        return (
            list(a) == list(b)
            and (a.line, a.key_lines) == (b.line, b.key_lines)
            and all(same(a[k], b[k]) for k in a)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@pytest.mark.parametrize("text", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_the_builder_gives_what_the_full_loader_gives(text: str) -> None:
    fast, full = load_yaml(text), _load_fully(text)
    assert fast.problems == full.problems
    if isinstance(full.value, set):  # a !!set root: sets compare by value
        assert fast.value == full.value
    else:
        assert same(fast.value, full.value)


@pytest.mark.parametrize(
    ("text", "streamed"),
    [
        ("a: 1\nb: [1, {c: 2}]\n", True),
        ("a: 1\na: 2\n", True),
        ("a: &x 1\n", False),
        ("a: !!set {x}\n", False),
        ("a: [1\n", False),
        ("a: 1\n---\nb: 1\n", False),
    ],
)
def test_what_the_builder_cannot_build_goes_to_the_full_loader(text: str, streamed: bool) -> None:
    assert load_yaml(text).streamed is streamed


def test_a_streamed_mapping_hands_each_entry_to_the_sink_and_keeps_what_it_returns() -> None:
    seen: list[tuple[Any, int, Any]] = []

    def sink(root: LineMap, key: Any, line: int, value: Any) -> Any:
        assert list(root) == ["first"]  # the root as built so far
        seen.append((key, line, value))
        return line

    text = "first: 1\nitems:\n  a: {x: 1}\n  b: 2\n  a: 3\nlast: {items: 1}\n"
    document = load_yaml(text, ("items", sink))
    assert [(key, line) for key, line, _ in seen] == [("a", 3), ("b", 4)]  # not the duplicate
    assert document.value["items"] == {"a": 3, "b": 4}
    assert document.value["last"] == {"items": 1}  # only the root's key streams
    assert [p.line for p in document.problems] == [5]


def outcome(text: str) -> Config | list[str]:
    try:
        return config.parse_config(text, "s.yaml", now_ts=1_900_000_000)
    except ConfigError as error:
        return error.lines()


CONFIGS = {
    "defaults first": "defaults:\n  job: j\nschedules:\n  a: {every: 1m}\n  b: {cron: '@daily'}\n",
    "defaults last": "schedules:\n  a: {every: 1m}\n  b: {every: 2m, job: k}\ndefaults: {job: j}\n",
    "defaults last, bad": "schedules:\n  a: {every: 1m}\n  b: {every: x}\ndefaults: {job: 5}\n",
    "no defaults": "schedules:\n  a: {every: 1m, job: j}\n  yes: {every: 1m, job: j}\n",
    "duplicate schedule": "schedules:\n  a: {every: 1m, job: j}\n  a: {every: x}\n",
    "schedules twice": "schedules:\n  a: {every: 1m, job: j}\nschedules:\n  b: {every: x}\n",
    "defaults not a mapping": "defaults: 5\nschedules:\n  a: {every: 1m, job: j}\n",
    "unknown defaults": "defaults:\n  jobb: j\n  cron: x\nschedules:\n  a: {every: 1m}\n",
    "an anchor after streaming": "schedules:\n  a: {every: 1m, job: j}\n  b: &x {every: 1m}\n",
    "a syntax error after streaming": "schedules:\n  a: {every: 1m, job: j}\n  b: {every: 1m\n",
    "a past one-shot": "schedules:\n  a: {at: 2020-01-01T00:00:00Z, job: j}\n",
}


@pytest.mark.parametrize("text", CONFIGS.values(), ids=CONFIGS.keys())
def test_checking_while_streaming_says_what_checking_after_the_load_says(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    streamed = outcome(text)

    def whole(text: str, stream: Any = None) -> YamlDocument:
        return _load_fully(text)

    monkeypatch.setattr(config, "load_yaml", whole)
    assert streamed == outcome(text)
    if isinstance(streamed, Config):
        monkeypatch.undo()
        assert streamed.warning_lines() == outcome(text).warning_lines()  # type: ignore[union-attr]


def test_the_fast_path_is_the_one_taken_for_a_plain_config() -> None:
    assert load_yaml("schedules:\n  a: {every: 1m, job: j}\n").streamed
    with pytest.raises(yamlevents.Unsupported):
        yamlevents.build("a: *x\n", yaml.SafeLoader, [])
