"""The status page's HTTP API against a real redis-server: the JSON twin of `status --json`,
paging and filtering, the actions and their token, delivery states of runs, what the page ships.

The app runs in this process behind a real ProbeServer on 127.0.0.1; the browser test
(test_browser.py) drives the page itself against real daemons.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from scheduler.cli.main import main
from scheduler.core.config import load_config
from scheduler.ops.httpserver import ProbeServer, Reply, Request
from scheduler.web.app import StatusApp
from tests.daemons import KEYS
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN = "t0ken-for-tests"
SCHEDULES = """
schedules:
  beat:
    every: 1s
    job: test.beat
  nightly:
    cron: "0 3 * * *"
    timezone: Europe/Berlin
    job: "<script>alert(1)</script>"
    queue: reports
"""
# Time-dependent: they move between two reads a few milliseconds apart.
MOVING = {"now", "now_ts", "last_fire_ago_s", "next_fire_in_s", "last_seen_ago_s", "oldest_age_s"}


def ok() -> tuple[bool, str]:
    return True, "ok"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(SCHEDULES)
    return path


class Served:
    def __init__(self, server: ProbeServer) -> None:
        self.base = f"http://127.0.0.1:{server.port}"

    def call(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.base + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, dict(reply.headers.items()), reply.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers.items()), error.read()

    def json(self, path: str, method: str = "GET", token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        code, _, body = self.call(path, method, headers)
        return code, json.loads(body)


@pytest.fixture
def serve(redis_server: RedisServer, redis: redis.Redis, config_file: Path) -> Iterator[Any]:
    servers: list[ProbeServer] = []

    def start(token: str | None = TOKEN) -> Served:
        config = load_config(str(config_file))
        app = StatusApp(
            lambda: redis,
            KEYS,
            lambda: config,
            config_path=str(config_file),
            lease_ttl_s=1.0,
            redis_url=redis_server.url,
            replica_id="web-test",
            admin_token=None if token is None else (lambda: token),
            cache_s=0.0,
        )
        server = ProbeServer("127.0.0.1", 0, CollectorRegistry(), ok, ok, app=app)
        server.start()
        servers.append(server)
        return Served(server)

    yield start
    for server in servers:
        server.stop()


def status_json(url: str, config: Path) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["status", "--json", "--config", str(config), "--redis-url", url])
    assert code == 0, err.getvalue()
    parsed: dict[str, Any] = json.loads(out.getvalue())
    return parsed


def still(value: Any) -> Any:
    """The value without the fields that move with the clock."""
    if isinstance(value, dict):
        return {k: still(v) for k, v in value.items() if k not in MOVING}
    if isinstance(value, list):
        return [still(item) for item in value]
    return value


def test_api_status_is_what_status_json_prints(
    serve: Any, redis_server: RedisServer, redis: redis.Redis, config_file: Path
) -> None:
    redis.hset(KEYS.cursor, mapping={"beat": 1_700_000_000, "gone": 1_600_000_000})
    redis.sadd(KEYS.paused, "nightly", "<img src=x onerror=alert(1)>")
    redis.xadd(KEYS.queue("reports"), {"schedule": "nightly", "run_id": "r1"})
    redis.xgroup_create(KEYS.queue("reports"), "workers", id="0")
    redis.xreadgroup("workers", "w1", {KEYS.queue("reports"): ">"}, count=1)
    served = serve()
    for _ in range(3):  # `beat` fires every second: two reads may straddle one of its fires
        code, headers, body = served.call("/api/status")
        assert code == 200 and headers["Content-Type"] == "application/json"
        api = json.loads(body)
        cli = status_json(redis_server.url, config_file)
        if still(api) == still(cli):
            break
    assert still(api) == still(cli)
    assert [s["name"] for s in api["schedules"]] == ["beat", "nightly"]
    assert api["schedules"][1]["job"] == "<script>alert(1)</script>"  # data, as written
    assert [u["name"] for u in api["unknown_schedules"]] == ["<img src=x onerror=alert(1)>", "gone"]
    reports = next(q for q in api["queues"] if q["name"] == "reports")
    assert (reports["length"], reports["pending"]) == (1, 1)
    [group] = reports["groups"]
    assert (group["name"], group["consumers"], group["pending"]) == ("workers", 1, 1)
    assert group["lag"] in (0, None)  # None: a Redis before 7 does not say
    assert reports["oldest_age_s"] is not None


def test_a_target_queue_shows_its_target_and_its_own_length(
    serve: Any, redis_server: RedisServer, redis: redis.Redis, config_file: Path
) -> None:
    config_file.write_text(
        SCHEDULES + "queues:\n  reports:\n    target: celery\n    name: nightly\n    db: 1\n"
    )
    redis_server.client(db=1).lpush("nightly", "message-1", "message-2")  # Celery's own list
    served = serve()
    code, api = served.json("/api/status")
    assert code == 200
    queues = {q["name"]: q for q in api["queues"]}
    assert queues["reports"] == {
        "name": "reports",
        "stream": None,
        "length": 2,
        "pending": None,
        "oldest_age_s": None,
        "groups": [],
        "target": "celery queue 'nightly' in db 1",
    }
    assert (queues["default"]["target"], queues["default"]["stream"]) == (
        "stream",
        KEYS.queue("default"),
    )
    assert still(api["queues"]) == still(status_json(redis_server.url, config_file)["queues"])


def test_a_page_of_schedules_filtered_and_counted(
    serve: Any, redis: redis.Redis, tmp_path: Path, config_file: Path
) -> None:
    lines = ["schedules:"]
    for i in range(250):
        lines += [f"  job-{i:03d}:", "    every: 1h", f"    job: task.{'even' if i % 2 else 'odd'}"]
    config_file.write_text("\n".join(lines) + "\n")
    served = serve()
    code, page = served.json("/api/status?limit=100&offset=200")
    assert code == 200
    assert [s["name"] for s in page["schedules"]] == [f"job-{i:03d}" for i in range(200, 250)]
    assert page["page"] == {"q": "", "offset": 200, "limit": 100, "matched": 250, "total": 250}
    assert page["web"] == {"replica": "web-test", "actions": True}
    code, found = served.json("/api/status?q=JOB-01&limit=5")
    assert [s["name"] for s in found["schedules"]] == [f"job-01{i}" for i in range(5)]
    assert found["page"]["matched"] == 10
    code, by_job = served.json("/api/status?q=task.odd")
    assert by_job["page"]["matched"] == 125


def test_actions_need_post_and_the_admin_token(serve: Any, redis: redis.Redis) -> None:
    served = serve()
    assert served.json("/api/schedules/beat/pause", "POST") == (
        403,
        {"error": "an action needs the admin token as `Authorization: Bearer <token>`"},
    )
    assert served.json("/api/schedules/beat/pause", "POST", token="guess")[0] == 403
    code, headers, _ = served.call(f"/api/schedules/beat/pause?token={TOKEN}")
    assert (code, headers["Allow"]) == (405, "POST")
    cross = {"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"}
    assert served.call("/api/schedules/beat/pause", "POST", cross)[0] == 403
    assert redis.exists(KEYS.paused) == 0, "nothing refused may have written"

    assert served.json("/api/schedules/beat/pause", "POST", token=TOKEN) == (
        200,
        {"ok": True, "message": "paused beat", "changed": True},
    )
    assert redis.smembers(KEYS.paused) == {"beat"}
    assert served.json("/api/schedules/beat/pause", "POST", token=TOKEN)[1]["changed"] is False
    code, status = served.json("/api/status")
    assert status["schedules"][0]["paused"] is True, "an action is seen by the next read"
    assert served.json("/api/schedules/beat/resume", "POST", token=TOKEN)[1]["changed"] is True
    assert redis.exists(KEYS.paused) == 0

    code, run = served.json("/api/schedules/nightly/trigger", "POST", token=TOKEN)
    assert code == 200 and run["run_id"].startswith("nightly@")
    [(entry_id, fields)] = redis.xrange(KEYS.queue("reports"))
    assert (entry_id, fields["trigger"]) == (run["entry_id"], "manual")
    assert fields["replica"] == "web@web-test", "who asked: the page of this replica"
    assert served.json("/api/schedules/nope/trigger", "POST", token=TOKEN)[0] == 404
    assert served.json("/api/schedules/beat/delete", "POST", token=TOKEN)[0] == 404


def test_without_a_token_the_page_is_read_only(serve: Any, redis: redis.Redis) -> None:
    served = serve(token=None)
    code, body = served.json("/api/schedules/beat/pause", "POST", token=TOKEN)
    assert code == 403 and body["error"].startswith("read-only")
    assert served.json("/api/status?limit=1")[1]["web"]["actions"] is False
    assert redis.exists(KEYS.paused) == 0


def test_recent_runs_say_how_far_each_got_in_its_consumer_groups(
    serve: Any, redis: redis.Redis
) -> None:
    stream = KEYS.queue("default")
    # Ids given: streams' own ids of one millisecond would leave the order across them open.
    ids = [
        redis.xadd(stream, {"schedule": "beat", "fire_ts": "1"}, id=f"1000-{i}") for i in (1, 2, 3)
    ]
    redis.xadd(KEYS.queue("reports"), {"schedule": "nightly", "fire_ts": "1"}, id="2000-0")
    redis.xgroup_create(stream, "workers", id="0")
    redis.xreadgroup("workers", "w1", {stream: ">"}, count=2)
    redis.xack(stream, "workers", ids[0])
    served = serve()
    code, found = served.json("/api/runs?schedule=beat&limit=10")
    assert code == 200 and found["complete"] is True
    assert [(r["entry_id"], r["delivery"]) for r in found["runs"]] == [
        (ids[2], {"workers": "waiting"}),
        (ids[1], {"workers": "pending"}),
        (ids[0], {"workers": "acknowledged"}),
    ]
    code, every = served.json("/api/runs?limit=2")
    assert [r["schedule"] for r in every["runs"]] == ["nightly", "beat"]


def test_the_page_ships_in_the_package_and_loads_nothing_from_elsewhere(serve: Any) -> None:
    assets = resources.files("scheduler.web") / "assets"
    names = {path.name for path in assets.iterdir()}
    assert {"index.html", "app.js", "app.css"} <= names
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert data["package-data"]["scheduler.web"], "the assets must go into the wheel"
    for name in names:
        text = assets.joinpath(name).read_text()
        assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), name
    script = assets.joinpath("app.js").read_text()
    # Text goes in as text: the one way a name could become markup is not used at all.
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)
    assert "localStorage" not in script and "cookie" not in script
    code, headers, body = serve().call("/")
    assert code == 200 and b'<script src="/static/app.js"' in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert serve().call("/static/app.js")[1]["Content-Type"].startswith("text/javascript")


def test_a_redis_that_does_not_answer_is_a_503_that_says_so(config_file: Path) -> None:
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    config = load_config(str(config_file))
    app = StatusApp(
        lambda: dead,
        KEYS,
        lambda: config,
        config_path=str(config_file),
        lease_ttl_s=1.0,
        redis_url="redis://:pw@127.0.0.1:1/0",
        replica_id="web-test",
        admin_token=None,
    )
    reply = app(Request("GET", "/api/status", "", {}, b""))
    assert reply is not None and reply.status == 503
    error = json.loads(reply.body)["error"]
    assert error.startswith("Redis at redis://:***@127.0.0.1:1/0: ") and "pw" not in error


def test_the_probe_server_survives_a_failing_page_and_refuses_big_bodies() -> None:
    def broken(request: Request) -> Reply | None:
        if request.path == "/mine":
            raise RuntimeError("a bug in the page")
        return None

    server = ProbeServer("127.0.0.1", 0, CollectorRegistry(), ok, ok, app=broken)
    server.start()
    try:
        served = Served(server)
        assert served.call("/mine")[0] == 500
        assert served.call("/healthz")[0] == 200
        assert served.call("/other")[2] == b"not found: try /, /metrics, /healthz or /readyz\n"
        big = urllib.request.Request(served.base + "/mine", data=b"x" * 20000, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(big, timeout=10)
        assert refused.value.code == 413
    finally:
        server.stop()


@pytest.mark.parametrize("content", [None, "\n"], ids=["a missing file", "an empty file"])
def test_a_token_file_that_cannot_serve_is_exit_2_before_anything_starts(
    tmp_path: Path, config_file: Path, redis_server: RedisServer, content: str | None
) -> None:
    token = tmp_path / "token"
    if content is not None:
        token.write_text(content)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRONLEASE_")}
    result = subprocess.run(
        [sys.executable, "-m", "scheduler", "run", "--config", str(config_file), "--redis-url",
         redis_server.url, "--metrics-port", str(free_port()), "--admin-token-file", str(token)],
        capture_output=True, text=True, timeout=30, env=clean, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "cronlease run: --admin-token-file: " in result.stderr
    assert ("cannot read" if content is None else "is empty") in result.stderr
