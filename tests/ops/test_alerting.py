"""The Prometheus rules, their unit tests and the Grafana dashboard (helm/cronlease/files/).

Offline checks always run: the files parse, every expected alert exists with `for`, a severity and
annotations, every metric named in an expression is one scheduler/ops/metrics.py registers (the
outbox relay's of scheduler/ops/relaymetrics.py included; with the suffixes prometheus-client
adds) or one of the worker's (WORKER_METRICS below, checked against scheduler/worker/ once that
package exists), label matchers use real labels and values, and the
dashboard takes its data source from the `${datasource}` variable everywhere. When `promtool` is
on PATH, `promtool check rules` and `promtool test rules` must pass too, and every dashboard
expression must parse as PromQL.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from scheduler.core.queues import TARGETS
from scheduler.ops import metrics as metrics_mod
from scheduler.ops.metrics import Metrics, WeightedHistogram

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "helm" / "cronlease" / "files" / "cronlease-rules.yaml"
RULE_TESTS = [
    ROOT / "tests" / "alerting" / "cronlease-rules.test.yaml",
    ROOT / "tests" / "alerting" / "cronlease-worker-rules.test.yaml",
]
WORKER_PACKAGE = ROOT / "scheduler" / "worker"
DASHBOARD = ROOT / "helm" / "cronlease" / "files" / "cronlease-dashboard.json"

EXPECTED_ALERTS = {
    "CronleaseNoLeader",
    "CronleaseMultipleLeaders",
    "CronleaseScheduleOverdue",
    "CronleaseEnqueueLagHigh",
    "CronleaseMisfires",
    "CronleaseConfigReloadFailed",
    "CronleaseConfigDrift",
    "CronleaseRedisErrors",
    "CronleaseReplicaDown",
    "CronleaseLoopStalled",
    "CronleaseOutboxBacklog",
    "CronleaseRelayFailing",
    "CronleaseRelayRedelivered",
    "CronleaseWorkerDeadLetters",
    "CronleaseWorkerFailureRateHigh",
    "CronleaseWorkerBacklogOld",
    "CronleaseWorkerNoneUp",
    "CronleaseWorkerDown",
}
SEVERITIES = {"critical", "warning", "info"}
# Labels Prometheus attaches to every scraped series (target labels, `le` of histogram buckets).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "le"}
# Series that come from Prometheus itself, not from cronlease.
STANDARD_SERIES = {"up"}
# The series of `cronlease worker` (scheduler/worker/): family name -> (type, label names), as
# prometheus-client is given them. Its `job` label (what the worker runs) collides with the target
# label `job`, so Prometheus (honor_labels: false) stores it as `exported_job`: expressions must
# use that name (WORKER_RENAMED).
WORKER_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cronlease_worker_runs": ("counter", ("queue", "job", "outcome")),
    "cronlease_worker_run_duration_seconds": ("histogram", ("job",)),
    "cronlease_worker_in_flight": ("gauge", ("queue",)),
    "cronlease_worker_retries_waiting": ("gauge", ("queue",)),
    "cronlease_worker_dead_letters": ("gauge", ("queue",)),
    "cronlease_worker_oldest_waiting_age_seconds": ("gauge", ("queue",)),
    "cronlease_worker_up": ("gauge", ()),
}
WORKER_OUTCOMES = ("succeeded", "retried", "dead", "duplicate")
WORKER_RENAMED = {"job": "exported_job"}
# Label values an expression may match exactly, per label, from the constants of metrics.py.
KNOWN_VALUES = {
    "outcome": set(metrics_mod.OUTCOMES),
    "reason": {"", *metrics_mod.SKIP_REASONS},
    "event": set(metrics_mod.LEADER_EVENTS),
    "result": set(metrics_mod.RENEW_RESULTS) | set(metrics_mod.RELOAD_RESULTS),
    "kind": set(metrics_mod.REDIS_ERROR_KINDS),
    "target": set(TARGETS),
}
WORKER_KNOWN_VALUES = {"outcome": set(WORKER_OUTCOMES)}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
# What Grafana substitutes for its variables, to turn a panel query into plain PromQL.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
    "$job": "cronlease",
    "$instance": ".*",
    "$worker_job": "cronlease-worker",
    "$queue": ".*",
}

SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
CRONLEASE_NAME = re.compile(r"\bcronlease_[a-z0-9_]+\b")


# --- helpers -------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def dashboard() -> dict[str, Any]:
    with DASHBOARD.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in the tree, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels of a collapsed row


def dashboard_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) of every panel target and annotation query."""
    queries = [
        (f"panel {p['title']!r} {t['refId']}", t["expr"])
        for p in panels(board)
        for t in p.get("targets", [])
        if t.get("expr")
    ]
    queries += [
        (f"annotation {a['name']!r}", a["expr"])
        for a in board["annotations"]["list"]
        if a.get("expr")
    ]
    return queries


