"""What bench_scale.py builds on: daemon processes, /proc figures, schedule sets, stream read-back.

Not a test helper and not part of the package; imported by path like benchkit.
"""

from __future__ import annotations

import calendar
import json
import os
import platform
import signal
import subprocess
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import redis
from benchkit import Timeout, daemon_command, die_with_parent, poll_until

from scheduler.store.keys import Keys

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
KEYS = Keys("cronlease")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = 10_000  # XRANGE page size when reading streams back


class DaemonDied(Exception):
    """A daemon process exited while the benchmark still needed it."""


# -- /proc ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    # After "pid (comm) ", field 3 (state) is index 0: utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak resident) of a process, in MB (MiB), from /proc/<pid>/status."""
    figures: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) / 1024
    return figures


def redis_cpu_seconds(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def machine(redis_version: str) -> dict[str, Any]:
    """What the figures were measured on, for comparing runs over time."""
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gb = None
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    try:
        import hiredis

        hiredis_version: str | None = str(hiredis.__version__)
    except ImportError:
        hiredis_version = None
    from scheduler import __version__

    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gb": memory_gb,
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "redis_version": redis_version,
        "redis_py": redis.__version__,
        "hiredis": hiredis_version,
        "cronlease": __version__,
        "git": git_revision(),
    }


def git_revision() -> str | None:
    """`<short hash>` of the checkout, `+dirty` when the daemon's code (scheduler/) differs."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "scheduler"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


# -- waiting ----------------------------------------------------------------------------------


def wait_for(
    condition: Callable[[], T | None],
    timeout_s: float,
    what: str,
    daemons: Sequence[DaemonProcess] = (),
    interval_s: float = 0.02,
) -> T:
    """poll_until that also gives up at once, with the log's tail, if a daemon exits."""

    def check() -> T | None:
        for daemon in daemons:
            daemon.check_alive(what)
        return condition()

    return poll_until(check, timeout_s, interval_s, what)


def sleep_until(wall_s: float, daemons: Sequence[DaemonProcess] = ()) -> None:
    """Sleep until time.time() reaches `wall_s`, checking on the daemons meanwhile."""
    while True:
        for daemon in daemons:
            daemon.check_alive(f"the moment {wall_s:.3f}")
        left = wall_s - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


# -- the daemon -------------------------------------------------------------------------------


def parse_log_time(text: str) -> float:
    """The JSON log's `time`: `2026-11-22T06:35:42.123+00:00` -> Unix seconds."""
    return datetime.fromisoformat(text).timestamp()


