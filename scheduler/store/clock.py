"""One clock for every replica: Redis `TIME`, carried forward by the local monotonic clock.

A sample is taken at every lease acquisition and renewal. Between samples, time advances with
`time.monotonic()`, so a replica whose wall clock is wrong (or jumps) still agrees with the others
on what is due.

The estimate is a lower bound: Redis read its clock at some moment before the reply arrived, so
anchoring the reading at the reply's arrival can only put us behind Redis (by up to one round
trip), never ahead. Behind means a run is a fraction of a millisecond late; ahead would mean
early, which a worker could notice. The enqueue script refuses early fires as well.
"""

from __future__ import annotations

import time


class RedisClock:
    def __init__(self) -> None:
        # (Redis seconds, monotonic seconds) as one tuple: replaced atomically, since the lease
        # renewal thread samples while the main loop reads.
        self._anchor: tuple[float, float] | None = None

    @property
    def synced(self) -> bool:
        return self._anchor is not None

    def sample(self, redis_time_s: float, sent_mono_s: float, received_mono_s: float) -> None:
        del sent_mono_s  # kept in the signature: the round trip bounds the error
        self._anchor = (redis_time_s, received_mono_s)

    def now(self) -> float:
        anchor = self._anchor
        if anchor is None:
            raise RuntimeError("the Redis clock has not been sampled yet")
        return anchor[0] + (time.monotonic() - anchor[1])