def dashboard_exprs(board: dict[str, Any]) -> list[str]:
    return [expr for _, expr in dashboard_queries(board)]


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable left in {expr!r}"
    return expr


def worker_series() -> dict[str, set[str]]:
    """Every series name of the worker, mapped to the label names Prometheus stores."""
    names: dict[str, set[str]] = {}
    for family, (kind, labels) in WORKER_METRICS.items():
        stored = {WORKER_RENAMED.get(label, label) for label in labels}
        for suffix in SUFFIXES[kind]:
            names[family + suffix] = stored
    return names


def known_values(name: str) -> dict[str, set[str]]:
    return WORKER_KNOWN_VALUES if name.startswith("cronlease_worker_") else KNOWN_VALUES


def registered() -> dict[str, set[str]]:
    """Every series name cronlease (daemon and worker) exposes, mapped to its label names."""
    m = Metrics(CollectorRegistry())
    suffixes = SUFFIXES
    names: dict[str, set[str]] = {}
    # The outbox relay's series are registered by m.relay (scheduler/ops/relaymetrics.py).
    for wrapper in [*vars(m).values(), *vars(m.relay).values()]:
        if not isinstance(wrapper, (MetricWrapperBase, WeightedHistogram)):
            continue
        for family in wrapper.describe():
            labels = set(getattr(wrapper, "_labelnames", ()))
            if family.type == "info":
                labels |= {"version", "python"}
            for suffix in suffixes[family.type]:
                names[family.name + suffix] = labels
    # Cross-check with what the registry really exposes once every kind of series exists.
    m.set_schedules(["report"], {"report": 60})
    m.queue_target.labels("report", "rabbitmq", "report", "").set(1)
    relay = m.relay
    relay.show("report", 2, 1, 3.0)
    for counter in (relay.delivered, relay.duplicates, relay.redelivered, relay.retried):
        counter.labels("report").inc()
    relay.failed.labels("report").inc()
    relay.lag.labels("report").observe(0.1)
    exposed = {s.name for family in m.registry.collect() for s in family.samples}
    assert exposed <= set(names), exposed - set(names)
    workers = worker_series()
    assert not set(names) & set(workers), "worker names clash with the daemon's"
    return names | workers


