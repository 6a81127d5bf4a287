"""One clock for every replica: Redis `TIME`, carried forward by the local monotonic clock.

A sample is taken at every lease acquisition and renewal. Between samples, time advances with
`time.monotonic()`, so a replica whose wall clock is wrong (or jumps) still agrees with the others
on what is due.
"""

from __future__ import annotations

import time


class RedisClock:
    def __init__(self) -> None:
        self._redis_s: float | None = None
        self._mono_s = 0.0

    @property
    def synced(self) -> bool:
        return self._redis_s is not None

    def sample(self, redis_time_s: float, sent_mono_s: float, received_mono_s: float) -> None:
        """Redis read its clock somewhere between send and receive; take the midpoint."""
        self._redis_s = redis_time_s
        self._mono_s = (sent_mono_s + received_mono_s) / 2

    def now(self) -> float:
        if self._redis_s is None:
            raise RuntimeError("the Redis clock has not been sampled yet")
        return self._redis_s + (time.monotonic() - self._mono_s)
