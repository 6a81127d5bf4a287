"""The command line: arguments and settings, the offline commands, the daemon, operator commands."""

from scheduler.cli.main import main

__all__ = ["main"]
