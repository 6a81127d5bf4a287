"""The deployment artefacts: systemd unit and env file, Helm chart, Dockerfile (offline, fast).

Static checks always run. `systemd-analyze verify`/`security` run when systemd-analyze is on PATH;
the chart is rendered when a helm 3 binary is found ($CRONLEASE_HELM, else `helm` on PATH).
ci/validate-deploy.sh does all of this and more (helm lint, kubernetes-validate, promtool).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.cli.settings import add_common_flags, env_name

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "cronlease.service"
ENV_EXAMPLE = ROOT / "systemd" / "cronlease.env.example"
CHART = ROOT / "helm" / "cronlease"
DOCKERFILE = ROOT / "Dockerfile"
MAX_EXPOSURE = 2.0
KUBE_VERSION = "1.30.0"


# --- systemd -------------------------------------------------------------------------------------


def unit_settings(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) per assignment, in order; keys may repeat, as systemd allows."""
    settings: list[tuple[str, str, str]] = []
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.append((section, key.strip(), value.strip()))
    return settings


def unit_value(key: str) -> str:
    values = [v for _, k, v in unit_settings(UNIT) if k == key]
    assert values, f"{key}= missing from {UNIT.name}"
    return values[-1]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, f"unexpected time span {value!r}"
    return int(match[1]) * (60 if match[2] == "min" else 1)


