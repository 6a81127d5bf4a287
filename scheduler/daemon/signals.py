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
