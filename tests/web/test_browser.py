"""The status page in a real browser: Debian's chromium driven by Playwright, real daemons.

A leader with an admin token and a follower without one, on a real redis-server: the page of
each shows the leader, the schedules and where each queue's runs go, renders a job string like
`<script>` as text, pauses a schedule with the token (and the leader stops enqueueing it), and
is refused (403) without it.
Skips, saying why, where chromium or playwright is missing; .ci/run installs both.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.daemons import KEYS, Daemon, wait_for_leader, wait_for_runs
from tests.redis_server import RedisServer, free_port, wait_until

CHROMIUM = os.environ.get("CRONLEASE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# The brief's flags: no network of its own (updates, sync, field trials), no first-run UI.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(tempfile.gettempdir()) / "cronlease-status-page.png"
TOKEN = "browser-t0ken"
EVIL_JOB = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
SCHEDULES = f"""
schedules:
  beat:
    every: 1s
    job: test.beat
  nightly:
    cron: "0 3 * * *"
    timezone: Europe/Berlin
    job: "{EVIL_JOB}"
    queue: mail
queues:
  mail: {{target: celery, db: 1}}
"""


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'"
    )
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 1000},
        )
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.errors = errors
            yield page
        finally:
            context.close()


def post(url: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def beat_fires(client: redis.Redis) -> list[int]:
    entries = client.xrange(KEYS.queue("default"))
    return [int(f["fire_ts"]) for _, f in entries if f["schedule"] == "beat"]


def test_the_page_shows_the_cluster_and_pauses_with_the_token_only(
    browser_page: Any, redis_server: RedisServer, redis: redis.Redis, tmp_path: Path
) -> None:
    page = browser_page
    config = tmp_path / "schedules.yaml"
    config.write_text(SCHEDULES)
    secret = tmp_path / "secret" / "admin-token"  # as a mounted Kubernetes Secret looks
    secret.parent.mkdir()
    secret.write_text(TOKEN + "\n")
    leader_port, follower_port = free_port(), free_port()
    common = ["--metrics-host", "127.0.0.1"]
    leader = Daemon(
        "r1",
        config,
        redis_server.url,
        tmp_path,
        extra_args=[*common, "--metrics-port", str(leader_port), "--admin-token-file", str(secret)],
    )
    follower = None
    try:
        assert wait_for_leader(redis) == "r1"
        follower = Daemon(
            "r2",
            config,
            redis_server.url,
            tmp_path,
            extra_args=[*common, "--metrics-port", str(follower_port)],
        )
        wait_for_runs(redis, 2, timeout_s=10)

        page.goto(f"http://127.0.0.1:{leader_port}/")
        page.locator("#leader dd", has_text="r1").first.wait_for()
        beat = page.locator('tr[data-schedule="beat"]')
        beat.wait_for()
        nightly = page.locator('tr[data-schedule="nightly"]')
        assert EVIL_JOB in nightly.inner_text(), "the job string shows as the text it is"
        assert page.evaluate("window.__pwned") is None, "and never runs"
        assert page.locator("script").count() == 1 and page.locator("tbody img").count() == 0
        page.locator("#replicas tbody tr", has_text="r2").wait_for()
        # Where each queue's runs go: its stream, or the job system it is delivered into.
        assert page.locator("#queues thead th").nth(1).inner_text() == "runs go to"
        mail = page.locator("#queues tbody tr", has_text="celery")
        mail.wait_for()
        cells = mail.locator("td")
        assert cells.all_inner_texts()[:3] == ["mail", "celery queue 'mail' in db 1", "0"]
        default = page.locator("#queues tbody tr", has_text="default").locator("td")
        assert default.all_inner_texts()[:2] == ["default", f"stream {KEYS.queue('default')}"]

        # A wrong token: the page sends it, the daemon refuses with 403, nothing is paused.
        page.fill("#token", "not-the-token")
        beat.get_by_role("button", name="Pause").click()
        page.locator("#message", has_text="refused (403)").wait_for()
        assert redis.exists(KEYS.paused) == 0

        page.fill("#token", TOKEN)
        beat.get_by_role("button", name="Pause").click()
        page.locator("#message", has_text="paused beat").wait_for()
        assert redis.smembers(KEYS.paused) == {"beat"}
        paused_at = int(redis.time()[0])
        beat.locator(".tag.paused").wait_for()  # the page shows it at once
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        # The leader stops enqueueing it: its cursor moves past the pause, no run is written.
        wait_until(lambda: int(float(redis.hget(KEYS.cursor, "beat") or 0)) >= paused_at + 2, 10)
        assert [f for f in beat_fires(redis) if f > paused_at] == []
        assert page.evaluate("sessionStorage.length") == 1 and not page.evaluate("document.cookie")

        # Without the token, and on a replica that has none, actions are refused with 403.
        code, body = post(f"http://127.0.0.1:{leader_port}/api/schedules/beat/resume")
        assert code == 403, body
        assert follower is not None
        page.goto(f"http://127.0.0.1:{follower_port}/")
        page.locator("#readonly").wait_for()
        assert "Read-only" in page.locator("#readonly").inner_text()
        assert page.locator('tr[data-schedule="beat"] button', has_text="Pause").count() == 0
        page.locator("#leader dd", has_text="r1").first.wait_for()  # a follower's page too
        code, body = post(f"http://127.0.0.1:{follower_port}/api/schedules/beat/resume", TOKEN)
        assert code == 403 and body["error"].startswith("read-only"), body
        assert redis.smembers(KEYS.paused) == {"beat"}
        assert page.errors == []
    finally:
        leader.kill()
        if follower is not None:
            follower.kill()
