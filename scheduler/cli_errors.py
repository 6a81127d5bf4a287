"""Errors a command raises for a user's mistake: printed as one sentence, exit 2."""


class UsageError(Exception):
    """A user's mistake: printed as one sentence, exit 2."""