def test_unit_runs_the_daemon_as_a_notify_service_with_watchdog_and_reload() -> None:
    assert unit_value("Type") == "notify"
    assert unit_value("NotifyAccess") == "main"
    # The loop turns at least every TTL/3 (10 s default) and pings at half the period.
    assert seconds(unit_value("WatchdogSec")) >= 20
    exec_start = unit_value("ExecStart")
    assert exec_start.startswith("/opt/cronlease/bin/cronlease run ")
    assert "--config ${CONFIGURATION_DIRECTORY}/schedules.yaml" in exec_start
    assert unit_value("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert unit_value("KillSignal") == "SIGTERM"
    # A clean stop takes ~2 s; leave margin, but do not wait for ever.
    assert 5 <= seconds(unit_value("TimeoutStopSec")) <= 30
    assert unit_value("Restart") == "on-failure"
    assert unit_value("DynamicUser") == "yes"
    assert unit_value("ConfigurationDirectory") == "cronlease"
    assert unit_value("StateDirectory") == "cronlease"
    assert unit_value("EnvironmentFile") == "-/etc/cronlease/cronlease.env"
    assert unit_value("CapabilityBoundingSet") == ""
    assert unit_value("ProtectSystem") == "strict"
    filters = [v for _, k, v in unit_settings(UNIT) if k == "SystemCallFilter"]
    assert filters == ["@system-service", "~@privileged @resources"]


def test_env_example_documents_every_flag_variable() -> None:
    parser = argparse.ArgumentParser()
    add_common_flags(parser)
    flags = [
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ]
    assert len(flags) >= 11
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for flag in flags:
        assert re.search(rf"^#?{env_name(flag)}=", text, re.MULTILINE), env_name(flag)
    # Only comments and blank lines: copying the example sets nothing by surprise.
    for line in text.splitlines():
        assert not line.strip() or line.startswith("#"), line


def cronlease_executable() -> str:
    found = shutil.which("cronlease") or str(Path(sys.executable).parent / "cronlease")
    if not os.access(found, os.X_OK):
        pytest.skip("no cronlease executable to point ExecStart at")
    return found


@pytest.fixture
def verifiable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart at this environment's cronlease (verify wants it to exist)."""
    text = UNIT.read_text(encoding="utf-8")
    assert text.count("ExecStart=/opt/cronlease/bin/cronlease ") == 1
    copy = tmp_path / "cronlease.service"
    copy.write_text(
        text.replace(
            "ExecStart=/opt/cronlease/bin/cronlease ", f"ExecStart={cronlease_executable()} "
        ),
        encoding="utf-8",
    )
    return copy


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not on PATH")
    return tool


def test_systemd_analyze_verify_prints_nothing(verifiable_unit: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "verify", str(verifiable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert (result.stdout + result.stderr).strip() == ""


def test_systemd_security_exposure_is_low(verifiable_unit: Path) -> None:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", str(verifiable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0 and "--offline" in result.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd 250+")
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for cronlease\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout[-500:]
    assert float(match[1]) <= MAX_EXPOSURE, result.stdout


# --- Helm chart: static ---------------------------------------------------------------------------


def schema_paths(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Every object schema's path, checking each one closes its properties."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    if schema.get("type") == "object" and "properties" in schema:
        assert schema.get("additionalProperties") is False, f"{prefix or '(root)'} is open"
        yield prefix
        for key, sub in schema["properties"].items():
            yield from schema_paths(sub, defs, f"{prefix}.{key}" if prefix else key)
    elif schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        yield from schema_paths(schema["items"], defs, prefix + "[]")


def value_objects(values: Any, prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(values, dict):
        yield prefix, values
        for key, sub in values.items():
            yield from value_objects(sub, f"{prefix}.{key}" if prefix else key)


def test_schema_is_closed_and_covers_every_default_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    defs = schema.get("definitions", {})
    closed = set(schema_paths(schema, defs))
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    # Maps with free keys (labels, annotations, node selector, requests) are string maps.
    free = {"podAnnotations", "podLabels", "nodeSelector"}
    for path, obj in value_objects(values):
        if path in free or path.endswith((".labels", ".annotations")) or not obj:
            continue
        assert path in closed, f"values.yaml object {path or '(root)'} has no closed schema"
    for name in (
        "replicaCount",
        "schedules",
        "resources",
        "image.repository",
        "image.tag",
        "redis.url",
        "redis.existingSecret",
        "metrics.serviceMonitor.enabled",
        "metrics.prometheusRule.enabled",
        "metrics.dashboard.enabled",
    ):
        node: Any = values
        for part in name.split("."):
            assert part in node, f"values.yaml lacks {name}"
            node = node[part]
    assert values["replicaCount"] == 3
    for flag in ("serviceMonitor", "prometheusRule", "dashboard"):
        assert values["metrics"][flag]["enabled"] is False


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "cronlease"
    assert chart["kubeVersion"] == ">=1.25.0-0"
    assert chart["appVersion"] == "0.1.0"
    ci = sorted(p.name for p in (CHART / "ci").glob("*.yaml"))
    assert ci == ["all-on-values.yaml", "default-values.yaml", "existing-secret-values.yaml"]


# --- Helm chart: rendered -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm() -> str:
    candidate = os.environ.get("CRONLEASE_HELM") or shutil.which("helm")
    if not candidate:
        pytest.skip("no helm: set CRONLEASE_HELM or put helm 3 on PATH (ci/validate-deploy.sh)")
    try:
        version = subprocess.run(
            [candidate, "version", "--short"], capture_output=True, text=True, timeout=30
        ).stdout
    except OSError as error:
        pytest.skip(f"{candidate} does not run: {error}")
    if not version.startswith("v3."):
        pytest.skip(f"{candidate} is not helm 3 ({version.strip()!r})")
    return candidate


def render(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, "template", "cronlease", str(CHART), "--kube-version", KUBE_VERSION, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def objects(helm: str, *args: str) -> list[dict[str, Any]]:
    result = render(helm, *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_default_render(helm: str) -> None:
    docs = objects(helm, "-f", str(CHART / "ci" / "default-values.yaml"))
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    assert kinds == [
        "ConfigMap/cronlease",
        "Deployment/cronlease",
        "Pod/cronlease-test-status",
        "PodDisruptionBudget/cronlease",
        "Secret/cronlease",
        "Service/cronlease",
        "ServiceAccount/cronlease",
    ]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]
    assert "checksum/config" in pod["metadata"]["annotations"]
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["args"][:5] == [
        "run",
        "--config",
        "/etc/cronlease/schedules.yaml",
        "--metrics-port",
        "9464",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["CRONLEASE_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "cronlease"
    assert env["CRONLEASE_REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "subPath" not in mounts["/etc/cronlease"]  # ConfigMap updates need a directory mount
    assert "/tmp" in mounts
    test_pod = next(d for d in docs if d["kind"] == "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["containers"][0]["args"][0] == "status"
    assert test_pod["spec"]["securityContext"] == spec["securityContext"]


def test_all_on_render_binds_alerts_to_the_scrape_job(helm: str) -> None:
    docs = objects(helm, "-f", str(CHART / "ci" / "all-on-values.yaml"))
    kinds = {d["kind"] for d in docs}
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds
    rules = yaml.safe_dump(next(d for d in docs if d["kind"] == "PrometheusRule")["spec"])
    assert 'job=~".*cronlease.*"' not in rules
    assert 'up{job="cronlease", namespace="default"}' in rules
    dashboard = next(d for d in docs if d["metadata"]["name"].endswith("-dashboard"))
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    json.loads(dashboard["data"]["cronlease-dashboard.json"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "replicaCont=2"], "replicaCont"),
        (["--set-string", "replicaCount=three"], "replicaCount"),
        (["--set", "replicaCount=true"], "replicaCount"),
    ],
)
def test_schema_rejects_bad_values(helm: str, args: list[str], message: str) -> None:
    result = render(helm, "-f", str(CHART / "ci" / "default-values.yaml"), *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_set_file_schedules_lands_in_the_configmap(helm: str) -> None:
    docs = objects(
        helm,
        "-f",
        str(CHART / "ci" / "default-values.yaml"),
        "--set-file",
        f"schedules={ROOT / 'schedules.yaml'}",
    )
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    assert configmap["data"]["schedules.yaml"] == (ROOT / "schedules.yaml").read_text()


# --- Dockerfile -----------------------------------------------------------------------------------


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert froms == ["python:3.11-slim", "python:3.11-slim"]
    final = text.split("\nFROM ")[-1]
    assert "COPY --from=builder /opt/venv /opt/venv" in final
    assert "apt-get" not in final and "pip " not in final
    assert re.search(r"^USER 10001", final, re.MULTILINE)
    assert 'ENTRYPOINT ["cronlease"]' in final
    assert 'CMD ["run"]' in final
    assert "EXPOSE 9464" in final
    assert "PYTHONDONTWRITEBYTECODE=1" in final and "PYTHONUNBUFFERED=1" in final
    assert (ROOT / ".dockerignore").is_file()
