"""The daemon's signals: SIGTERM and SIGINT stop it cleanly, SIGHUP reloads the config."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from scheduler.daemon.loop import Daemon

log = logging.getLogger("scheduler.daemon")


def install_signal_handlers(daemon: Daemon) -> None:
    def handle_stop(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("received %s: stopping", signal.Signals(signum).name)
        daemon.stop()

    def handle_reload(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        daemon.request_reload()

    signal.signal(signal.SIGTERM, handle_stop)
    signal.signal(signal.SIGINT, handle_stop)
    signal.signal(signal.SIGHUP, handle_reload)


class EarlyStop:
    """SIGTERM or SIGINT before the daemon exists (it is still starting the embedded Redis or
    loading): remembered and honoured as soon as the daemon is there, instead of the default
    action killing the process mid-start and leaving what it started behind."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        self.signum = signum

    def apply(self, daemon: Daemon) -> None:
        """Hand the signals to the daemon; stop it at once if one came during start-up."""
        install_signal_handlers(daemon)
        if self.signum is not None:
            log.info("received %s during start-up: stopping", signal.Signals(self.signum).name)
            daemon.stop()