class DaemonProcess:
    """One `python -m scheduler run` process with JSON logs in `log_path`."""

    def __init__(
        self,
        replica_id: str,
        config: Path,
        redis_url: str,
        log_path: Path,
        *,
        ttl_s: float,
        schedule_metrics: str = "auto",
        log_level: str = "INFO",
    ) -> None:
        self.replica_id = replica_id
        self.log_path = log_path
        self.command = daemon_command(
            config, redis_url, replica_id, ttl_s,
            "--schedule-metrics", schedule_metrics,
            "--log-level", log_level,
            "--log-format", "json",
        )  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.started_wall = 0.0
        self.exit_code: int | None = None
        self.events: list[dict[str, Any]] = []
        self._log_offset = 0
        self._partial = b""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRONLEASE_")}
        # The checkout's code, whichever way (or whether) it is installed.
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        with open(self.log_path, "ab") as log:
            self.started_wall = time.time()
            self.process = subprocess.Popen(
                self.command,
                cwd=self.log_path.parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches us only; we stop the daemon
                preexec_fn=die_with_parent,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self, what: str) -> None:
        if self.process is not None and self.process.poll() is not None:
            self.exit_code = self.process.returncode
            raise DaemonDied(
                f"daemon {self.replica_id} exited with status {self.exit_code} while waiting "
                f"for {what}; its log ends:\n{self.log_tail()}"
            )

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid)

    def memory_mb(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def stop(self, timeout_s: float) -> int | None:
        """SIGTERM, then wait for the exit; None (and a SIGKILL) if it does not come in time."""
        if self.alive():
            self.signal(signal.SIGTERM)
        return self.wait_exit(timeout_s)

    def wait_exit(self, timeout_s: float) -> int | None:
        """The exit status; None (and a SIGKILL) if the process is still running after
        `timeout_s`. A signal already sent is not repeated: a second SIGTERM that lands while
        Python finalises kills the process with -15."""
        if self.process is None:
            return None
        try:
            poll_until(lambda: not self.alive(), timeout_s, 0.01, f"{self.replica_id} to exit")
        except Timeout:
            self.kill()
            return None
        self.exit_code = self.process.returncode
        return self.exit_code

    def kill(self) -> None:
        process = self.process
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()

    def read_events(self) -> list[dict[str, Any]]:
        """Every JSON log line so far (lines that are not JSON, a traceback say, are skipped)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                chunk = log.read()
        except FileNotFoundError:
            return self.events
        self._log_offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith(b"{"):
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    continue
        return self.events

    def event_time(self, predicate: Callable[[dict[str, Any]], bool]) -> float | None:
        """The log time of the first event matching `predicate`, or None."""
        for event in self.read_events():
            if predicate(event):
                return parse_log_time(str(event["time"]))
        return None

    def elected_at(self) -> float | None:
        return self.event_time(lambda event: event.get("event") == "elected")

    def loaded_at(self) -> float | None:
        """When the config was loaded: the `cronlease starting` line follows the load."""
        return self.event_time(lambda event: str(event.get("message", "")).startswith("cronlease"))

    def complaints(self, ignore: Iterable[str] = ()) -> Counter[str]:
        """WARNING and ERROR messages (first line, 120 characters), counted."""
        found: Counter[str] = Counter()
        ignored = tuple(ignore)
        for event in self.read_events():
            if event.get("level") in ("warning", "error", "critical"):
                message = str(event.get("message", "")).splitlines()[0][:120]
                if not message.startswith(ignored):
                    found[f"{event['level']}: {message}"] += 1
        return found

    def log_tail(self, lines: int = 12) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# -- schedule sets ----------------------------------------------------------------------------


def schedule_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:06d}"


def uniform_yaml(prefix: str, count: int, trigger: str, queues: int) -> str:
    """`count` schedules with the same trigger line (e.g. `every: 1s`), spread over queues."""
    lines = ["schedules:"]
    for i in range(count):
        lines += [
            f"  {schedule_name(prefix, i)}:",
            f"    {trigger}",
            "    job: bench.job",
            f"    args: {{n: {i}}}",
            f"    queue: q{i % queues}",
        ]
    return "\n".join(lines) + "\n"


ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Europe/London",
    "America/Los_Angeles",
)
EVERY = ("30s", "1m", "5m", "10m", "15m", "1h", "6h", "1d")
HASHED = ("H * * * *", "H H * * *", "H/15 * * * *", "H H * * 1-5", "H H(0-5) * * *", "H H 1 * *")


def mixed_yaml(prefix: str, count: int, queues: int) -> str:
    """A realistic mix: every, distinct crons, H-hashed crons, second-level crons, time zones.

    One schedule (`<prefix>-beat`) is `every: 1s`, so a leader's first run comes at once.
    Per 20 schedules: 8 `every` (30s .. 1d), 6 distinct 5-field crons (minute, hour and a
    weekday or day of month from the index), 5 H-hashed crons, 1 six-field cron. A fifth of
    them have a time zone; some have jitter, a catch-up policy or a description.
    """
    lines = ["defaults:", "  job: bench.job", "schedules:", f"  {prefix}-beat:", "    every: 1s"]
    lines.append("    queue: q0")
    for i in range(count - 1):
        kind = i % 20
        lines.append(f"  {schedule_name(prefix, i)}:")
        if kind < 8:
            lines.append(f"    every: {EVERY[(i // 20) % len(EVERY)]}")
        elif kind < 14:
            minute, hour = i % 60, (i // 60) % 24
            if kind % 2:
                lines.append(f'    cron: "{minute} {hour} * * {(i // 1440) % 7}"')
            else:
                lines.append(f'    cron: "{minute} {hour} {1 + (i // 1440) % 28} * *"')
        elif kind < 19:
            lines.append(f'    cron: "{HASHED[(i // 20) % len(HASHED)]}"')
        else:
            lines.append(f'    cron: "{(i // 20) % 60} */5 * * * *"')
        if i % 5 == 3:
            lines.append(f"    timezone: {ZONES[(i // 5) % len(ZONES)]}")
        if i % 7 == 0:
            lines.append(f"    args: {{tenant: t{i % 997}, n: {i}}}")
        if i % 11 == 0 and kind < 8 and (i // 20) % len(EVERY) >= 5:
            lines.append("    jitter: 30s")
        if i % 13 == 0:
            lines.append(f"    catchup: {('latest', 'skip')[i % 2]}")
        if i % 17 == 0:
            lines.append(f"    description: benchmark schedule number {i}")
        lines.append(f"    queue: q{i % queues}")
    return "\n".join(lines) + "\n"


# -- reading the streams back -----------------------------------------------------------------


class Entry(NamedTuple):
    ms: int  # the entry id's milliseconds: Redis's clock at XADD
    schedule: bytes
    fire_ts: int
    enqueued_s: float  # the `enqueued_at` field
    token: int
    trigger: bytes
    stream: int  # index into the streams read


_instants: dict[bytes, float] = {}


def parse_instant(text: bytes) -> float:
    """`2026-11-22T02:00:00.004Z` -> Unix seconds; cached, as a batch shares one value."""
    value = _instants.get(text)
    if value is None:
        whole = calendar.timegm(
            (
                int(text[0:4]),
                int(text[5:7]),
                int(text[8:10]),
                int(text[11:13]),
                int(text[14:16]),
                int(text[17:19]),
                0,
                0,
                0,
            )
        )
        fraction = float(b"0" + text[19:-1]) if len(text) > 20 else 0.0
        value = _instants[text] = whole + fraction
        if len(_instants) > 1_000_000:
            _instants.clear()
    return value


def raw_client(url: str) -> redis.Redis:
    """Bytes in, bytes out, and XRANGE / XREVRANGE replies as Redis sends them (lists of
    `[id, [field, value, ...]]`, no dict per entry): the fast way to read a million entries."""
    client = redis.Redis.from_url(url, decode_responses=False, socket_timeout=60.0)
    for command in ("XRANGE", "XREVRANGE"):
        client.set_response_callback(command, lambda response, **options: response)
    return client


RawEntry = tuple[bytes, list[bytes]]
_WANTED = (b"schedule", b"fire_ts", b"enqueued_at", b"token", b"trigger")


def stream_page(
    client: redis.Redis, key: str, start: bytes, end: bytes, count: int, reverse: bool = False
) -> list[RawEntry]:
    """One XRANGE (or XREVRANGE, from `start` down to `end`) page, raw (see raw_client)."""
    command = "XREVRANGE" if reverse else "XRANGE"
    page: list[RawEntry] = client.execute_command(  # type: ignore[no-untyped-call]
        command, key, start, end, "COUNT", count
    )
    return page


def fields_of(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def read_stream(client: redis.Redis, key: str, index: int, start: bytes = b"-") -> Iterator[Entry]:
    """Every entry of one stream from `start` (inclusive), XRANGE a page at a time.

    The fields are found by position, the positions taken from the first entry of each page and
    checked on every entry (an entry laid out otherwise is read by name)."""
    while True:
        page = stream_page(client, key, start, b"+", PAGE)
        if not page:
            return
        layout = list(page[0][1][0::2])
        at = [2 * layout.index(name) + 1 if name in layout else 0 for name in _WANTED]
        s, f, e, t, g = at
        for entry_id, flat in page:
            if (
                0 in at
                or flat[s - 1] != b"schedule"
                or flat[f - 1] != b"fire_ts"
                or flat[e - 1] != b"enqueued_at"
                or flat[t - 1] != b"token"
                or flat[g - 1] != b"trigger"
            ):
                named = fields_of(flat)
                values = [named[name] for name in _WANTED]
            else:
                values = [flat[s], flat[f], flat[e], flat[t], flat[g]]
            yield Entry(
                int(entry_id[: entry_id.index(b"-")]),
                values[0],
                int(values[1]),
                parse_instant(values[2]),
                int(values[3]),
                values[4],
                index,
            )
        if len(page) < PAGE:
            return
        start = b"(" + page[-1][0]


def stream_lengths(client: redis.Redis, keys: Sequence[str]) -> int:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.xlen(key)
    return sum(int(n) for n in pipe.execute())


def first_entry_ms(client: redis.Redis, keys: Sequence[str]) -> int | None:
    """The earliest entry id's milliseconds over all streams, or None if they are empty."""
    found = []
    for key in keys:
        page = stream_page(client, key, b"-", b"+", 1)
        if page:
            found.append(int(page[0][0].split(b"-")[0]))
    return min(found) if found else None


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


@dataclass
class WindowTally:
    """Counts the runs of known schedules whose fire_ts lies in [first, last].

    Every schedule is expected to fire every second of the window (the `every: 1s` sets), so
    a cell per (schedule, second) says delivered (1), missing (0) or duplicated (2+).
    """

    names: Sequence[str]
    first: int
    last: int
    index: dict[bytes, int] = field(init=False)
    counts: bytearray = field(init=False)
    lags: array[float] = field(default_factory=lambda: array("d"))
    write_lags: array[float] = field(default_factory=lambda: array("d"))
    in_window: int = 0
    early: int = 0  # in the window, but written before their fire second began
    outside: int = 0
    outside_duplicates: int = 0
    unknown: int = 0
    token_regressions: int = 0
    triggers: Counter[str] = field(default_factory=Counter)
    tokens: Counter[int] = field(default_factory=Counter)
    _outside_seen: set[tuple[int, int]] = field(default_factory=set)
    _stream_token: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {name.encode(): i for i, name in enumerate(self.names)}
        self.counts = bytearray(len(self.names) * self.seconds)

    @property
    def seconds(self) -> int:
        return max(0, self.last - self.first + 1)

    def add(self, entries: Iterable[Entry]) -> None:
        first, last, seconds = self.first, self.last, self.seconds
        counts, index = self.counts, self.index
        for entry in entries:
            self.tokens[entry.token] += 1
            self.triggers[entry.trigger.decode()] += 1
            highest = self._stream_token.get(entry.stream, 0)
            if entry.token < highest:
                self.token_regressions += 1
            else:
                self._stream_token[entry.stream] = entry.token
            position = index.get(entry.schedule)
            if position is None:
                self.unknown += 1
                continue
            if first <= entry.fire_ts <= last:
                self.in_window += 1
                if entry.ms < entry.fire_ts * 1000:
                    self.early += 1
                cell = position * seconds + entry.fire_ts - first
                if counts[cell] < 255:
                    counts[cell] += 1
                self.lags.append(entry.enqueued_s - entry.fire_ts)
                self.write_lags.append(entry.ms / 1000 - entry.fire_ts)
            else:
                self.outside += 1
                key = (position, entry.fire_ts)
                if key in self._outside_seen:
                    self.outside_duplicates += 1
                else:
                    self._outside_seen.add(key)

    @property
    def expected(self) -> int:
        return len(self.counts)

    @property
    def missing(self) -> int:
        return self.counts.count(0)

    @property
    def delivered(self) -> int:
        return self.expected - self.missing

    @property
    def duplicates(self) -> int:
        return self.in_window - self.delivered + self.outside_duplicates

    def lag_figures(self) -> dict[str, float | None]:
        """min / p50 / p99 / max in milliseconds of both lags."""
        figures: dict[str, float | None] = {}
        for label, values in (("lag", self.lags), ("write_lag", self.write_lags)):
            ordered = sorted(values)
            for name, fraction in (("min", 0.0), ("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
                value = percentile(ordered, fraction)
                figures[f"{label}_{name}_ms"] = None if value is None else round(value * 1000, 1)
        return figures
