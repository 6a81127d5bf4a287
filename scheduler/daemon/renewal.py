"""The lease renewal thread: renews on time however long the main loop is busy, but only while
that loop is alive.

Planning 100,000 cron schedules takes seconds, so leadership must not lapse for want of a turn of
the main loop; but a main loop that stopped turning must not lead by proxy either: past the
health threshold the lease is left to expire, so a follower takes over within a TTL instead of
never. The main loop still checks the lease deadline before every write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from scheduler.ops.metrics import Metrics
from scheduler.store.connection import REDIS_ERRORS, ErrorEpisodes
from scheduler.store.lease import LeaseKeeper

log = logging.getLogger("scheduler.daemon")


class Renewer:
    def __init__(
        self,
        lease: LeaseKeeper,
        metrics: Metrics,
        stopping: threading.Event,
        leading: threading.Event,
        loop_idle_s: Callable[[], float],
        health_threshold_s: float,
        on_lost: Callable[[], None],
    ) -> None:
        self._lease = lease
        self._metrics = metrics
        self._stopping = stopping
        self._leading = leading  # set while the main loop acts as leader
        self._loop_idle_s = loop_idle_s
        self._threshold_s = health_threshold_s
        self._on_lost = on_lost  # wakes the main loop, which demotes

    def start(self) -> None:
        threading.Thread(target=self._run, name="lease-renewal", daemon=True).start()

    def _run(self) -> None:
        errors = ErrorEpisodes("lease renewal")
        interval_s = self._lease.timing.renew_interval_s
        withheld = False
        while not self._stopping.is_set():
            if not self._leading.is_set() or not self._lease.held:
                self._leading.wait(0.5)
                continue
            delay = self._lease.next_renew_mono - time.monotonic()
            if delay > 0:
                self._stopping.wait(delay)
                continue
            idle = self._loop_idle_s()
            if idle > self._threshold_s:
                if not withheld:
                    withheld = True
                    log.error(
                        "main loop has not turned for %.1fs: NOT renewing the lease, so that "
                        "another replica takes over",
                        idle,
                        extra={"event": "renewal_withheld"},
                    )
                self._stopping.wait(min(0.5, interval_s / 2))
                continue
            withheld = False
            started = time.monotonic()
            try:
                renewed = self._lease.renew()
            except REDIS_ERRORS as error:
                self._metrics.lease_renewals.labels("error").inc()
                self._metrics.redis_errors.labels(errors.failed(error)).inc()
                self._stopping.wait(min(0.05, interval_s / 10))
                continue
            except Exception:
                # A bug must not end the thread: the lease would lapse under a healthy loop.
                log.exception("lease renewal failed unexpectedly; retrying")
                self._metrics.lease_renewals.labels("error").inc()
                self._stopping.wait(min(0.05, interval_s / 10))
                continue
            errors.recovered()
            self._metrics.lease_renewal_duration.observe(time.monotonic() - started)
            self._metrics.lease_renewals.labels("ok" if renewed else "lost").inc()
            if not renewed:
                self._on_lost()
