"""YAML text -> plain values that remember their line, with duplicate keys reported, not dropped.

PyYAML keeps the last of two equal keys silently, which is how users lose schedules; this loader
records every duplicate instead. Date-like scalars stay strings so that the config module parses
instants itself, with its own time-zone rules and messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from scheduler.core import yamlevents
from scheduler.core.yamlevents import LineMap, Sink, duplicate_key

__all__ = ["LineMap", "Sink", "YamlDocument", "YamlProblem", "load_yaml"]


@dataclass(frozen=True)
class YamlProblem:
    line: int
    message: str
    # (line, message) of other places the problem points at: where the broken block began, where
    # a quote that never closed opened. PyYAML notices a syntax error where it stops making
    # sense, often lines after the typo, so the line alone sends people to the wrong place.
    notes: tuple[tuple[int, str], ...] = ()


@dataclass
class YamlDocument:
    value: Any
    problems: list[YamlProblem] = field(default_factory=list)
    # Whether the event builder made it, so a `stream` sink saw every entry it was meant to
    # (if not, the full loader did, and the sink's work, if any, is to be thrown away).
    streamed: bool = False


# libyaml's parser when PyYAML was built with it: some 20 times faster than the pure-Python one,
# with the same nodes and marks, so everything below works with either.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader minus the timestamp resolver, recording duplicate keys."""

    problems: list[YamlProblem]


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    result = LineMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            loader.problems.append(YamlProblem(line, "a mapping key must be a plain value"))
            continue
        if key in result:
            loader.problems.append(YamlProblem(line, duplicate_key(key, result.key_lines[key])))
            continue
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def load_yaml(text: str, stream: tuple[str, Sink] | None = None) -> YamlDocument:
    """Parse one YAML document; syntax errors come back as problems with their line.

    The event builder (yamlevents.py) first: what it cannot build, and every broken document,
    goes through the full loader below, whose results and messages are the reference. With
    `stream`, the builder hands the entries under that root key to a sink (yamlevents.build)."""
    found: list[tuple[int, str]] = []
    try:
        value = yamlevents.build(text, _Loader, found, stream)
    except yamlevents.Unsupported:
        return _load_fully(text)
    return YamlDocument(value, [YamlProblem(line, message) for line, message in found], True)


def _load_fully(text: str) -> YamlDocument:
    """PyYAML's composer and constructor: tags, anchors, merge keys, and the error marks."""
    loader = _Loader(text)
    loader.problems = []
    try:
        value = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        return YamlDocument(None, [_syntax_problem(error, text)])
    except yaml.YAMLError as error:
        return YamlDocument(None, [YamlProblem(1, f"YAML error: {error}")])
    finally:
        loader.dispose()
    return YamlDocument(value, loader.problems)


def _syntax_problem(error: yaml.MarkedYAMLError, text: str) -> YamlProblem:
    """PyYAML's problem mark as the line, its context mark (and an open quote) as notes."""
    problem_mark = error.problem_mark or error.context_mark
    line = problem_mark.line + 1 if problem_mark is not None else 1
    what = error.problem or error.context or "invalid YAML"
    notes: list[tuple[int, str]] = []
    context_mark = error.context_mark if error.problem_mark is not None else None
    if error.context and context_mark is not None:
        context_line = context_mark.line + 1
        if context_line == line:
            what += f" ({error.context})"
        elif error.context == "while scanning a quoted scalar":
            notes.append(
                (context_line, f"{error.context}, which begins here: this quote is never closed")
            )
        else:
            notes.append((context_line, f"{error.context}, which begins here"))
    if problem_mark is not None:
        quote = _open_quote_before(text, problem_mark.index)
        if quote is not None:
            opened, closed = quote
            notes.append(
                (
                    opened,
                    f"a quoted value opens here and only closes on line {closed}; "
                    "is its closing quote missing?",
                )
            )
    lines = text.splitlines()
    if 0 < line <= len(lines) and "\t" in lines[line - 1]:
        what += " (a tab character: YAML indents with spaces only)"
    return YamlProblem(line, f"YAML syntax error: {what}", tuple(notes))


def _open_quote_before(text: str, index: int) -> tuple[int, int] | None:
    """First and last line of a quoted value spanning lines that ends just before `index`.

    A quote left open swallows the lines after it up to the next quote character, and the parser
    only complains after that; the value it swallowed is the token right before the complaint.
    Legal YAML allows such values, which is why this is only looked for once parsing has failed.
    """
    last: yaml.Token | None = None
    try:
        # The same scanner as the failed parse, so the marks (and their indexes) agree.
        for token in yaml.scan(text, Loader=_Base):
            if token.start_mark.index >= index:
                break
            last = token
    except yaml.YAMLError:
        pass  # the tokens up to the error are what counts
    if (
        isinstance(last, yaml.ScalarToken)
        and last.style in ('"', "'")
        and last.end_mark.line > last.start_mark.line
    ):
        return int(last.start_mark.line) + 1, int(last.end_mark.line) + 1
    return None
