"""Counted nouns for messages people read: `1 schedule`, `2 schedules`, never `1 schedules`."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`plural(1, "problem")` -> `1 problem`; `plural(0, "problem")` -> `0 problems`."""
    if count == 1:
        return f"{count} {singular}"
    return f"{count} {plural_form if plural_form is not None else singular + 's'}"
