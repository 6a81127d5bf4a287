"""YAML text -> plain values that remember their line, with duplicate keys reported, not dropped.

PyYAML keeps the last of two equal keys silently, which is how users lose schedules; this loader
records every duplicate instead. Date-like scalars stay strings so that the config module parses
instants itself, with its own time-zone rules and messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True)
class YamlProblem:
    line: int
    message: str


class LineMap(dict[Any, Any]):
    """A mapping that knows the line of itself and of each key (1-based)."""

    line: int
    key_lines: dict[Any, int]


@dataclass
class YamlDocument:
    value: Any
    problems: list[YamlProblem] = field(default_factory=list)


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
            loader.problems.append(
                YamlProblem(
                    line,
                    f"duplicate key {key!r} (first on line {result.key_lines[key]}); "
                    "YAML would silently keep only the last one, so rename or remove one",
                )
            )
            continue
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def load_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; syntax errors come back as problems with their line."""
    loader = _Loader(text)
    loader.problems = []
    try:
        value = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = error.problem or "invalid YAML"
        lines = text.splitlines()
        if 0 < line <= len(lines) and "\t" in lines[line - 1]:
            what += " (a tab character: YAML indents with spaces only)"
        return YamlDocument(None, [YamlProblem(line, f"YAML syntax error: {what}")])
    except yaml.YAMLError as error:
        return YamlDocument(None, [YamlProblem(1, f"YAML error: {error}")])
    finally:
        loader.dispose()
    return YamlDocument(value, loader.problems)
