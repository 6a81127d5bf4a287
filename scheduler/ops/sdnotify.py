"""The systemd notify protocol, spoken directly over `$NOTIFY_SOCKET` (no libsystemd needed).

READY=1 once config is loaded and Redis answered; STATUS= lines; RELOADING=1 with
MONOTONIC_USEC then READY=1 around a reload; STOPPING=1; WATCHDOG=1 from the main loop at half
of `$WATCHDOG_USEC`, only if `$WATCHDOG_PID` is unset or ours. Without `$NOTIFY_SOCKET` every
call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = address
        self._socket: socket.socket | None = None
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._watchdog_every_s = watchdog_usec / 2e6 if watchdog_usec else None
        self._next_watchdog_mono = 0.0
        self._last_status = ""

    @classmethod
    def from_environment(cls) -> Notifier:
        address = os.environ.get("NOTIFY_SOCKET") or None
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        watchdog = (
            int(usec) if usec and usec.isdigit() and (not pid or pid == str(os.getpid())) else None
        )
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, message: str) -> None:
        if self._socket is None or self._address is None:
            return
        # A leading '@' names a socket in the abstract namespace.
        target = "\0" + self._address[1:] if self._address.startswith("@") else self._address
        try:
            self._socket.sendto(message.encode(), target)
        except OSError as error:
            log.debug("sd_notify failed: %s", error)

    def ready(self) -> None:
        self.send("READY=1")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        if self._watchdog_every_s is None:
            return
        now = time.monotonic()
        if now >= self._next_watchdog_mono:
            self._next_watchdog_mono = now + self._watchdog_every_s
            self.send("WATCHDOG=1")