def used_series(expr: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """(name, {label: (operator, value)}) for every selector of a cronlease or `up` series."""
    found = []
    for match in SELECTOR.finditer(expr):
        name, braces = match.group(1), match.group(2)
        if not (name.startswith("cronlease_") or name in STANDARD_SERIES):
            continue
        matchers = {m.group(1): (m.group(2), m.group(3)) for m in MATCHER.finditer(braces or "")}
        found.append((name, matchers))
    return found


def all_exprs() -> list[Any]:
    exprs = [(f"rule {r.get('alert') or r.get('record')}", r["expr"]) for r in rules()]
    exprs += dashboard_queries(dashboard())
    return [pytest.param(where, expr, id=where) for where, expr in exprs]


# --- the rule file -------------------------------------------------------------------------------


def rule_test_cases() -> list[dict[str, Any]]:
    return [case for path in RULE_TESTS for case in load_yaml(path)["tests"]]


@pytest.mark.parametrize("path", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_rule_files_are_yaml(path: Path) -> None:
    assert isinstance(load_yaml(RULES)["groups"], list)
    tests = load_yaml(path)
    assert [(path.parent / f).resolve() for f in tests["rule_files"]] == [RULES.resolve()]
    assert tests["tests"]


def test_every_expected_alert_exists() -> None:
    assert set(alerts()) >= EXPECTED_ALERTS


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_alert_has_for_severity_and_guidance(name: str) -> None:
    alert = alerts()[name]
    assert re.fullmatch(r"\d+[smh]", str(alert.get("for", ""))), f"{name}: no `for`"
    assert alert["labels"]["severity"] in SEVERITIES
    annotations = alert["annotations"]
    assert annotations["summary"].strip()
    # The description is what the person paged reads: it must say what to check or do.
    assert len(annotations["description"]) > 150
    assert re.search(r"\b(Check|check|Look|Find|fix|restart|Compare)\b", annotations["description"])


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in rule_test_cases():
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(alerts()) <= firing, f"never seen firing: {set(alerts()) - firing}"
    assert set(alerts()) <= quiet, f"never seen quiet: {set(alerts()) - quiet}"


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in rules() if "alert" in rule]
    assert len(names) == len(set(names))


# --- metric names and labels in every expression -------------------------------------------------


def test_registry_names_carry_prometheus_client_suffixes() -> None:
    names = registered()
    for name in (
        "cronlease_leader",
        "cronlease_leader_changes_total",
        "cronlease_enqueue_lag_seconds_bucket",
        "cronlease_build_info",
        "cronlease_config_reloads_total",
        "cronlease_relay_delivered_total",
        "cronlease_relay_lag_seconds_bucket",
        "cronlease_outbox_oldest_age_seconds",
        "cronlease_queue_target_info",
    ):
        assert name in names


@pytest.mark.parametrize(("where", "expr"), all_exprs())
def test_expression_uses_registered_metrics(where: str, expr: str) -> None:
    names = registered()
    mentioned = set(CRONLEASE_NAME.findall(expr))
    assert used_series(expr), f"{where}: no cronlease (or `up`) series in {expr!r}"
    unknown = mentioned - set(names)
    assert not unknown, f"{where}: in neither metrics.py nor WORKER_METRICS: {sorted(unknown)}"
    for name, matchers in used_series(expr):
        if name in STANDARD_SERIES:
            continue
        known = known_values(name)
        for label, (op, value) in matchers.items():
            assert label in names[name] | TARGET_LABELS, f"{where}: {name} has no label {label}"
            if op in ("=", "!=") and label in known:
                assert value in known[label], f"{where}: {label}{op}{value!r} never exported"
            if op in ("=~", "!~") and label in known:
                for part in value.split("|"):
                    assert part in known[label], f"{where}: {label}{op}{part!r} unknown"


def test_worker_labels_renamed_by_prometheus_are_not_matched_by_their_own_name() -> None:
    # `job` on a worker series is the scrape job; the worker's own job is `exported_job`.
    for where, expr in [(p.id, p.values[1]) for p in all_exprs()]:
        for name, matchers in used_series(expr):
            if name.startswith("cronlease_worker_") and "job" in matchers:
                op, value = matchers["job"]
                assert "$" in value or "worker" in value, f"{where}: {name}{{job{op}{value!r}}}"


def test_worker_metrics_match_the_worker_package() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in WORKER_PACKAGE.rglob("*.py"))
    if "prometheus_client" not in source:
        pytest.skip("scheduler/worker/ defines no metrics yet: worker series from WORKER_METRICS")
    literals = set(re.findall(r"[\"'](cronlease_worker_[a-z0-9_]+)[\"']", source))
    # prometheus-client accepts a counter's name with or without `_total`.
    families = {name.removesuffix("_total") for name in literals}
    assert families == set(WORKER_METRICS), (
        f"scheduler/worker/ names {sorted(families)}; WORKER_METRICS (and the rules and dashboard "
        f"that use them) expect {sorted(WORKER_METRICS)}"
    )
    for outcome in WORKER_OUTCOMES:
        assert re.search(rf"[\"']{outcome}[\"']", source), f"outcome {outcome!r} not in the package"


# --- the dashboard -------------------------------------------------------------------------------


def test_dashboard_is_json_with_uid_and_title() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    assert board["schemaVersion"] >= 36
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"


