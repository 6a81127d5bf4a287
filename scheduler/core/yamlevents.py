"""YAML events -> LineMap values in one pass, without a node tree: yamlsource.py's fast path.

PyYAML's loaders compose the whole document into nodes, then construct values from the nodes:
for 100,000 schedules that is some 750,000 nodes and marks alive at once, hundreds of MB and
most of the start-up time. libyaml's parser (PyYAML's CParser) hands out the same document as a
stream of events, each with its start mark; this module builds the values straight from them,
one event at a time, resolving each distinct plain scalar once (and so sharing equal strings).

Chosen by measurement (CPU seconds on this project's development machine, the 100,000-schedule
file of bench_scale.py's startup scenario, 6 MB): PyYAML's CSafeLoader with the LineMap
constructor, 9.4 s (composing the node tree alone 6.4 s); libyaml's events alone 1.7 s, built
into values here 2.8 s; rapidyaml (a new dependency) parses in 0.4 s but has no line numbers
for a node, and walking its tree from Python takes 7.2 s; ruamel.yaml keeps lines only in its
pure-Python round-trip loader, 15 s for 10,000 schedules (its C loader is libyaml again, without
lines). So no new dependency: PyYAML's own libyaml parser, read event by event.

Only the subset configs use is built here: untagged scalars, mappings with scalar keys,
sequences. Anything else (tags such as !!set, anchors and aliases, merge keys, complex keys,
several documents) and every error raise `Unsupported`, and the caller loads the text again
with the full loader, so results, problems and messages are the full loader's, exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

# The only tags the fast path builds: what plain scalars resolve to without a tag.
_STR = "tag:yaml.org,2002:str"
_PLAIN_TAGS = frozenset(
    {
        _STR,
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
    }
)
_MISSING = object()


def duplicate_key(key: Any, first_line: int) -> str:
    """The problem of a key given twice in one mapping."""
    return (
        f"duplicate key {key!r} (first on line {first_line}); "
        "YAML would silently keep only the last one, so rename or remove one"
    )


class Unsupported(Exception):
    """Not in the fast path's subset (or not valid YAML): load with the full loader instead."""


class LineMap(dict[Any, Any]):
    """A mapping that knows the line of itself and of each key (1-based)."""

    __slots__ = ("key_lines", "line")
    line: int
    key_lines: dict[Any, int]


# Called for each entry of one mapping under the root, as soon as its value is built:
# (the root mapping as built so far, the entry's key, its line, its value) -> what to keep.
Sink = Callable[[LineMap, Any, int, Any], Any]


def build(
    text: str,
    loader_class: type[yaml.SafeLoader],
    problems: list[tuple[int, str]],
    stream: tuple[str, Sink] | None = None,
) -> Any:
    """The document's value; duplicate keys are appended to `problems` as (line, message).

    With `stream` (a root key, a sink), each entry of the mapping under that key of a root
    mapping goes to the sink as soon as it is built, and the mapping keeps what the sink returns
    instead: 100,000 schedules are checked one by one, never all held as YAML values at once.
    An entry the full loader would drop (a duplicate key) never reaches the sink."""
    loader = loader_class(text)
    try:
        return _Builder(loader, problems, stream).document()
    except (yaml.YAMLError, RecursionError) as error:
        raise Unsupported(str(error)) from None
    finally:
        loader.dispose()


