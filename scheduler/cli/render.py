"""How `cronlease status` shows a report to people: the table (`--json`: status/jsonview.py)."""

from __future__ import annotations

from scheduler.cli.util import table
from scheduler.status.report import STALE_AFTER_TTLS, StatusReport


def span(seconds: float) -> str:
    """A short human duration: `0.4s`, `42s`, `3m12s`, `2h5m`, `3d4h`."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count or parts:
            parts.append(f"{count}{unit}")
    return "".join(part for part in parts[:2] if not part.startswith("0"))


def render_text(report: StatusReport) -> list[str]:
    lines = [f"Redis     {report.redis_url}  namespace {report.namespace}  time {report.now}"]
    leader = report.leader
    if leader is None:
        lines.append(f"Leader    none: the lease is free (epoch {report.epoch})")
    else:
        who = f"{leader.replica}  fencing token {leader.token}"
        lines.append(f"Leader    {who}  epoch {report.epoch}")
        if leader.since is not None and leader.for_s is not None:
            lines.append(f"Since     {leader.since}  for {span(leader.for_s)}")
        else:
            lines.append("Since     not recorded yet")
        lines.append(f"Lease     {(leader.lease_left_ms or 0) / 1000:.2f}s left")
    previous = report.previous_leader
    if previous is not None:
        since = f" since {previous.since}" if previous.since else ""
        lines.append(f"Previous  {previous.replica}  fencing token {previous.token}{since}")
    config = report.config
    if config.loaded:
        same = {None: "", True: ", same as the leader's", False: ", DIFFERS from the leader's"}
        lines.append(f"Config    {config.path}  hash {config.hash}{same[config.matches_leader]}")
    else:
        lines.append(f"Config    {config.path} does not load: {config.error}")
    if report.config_drift:
        hash_text = report.leader.config_hash if report.leader else None
        lines.append(
            f"Drift     {', '.join(report.config_drift)} run a config other than the leader's "
            f"({hash_text})"
        )
    else:
        lines.append("Drift     none")

    rows: list[tuple[str, ...]]
    lines.append("")
    if report.replicas:
        rows = [
            (
                r.id,
                r.role,
                f"{span(r.last_seen_ago_s)} ago" + (", STALE" if r.stale else ""),
                (r.config_hash or "-") + (" (drift)" if r.config_drift else ""),
                r.version or "-",
                r.host or "-",
            )
            for r in report.replicas
        ]
        lines += table(("REPLICA", "ROLE", "LAST SEEN", "CONFIG", "VERSION", "HOST"), rows)
        if any(r.stale for r in report.replicas):
            # A clean stop removes its replica at once, so STALE always means it vanished.
            lines.append(
                f"STALE: silent for over {STALE_AFTER_TTLS} lease TTLs without a clean stop "
                "(killed, crashed, frozen or cut off from Redis)"
            )
    else:
        lines.append("No replica has sent a heartbeat.")

    lines.append("")
    if report.schedules:
        rows = [
            (
                s.name,
                s.kind,
                s.spec,
                s.queue,
                _when(s.last_fire, s.last_fire_ago_s, "ago"),
                "-" if s.next_fire is None else f"{s.next_fire} (in {span(s.next_fire_in_s or 0)})",
                "-" if s.next_fire_local is None else f"{s.next_fire_local} {s.timezone}",
                "yes" if s.paused else "no",
                "yes" if s.enabled else "no",
            )
            for s in report.schedules
        ]
        header = ("SCHEDULE", "KIND", "SPEC", "QUEUE", "LAST FIRE", "NEXT FIRE (UTC)")
        lines += table((*header, "NEXT FIRE (LOCAL)", "PAUSED", "ENABLED"), rows)
    elif config.loaded:
        lines.append(f"{config.path} has no schedules.")
    else:
        lines.append("Schedules: only what Redis knows (the config did not load):")
    if report.unknown_schedules:
        if report.schedules:
            lines += ["", f"Unknown to this config ({config.path}):"]
        rows = [
            (u.name, _when(u.last_fire, u.last_fire_ago_s, "ago"), "yes" if u.paused else "no")
            for u in report.unknown_schedules
        ]
        lines += table(("SCHEDULE", "LAST FIRE", "PAUSED"), rows)

    lines.append("")
    if report.queues:
        lines += table(
            ("QUEUE", "RUNS GO TO", "LENGTH", "PENDING", "OLDEST"),
            [
                (
                    q.name,
                    f"stream {q.stream}" if q.stream is not None else q.target,
                    str(q.length),
                    "-" if q.pending is None else str(q.pending),
                    "-" if q.oldest_age_s is None else f"{span(q.oldest_age_s)} old",
                )
                for q in report.queues
            ],
        )
    else:
        lines.append("No queues yet.")
    return lines


def _when(text: str | None, seconds: float | None, word: str) -> str:
    if text is None or seconds is None:
        return "never"
    return f"{text} ({span(seconds)} {word})"