def test_dashboard_variables() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert set(GRAFANA_VARIABLES) - {"$__rate_interval", "$__interval", "$__range"} == {
        f"${name}" for name in variables if name != "datasource"
    }
    for name in ("job", "instance", "worker_job", "queue"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"


def test_dashboard_takes_its_data_source_from_the_variable() -> None:
    board = dashboard()
    for node in walk(board):
        source = node.get("datasource")
        if isinstance(source, dict):
            assert source == {"type": "prometheus", "uid": "${datasource}"}, node.get("title")
        elif source is not None:
            assert source == "${datasource}", node.get("title")
    # Nothing else names a data source uid: the only other uid is the dashboard's own.
    uids = [node["uid"] for node in walk(board) if "uid" in node]
    assert [u for u in uids if u != "${datasource}"] == [board["uid"]]
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for t in panel["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_queries_filter_by_job() -> None:
    # Worker panels select the worker's scrape job ($worker_job), the others the daemon's ($job).
    board = dashboard()
    groups = [[t["expr"] for t in p.get("targets", []) if t.get("expr")] for p in panels(board)]
    groups += [[a["expr"]] for a in board["annotations"]["list"] if a.get("expr")]
    for exprs in groups:
        series = [found for expr in exprs for found in used_series(expr)]
        worker = any(name.startswith("cronlease_worker_") for name, _ in series)
        variable = "$worker_job" if worker else "$job"
        for name, matchers in series:
            assert matchers.get("job") == ("=~", variable), f"{name} not filtered by {variable}"


def test_dashboard_has_the_panels_asked_for() -> None:
    exprs = "\n".join(dashboard_exprs(dashboard()))
    for needle in (
        "cronlease_leader{",
        "cronlease_occurrences_total{",
        "histogram_quantile(0.5, sum by (le) (rate(cronlease_enqueue_lag_seconds_bucket",
        "histogram_quantile(0.9, sum by (le) (rate(cronlease_enqueue_lag_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(cronlease_enqueue_lag_seconds_bucket",
        "time() - cronlease_schedule_next_fire_timestamp_seconds",
        "cronlease_queue_length{",
        "cronlease_queue_oldest_entry_age_seconds{",
        "cronlease_queue_pending{",
        "cronlease_lease_renewals_total{",
        "cronlease_redis_errors_total{",
        "cronlease_config_info{",
        "cronlease_config_drift{",
        "cronlease_config_reloads_total{",
        "cronlease_worker_up{",
        "sum by (queue, outcome) (rate(cronlease_worker_runs_total{",
        "histogram_quantile(0.5, sum by (le, exported_job) (rate("
        "cronlease_worker_run_duration_seconds_bucket{",
        "histogram_quantile(0.99, sum by (le, exported_job) (rate("
        "cronlease_worker_run_duration_seconds_bucket{",
        "cronlease_worker_in_flight{",
        "cronlease_worker_retries_waiting{",
        "cronlease_worker_dead_letters{",
        "cronlease_worker_oldest_waiting_age_seconds{",
        "sum by (queue) (rate(cronlease_relay_delivered_total{",
        "sum by (queue) (rate(cronlease_relay_failed_total{",
        "sum by (queue) (rate(cronlease_relay_retried_total{",
        "histogram_quantile(0.5, sum by (le, queue) (rate(cronlease_relay_lag_seconds_bucket{",
        "histogram_quantile(0.99, sum by (le, queue) (rate(cronlease_relay_lag_seconds_bucket{",
        "cronlease_outbox_waiting{",
        "cronlease_outbox_oldest_age_seconds{",
        "cronlease_queue_target_info{",
    ):
        assert needle in exprs, needle


# --- promtool ------------------------------------------------------------------------------------

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not on PATH (Debian/Ubuntu: apt-get install prometheus; or a Prometheus "
    "release tarball): rule syntax, rule unit tests and dashboard PromQL not checked",
)


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    print(result.stdout, result.stderr)
    return result


@needs_promtool
def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_test_rules() -> None:
    (folder,) = {path.parent for path in RULE_TESTS}
    result = promtool("test", "rules", *(path.name for path in RULE_TESTS), cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    exprs = dashboard_exprs(dashboard())
    group = {
        "name": "dashboard",
        "rules": [
            {"record": f"dashboard:query_{i}", "expr": as_promql(e)} for i, e in enumerate(exprs)
        ],
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [group]}), encoding="utf-8")
    result = promtool("check", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
