"""YAML syntax errors point at the typo: PyYAML's problem line, and its context line as a note.

PyYAML notices a broken document where it stops making sense, often lines after the mistake (an
unterminated quote on line 39 surfaces on line 46), so the line where the broken block began, and
an open quote that swallowed the lines in between, are reported too, each as FILE:LINE.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.core.config import parse_config
from scheduler.core.schedule import ConfigError
from scheduler.core.yamlsource import load_yaml

REPO_SCHEDULES = Path(__file__).resolve().parents[2] / "schedules.yaml"


def error_lines(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "schedules.yaml")
    return caught.value.lines()


def unterminated(text: str, cron: str) -> tuple[str, int, int]:
    """`text` with the closing quote of `cron: "<cron>"` removed; its line, and the next quote's."""
    lines = text.splitlines(keepends=True)
    broken = next(i for i, line in enumerate(lines) if f'cron: "{cron}"' in line)
    lines[broken] = lines[broken].replace(f'"{cron}"', f'"{cron}')
    closing = next(i for i in range(broken + 1, len(lines)) if '"' in lines[i])
    return "".join(lines), broken + 1, closing + 1


def test_an_unterminated_quote_in_the_example_file_is_traced_back_to_its_line() -> None:
    text, opened, closed = unterminated(
        REPO_SCHEDULES.read_text(encoding="utf-8"), "*/10 * * * * *"
    )
    assert closed > opened + 1, "the example must make the parser notice lines later"
    lines = error_lines(text)
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"schedules.yaml:{closed}: YAML syntax error: ")
    assert lines[1] == (
        f"schedules.yaml:{opened}: note: while parsing a block mapping, which begins here"
    )
    assert lines[2] == (
        f"schedules.yaml:{opened}: note: a quoted value opens here and only closes on line "
        f"{closed}; is its closing quote missing?"
    )


def test_a_syntax_error_is_one_problem_however_many_lines_it_points_at() -> None:
    text, _, _ = unterminated(REPO_SCHEDULES.read_text(encoding="utf-8"), "*/10 * * * * *")
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert len(caught.value.problems) == 1
    assert len(caught.value.problems[0].notes) == 2


# Each case: the file, then every line printed as (FILE:LINE: prefix, a fragment of the rest).
# The fragments are those libyaml and PyYAML's pure-Python parser word alike.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            'schedules:\n  a:\n    cron: "0 3\n',
            [
                ("schedules.yaml:4: YAML syntax error: ", "unexpected end of stream"),
                (
                    "schedules.yaml:3: note: ",
                    "while scanning a quoted scalar, which begins here: this quote is never closed",
                ),
            ],
            id="a quote still open at the end of the file points at the quote",
        ),
        pytest.param(
            "schedules: {a: 1\n  b: 2\n",
            [
                ("schedules.yaml:2: YAML syntax error: ", "expected ',' or '}'"),
                ("schedules.yaml:1: note: ", "while parsing a flow mapping, which begins here"),
            ],
            id="an unclosed brace points at where the brace opened",
        ),
        pytest.param(
            "schedules:\n  a:\n    description: 'it's\n    job: x\n",
            [("schedules.yaml:3: YAML syntax error: ", "(while parsing a block mapping)")],
            id="a context on the problem's own line is folded into the message",
        ),
        pytest.param(
            "schedules:\n  a:\n    every: 1m\n    job: x: y\n",
            [("schedules.yaml:4: YAML syntax error: ", "mapping values are not allowed")],
            id="an error without context is one line",
        ),
        pytest.param(
            "schedules:\n\ta: 1\n",
            [
                (
                    "schedules.yaml:2: YAML syntax error: ",
                    "(a tab character: YAML indents with spaces only)",
                )
            ],
            id="a tab is named as the cause",
        ),
    ],
)
def test_syntax_errors_name_every_line_they_point_at(
    text: str, expected: list[tuple[str, str]]
) -> None:
    lines = error_lines(text)
    assert len(lines) == len(expected), lines
    for line, (prefix, fragment) in zip(lines, expected, strict=True):
        assert line.startswith(prefix), line
        assert fragment in line, line


def test_a_quoted_value_over_several_lines_is_fine_when_the_document_parses() -> None:
    # Multi-line quoted values are legal YAML; the open-quote note is only a diagnosis of a
    # document that already failed.
    document = load_yaml('schedules:\n  a:\n    description: "one\n      two"\n    job: x\n')
    assert document.problems == []
    assert document.value["schedules"]["a"]["description"] == "one two"
