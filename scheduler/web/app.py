"""The status page and its JSON API, served on the metrics port by any replica.

GET  /                                  the page (HTML; its script and style under /static/)
GET  /api/status[?q=&offset=&limit=]    what `cronlease status --json` prints; with a filter or
                                        a page, `schedules` holds that page, `page` says which,
                                        and `web` whether actions are on
GET  /api/runs[?schedule=NAME&limit=N]  the most recent runs, newest first, with their delivery
POST /api/schedules/NAME/pause|resume|trigger   with `Authorization: Bearer <admin token>`
                                        (trigger: into the queue's stream, or its target's
                                        own queue; 409 when that target cannot take it)

Every replica reads Redis as `cronlease status` does, followers too. The page's text is built
in the browser with textContent only, so a name or a job string is never markup.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote

from redis import Redis

from scheduler.core.queues import QueueSpec
from scheduler.core.schedule import Config, Schedule
from scheduler.ops.httpserver import Reply, Request
from scheduler.status import actions
from scheduler.status.jsonview import render_json, report_dict
from scheduler.status.nextfires import NextFires
from scheduler.status.report import ScheduleView, StatusReport, build_report
from scheduler.status.runs import recent_runs
from scheduler.status.snapshot import read_snapshot
from scheduler.store.connection import REDIS_ERRORS, redact
from scheduler.store.keys import Keys
from scheduler.targets.operator import OperatorRefused, OperatorWriter
from scheduler.targets.registry import target_queues_of
from scheduler.web.auth import TokenSource, check

log = logging.getLogger(__name__)

# Several operators' pages refreshing every few seconds share one Redis read and one report:
# with 10,000 schedules a report is tens of milliseconds of this process's CPU, which the
# leader's loop shares.
CACHE_S = 1.0
MAX_PAGE = 1000
MAX_RUNS = 200
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
}
# Nothing from elsewhere, no inline script or style, no framing: the page cannot be made to run
# anything but its own file, whatever a schedule's name or job says.
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
)


class StatusApp:
    """The web app for a ProbeServer: a Request in, a Reply out (None: not one of its paths)."""

    def __init__(
        self,
        client: Callable[[], Redis],
        keys: Keys,
        config: Callable[[], Config],
        *,
        config_path: str,
        lease_ttl_s: float,
        redis_url: str,
        replica_id: str,
        admin_token: TokenSource | None,
        cache_s: float = CACHE_S,
    ) -> None:
        self._client = client
        self._keys = keys
        self._config = config
        self._config_path = config_path
        self._lease_ttl_s = lease_ttl_s
        self._redis_url = redis_url
        self._replica_id = replica_id
        self._admin_token = admin_token
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, StatusReport] | None = None
        self._cached_json: tuple[StatusReport, bytes] | None = None
        self._next_fires = NextFires()
        package = resources.files("scheduler.web") / "assets"
        self._assets = {
            path: (package.joinpath(name).read_bytes(), kind)
            for path, (name, kind) in ASSETS.items()
        }

    def __call__(self, request: Request) -> Reply | None:
        try:
            return self._route(request)
        except REDIS_ERRORS as error:
            # The page says so and tries again at its next refresh; the daemon's own loop
            # reports Redis trouble in its log already.
            detail = " ".join(str(error).split()) or type(error).__name__
            log.debug("web: %s %s: Redis: %s", request.method, request.path, detail)
            return _json(503, {"error": f"Redis at {redact(self._redis_url)}: {detail}"})

    def _route(self, request: Request) -> Reply | None:
        path = request.path
        if request.method == "GET" and path in self._assets:
            body, kind = self._assets[path]
            return Reply(200, body, kind, SECURITY_HEADERS)
        if request.method == "GET" and path == "/favicon.ico":
            return Reply(204, b"", headers=SECURITY_HEADERS)  # none: browsers ask regardless
        if not path.startswith("/api/"):
            return None
        parts = [unquote(part) for part in path.split("/")[2:]]
        query = parse_qs(request.query)
        if parts[:1] == ["schedules"] and len(parts) == 3:
            if request.method != "POST":
                return _json(405, {"error": "use POST"}, (("Allow", "POST"),))
            return self._act(request, parts[1], parts[2])
        if request.method != "GET":
            return _json(405, {"error": "use GET"}, (("Allow", "GET"),))
        if parts == ["status"]:
            return self._status(query)
        if parts == ["runs"]:
            return self._runs(query)
        return _json(404, {"error": f"no such API path: {path}"})

    # -- reading ---------------------------------------------------------------------------

    def report(self) -> StatusReport:
        """The current report, at most CACHE_S old."""
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._cache_s:
                return self._cached[1]
            config = self._config()
            queues = {s.queue for s in config.schedules}
            targets = target_queues_of(config.queues, self._keys)
            snap = read_snapshot(self._client(), self._keys, queues, targets)
            self._next_fires.forget_except({s.name for s in config.schedules})
            report = build_report(
                snap,
                config,
                None,
                config_path=self._config_path,
                keys=self._keys,
                lease_ttl_s=self._lease_ttl_s,
                redis_url=self._redis_url,
                next_fires=self._next_fires,
            )
            self._cached = (now, report)
            return report

    def _status(self, query: dict[str, list[str]]) -> Reply:
        report = self.report()
        if not {"q", "offset", "limit"} & query.keys():
            return Reply(200, self._full_json(report), "application/json", SECURITY_HEADERS)
        needle = _first(query, "q").strip().lower()
        schedules = report.schedules
        if needle:
            schedules = [s for s in schedules if _matches(s, needle)]
        offset = max(0, _int(query, "offset", 0))
        limit = min(MAX_PAGE, max(1, _int(query, "limit", 100)))
        # Only the page's rows become JSON: the reason a page of 10,000 schedules is quick.
        page = report_dict(replace(report, schedules=schedules[offset : offset + limit]))
        # Not in `status --json`: what only the page needs.
        page["web"] = {"replica": self._replica_id, "actions": self._admin_token is not None}
        page["page"] = {
            "q": needle,
            "offset": offset,
            "limit": limit,
            "matched": len(schedules),
            "total": len(report.schedules),
        }
        return _json(200, page)

    def _full_json(self, report: StatusReport) -> bytes:
        """`status --json`'s bytes, made once per report however many ask for them."""
        with self._lock:
            if self._cached_json is not None and self._cached_json[0] is report:
                return self._cached_json[1]
        body = render_json(report).encode()
        with self._lock:
            self._cached_json = (report, body)
        return body

    def _runs(self, query: dict[str, list[str]]) -> Reply:
        name = _first(query, "schedule") or None
        limit = min(MAX_RUNS, max(1, _int(query, "limit", 20)))
        config = self._config()
        schedule = config.by_name().get(name) if name else None
        queues = {schedule.queue} if schedule else {s.queue for s in config.schedules}
        found = recent_runs(self._client(), self._keys, queues, schedule=name, limit=limit)
        return _json(200, asdict(found))

    # -- acting ----------------------------------------------------------------------------

    def _act(self, request: Request, name: str, verb: str) -> Reply:
        if verb not in ("pause", "resume", "trigger"):
            return _json(404, {"error": f"no action {verb!r}: pause, resume or trigger"})
        token = self._admin_token() if self._admin_token is not None else None
        refused = check(request.headers, token)
        if refused is not None:
            log.warning("web: %s of %r refused: %s", verb, name, refused)
            return _json(403, {"error": refused})
        config = self._config()
        schedule = config.by_name().get(name)
        if schedule is None:
            return _json(404, {"error": f"unknown schedule {name!r} in {self._config_path}"})
        client = self._client()
        by = f"web@{self._replica_id}"
        if verb == "trigger":
            try:
                result = self._trigger(client, schedule, config.queue(schedule.queue), by)
            except OperatorRefused as error:
                log.warning("web: trigger of %r refused: %s", name, error)
                return _json(409, {"error": str(error)})
        else:
            paused = verb == "pause"
            changed = actions.set_paused(client, self._keys, name, paused)
            log.info("web: %s %s (%s)", verb, name, "done" if changed else "no change")
            state = "paused" if paused else "resumed"
            message = f"{state} {name}" if changed else f"{name} was already {state}"
            result = {"ok": True, "message": message, "changed": changed}
        with self._lock:
            self._cached = None  # the next read shows what this action did
        return _json(200, result)

    def _trigger(
        self, client: Redis, schedule: Schedule, spec: QueueSpec, by: str
    ) -> dict[str, Any]:
        """A manual run into the schedule's queue: its stream, or its target's own queue."""
        if spec.target != "stream" and not spec.relayed:
            into = OperatorWriter(client, self._keys, spec).trigger(schedule, by)
            log.info("web: triggered %s: run %s, job %s", schedule.name, into.run_id, into.job_id)
            message = f"enqueued manual run {into.run_id} as job {into.job_id} of {into.target}"
            return {"ok": True, "message": message, **asdict(into)}
        outbox = self._keys.outbox(schedule.queue) if spec.relayed else None
        run = actions.trigger(client, self._keys, schedule, by, outbox)
        log.info("web: triggered %s: run %s, entry %s", schedule.name, run.run_id, run.entry_id)
        message = f"enqueued manual run {run.run_id} as entry {run.entry_id} of {run.stream}"
        return {"ok": True, "message": message, **asdict(run)}


def _json(status: int, value: object, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    body = json.dumps(value, separators=(",", ":")).encode()
    return Reply(status, body, "application/json", SECURITY_HEADERS + headers)


def _matches(schedule: ScheduleView, needle: str) -> bool:
    return any(
        needle in text.lower()
        for text in (schedule.name, schedule.job, schedule.queue, schedule.spec)
    )


def _first(query: dict[str, list[str]], key: str) -> str:
    return query.get(key, [""])[0]


def _int(query: dict[str, list[str]], key: str, default: int) -> int:
    try:
        return int(_first(query, key))
    except ValueError:
        return default
