"""cronlease: a leader-elected cron scheduler that enqueues runs into Redis Streams exactly once."""

__version__ = "0.1.0"