class _Builder:
    """Builds the document's values from the loader's events; one instance per document."""

    def __init__(
        self,
        loader: yaml.SafeLoader,
        problems: list[tuple[int, str]],
        stream: tuple[str, Sink] | None,
    ) -> None:
        self.next_event: Callable[[], Any] = loader.get_event
        self.stream = stream
        self.problems = problems
        self.loader = loader
        # Plain scalar text -> its value (each resolved once); quoted text -> one shared str.
        self.plain: dict[str, Any] = {}
        self.strings: dict[str, str] = {}
        # The first characters some implicit resolver looks at (digits, signs, y/n/t/f/o,
        # `~`, `<`, `=`, ...): plain text starting otherwise is a string without asking.
        self.resolved_first = frozenset(loader.yaml_implicit_resolvers)

    def document(self) -> Any:
        get = self.next_event
        if type(get()) is not StreamStartEvent:
            raise Unsupported("no stream start")
        event = get()
        if type(event) is StreamEndEvent:
            return None
        if type(event) is not DocumentStartEvent:
            raise Unsupported("no document start")
        event = get()
        if type(event) is MappingStartEvent:
            if event.anchor is not None or event.tag is not None:
                raise Unsupported("anchor or tag")
            value = self.mapping(event, stream=self.stream)
        else:
            value = self.node(event)
        if type(get()) is not DocumentEndEvent or type(get()) is not StreamEndEvent:
            raise Unsupported("more than one document")
        return value

    def scalar(self, event: Any) -> Any:
        """A scalar event's value. The mapping loop below inlines this: keep the two alike."""
        if event.anchor is not None or event.tag is not None:
            raise Unsupported("anchor or tag")
        text: str = event.value
        if not event.implicit[0]:  # quoted, or a block scalar: a string
            return self.strings.setdefault(text, text)
        value = self.plain.get(text, _MISSING)
        return self.resolve(text) if value is _MISSING else value

    def resolve(self, text: str) -> Any:
        """A plain scalar's value, as SafeLoader makes it (minus timestamps, like _Loader)."""
        if text[:1] not in self.resolved_first:
            self.plain[text] = text
            return text
        tag = self.loader.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        if tag not in _PLAIN_TAGS:  # `<<` (merge), `=` (value)
            raise Unsupported(f"plain scalar tag {tag}")
        if tag == _STR:
            value: Any = text
        else:
            node = yaml.ScalarNode(tag, text)
            value = self.loader.yaml_constructors[tag](self.loader, node)
        if not isinstance(value, float):  # each NaN is its own key, as in the full loader
            self.plain[text] = value
        return value

    def node(self, event: Any) -> Any:
        """The value that starts with `event`, built from the events after it."""
        kind = type(event)
        if kind is ScalarEvent:
            return self.scalar(event)
        if event.anchor is not None or getattr(event, "tag", None) is not None:
            raise Unsupported("anchor, alias or tag")
        if kind is MappingStartEvent:
            return self.mapping(event)
        if kind is SequenceStartEvent:
            items: list[Any] = []
            get, node = self.next_event, self.node
            event = get()
            while type(event) is not SequenceEndEvent:
                items.append(node(event))
                event = get()
            return items
        raise Unsupported(f"unexpected {kind.__name__}")

    def mapping(
        self,
        start: Any,
        sink: Callable[[Any, int, Any], Any] | None = None,
        stream: tuple[str, Sink] | None = None,
    ) -> LineMap:
        """The hot loop (a config is mostly mapping entries): scalars handled inline.

        `sink` takes each entry's value (the streamed mapping's); `stream` (the root's) says
        which of its entries is that mapping."""
        result = LineMap()
        result.line = start.start_mark.line + 1
        key_lines: dict[Any, int] = {}
        result.key_lines = key_lines
        get, node, resolve = self.next_event, self.node, self.resolve
        event: Any
        value: Any
        plain, strings = self.plain.get, self.strings.setdefault
        while True:
            event = get()
            if type(event) is not ScalarEvent:
                if type(event) is MappingEndEvent:
                    return result
                raise Unsupported("a key that is not a scalar")
            if event.anchor is not None or event.tag is not None:
                raise Unsupported("anchor or tag")
            text = event.value
            if event.implicit[0]:
                key = plain(text, _MISSING)
                if key is _MISSING:
                    key = resolve(text)
            else:
                key = strings(text, text)
            # A parser's events always have their marks (only hand-made ones lack them).
            line = event.start_mark.line + 1  # type: ignore[union-attr]
            if key in result:
                self.problems.append((line, duplicate_key(key, key_lines[key])))
                self.skip(get())
                continue
            key_lines[key] = line
            event = get()
            if type(event) is not ScalarEvent or event.anchor is not None or event.tag is not None:
                if stream is not None and key == stream[0] and type(event) is MappingStartEvent:
                    value = self.streamed(event, result, stream[1])
                else:
                    value = node(event)
            elif event.implicit[0]:
                value = plain(event.value, _MISSING)
                if value is _MISSING:
                    value = resolve(event.value)
            else:
                value = strings(event.value, event.value)
            result[key] = value if sink is None else sink(key, line, value)

    def streamed(self, start: Any, root: LineMap, sink: Sink) -> LineMap:
        if start.anchor is not None or start.tag is not None:
            raise Unsupported("anchor or tag")

        def entry(key: Any, line: int, value: Any) -> Any:
            return sink(root, key, line, value)

        return self.mapping(start, entry)

    def skip(self, event: Any) -> None:
        """Pass over a value the full loader would not construct (a duplicate key's)."""
        depth = 0
        while True:
            kind = type(event)
            if kind is MappingEndEvent or kind is SequenceEndEvent:
                depth -= 1
            elif kind is AliasEvent or event.anchor is not None or event.tag is not None:
                raise Unsupported("anchor, alias or tag")
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                depth += 1
            if depth == 0:
                return
            event = self.next_event()
