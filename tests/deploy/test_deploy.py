"""The deployment artefacts: systemd unit and env file, Helm chart, Dockerfile (offline, fast).

Static checks always run. `systemd-analyze verify`/`security` run when systemd-analyze is on PATH;
the chart is rendered when a helm 3 binary is found ($CRONLEASE_HELM, else `helm` on PATH).
ci/validate-deploy.sh does all of this and more (helm lint, kubernetes-validate, promtool).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
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
    assert ci == [
        "all-on-values.yaml",
        "bundled-ephemeral-values.yaml",
        "bundled-values.yaml",
        "default-values.yaml",
        "existing-secret-values.yaml",
        "password-file-values.yaml",
        "worker-values.yaml",
    ]


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


def render(helm: str, *args: str, release: str = "cronlease") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, "template", release, str(CHART), "--kube-version", KUBE_VERSION, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def objects(helm: str, *args: str, release: str = "cronlease") -> list[dict[str, Any]]:
    result = render(helm, *args, release=release)
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
        (["--set", "redis.bundled.maxmemory=lots"], "maxmemory"),
        (["--set", "redis.bundled.enabeld=true"], "enabeld"),
    ],
)
def test_schema_rejects_bad_values(helm: str, args: list[str], message: str) -> None:
    result = render(helm, "-f", str(CHART / "ci" / "default-values.yaml"), *args)
    assert result.returncode != 0
    assert message in result.stderr


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def by_kind_named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels, matchExpressions with In) matches labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_no_values_runs_a_bundled_redis_the_scheduler_points_at(helm: str) -> None:
    docs = objects(helm)  # no values at all: what a new user's `helm install` gets
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    assert kinds == [
        "ConfigMap/cronlease",
        "ConfigMap/cronlease-redis",
        "Deployment/cronlease",
        "NetworkPolicy/cronlease-redis",
        "Pod/cronlease-test-status",
        "PodDisruptionBudget/cronlease",
        "Secret/cronlease-redis",
        "Service/cronlease",
        "Service/cronlease-redis",
        "Service/cronlease-redis-headless",
        "ServiceAccount/cronlease",
        "StatefulSet/cronlease-redis",
    ]
    redis = by_kind(docs, "StatefulSet")
    assert redis["spec"]["replicas"] == 1
    assert redis["spec"]["serviceName"] == "cronlease-redis-headless"
    pod = redis["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert server["image"] == "redis:7"
    # The password is in no argument (`ps`): redis-server reads its hash from the ACL file.
    assert server["command"] == ["redis-server", "/usr/local/etc/redis/redis.conf"]
    assert "args" not in server and "env" not in server
    mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    conf = by_kind_named(docs, "ConfigMap", "cronlease-redis")["data"]["redis.conf"].splitlines()
    for line in ("appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction"):
        assert line in conf
    assert f"dir {mounts['data']}" in conf
    assert f"aclfile {mounts['auth']}/users.acl" in conf
    assert not any(line.startswith("requirepass") for line in conf)
    secret = by_kind(docs, "Secret")
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) >= 32
    acl = base64.b64decode(secret["data"]["users.acl"]).decode()
    digest = hashlib.sha256(password.encode()).hexdigest()
    assert acl == f"user default on #{digest} ~* &* +@all\n"  # the hash only, never the password
    assert password not in json.dumps(redis)
    # Probes: redis-cli ping with the password from the mounted file, through REDISCLI_AUTH.
    for probe in ("livenessProbe", "readinessProbe"):
        command = server[probe]["exec"]["command"]
        assert command[:2] == ["sh", "-c"]
        assert f'REDISCLI_AUTH="$(cat {mounts["auth"]}/password)" redis-cli' in command[2]
        assert " ping " in command[2] and "PONG" in command[2]
    # Hardened like the Deployment.
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert server["securityContext"]["allowPrivilegeEscalation"] is False
    assert server["securityContext"]["capabilities"]["drop"] == ["ALL"]
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in claim["spec"]
    assert "data" not in {v["name"] for v in pod["volumes"]}
    service = by_kind_named(docs, "Service", "cronlease-redis")
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    assert selects({"matchLabels": service["spec"]["selector"]}, redis_labels)
    # The scheduler: URL without password, the password as a file from the Secret (rotation).
    deployment = by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    assert env["CRONLEASE_REDIS_URL"] == {
        "name": "CRONLEASE_REDIS_URL",
        "value": "redis://cronlease-redis:6379/0",
    }
    password_file = env["CRONLEASE_REDIS_PASSWORD_FILE"]["value"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    (mount,) = [
        m for m in container["volumeMounts"] if password_file.startswith(m["mountPath"] + "/")
    ]
    assert "subPath" not in mount  # a subPath mount would never see a rotated Secret
    assert volumes[mount["name"]]["secret"]["secretName"] == "cronlease-redis"
    assert password_file == f"{mount['mountPath']}/password"
    assert "checksum/secret" not in deployment["spec"]["template"]["metadata"]["annotations"]
    test_pod = by_kind(docs, "Pod")
    test_env = env_of(test_pod["spec"]["containers"][0])
    assert test_env["CRONLEASE_REDIS_PASSWORD_FILE"] == env["CRONLEASE_REDIS_PASSWORD_FILE"]
    # The NetworkPolicy: only the scheduler and test pods in, on the Redis port.
    policy = by_kind(docs, "NetworkPolicy")
    assert selects(policy["spec"]["podSelector"], redis_labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    (peer,) = rule["from"]
    assert selects(peer["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert selects(peer["podSelector"], test_pod["metadata"]["labels"])
    other_release = {**test_pod["metadata"]["labels"], "app.kubernetes.io/instance": "other"}
    assert not selects(peer["podSelector"], other_release)


def test_bundled_redis_options(helm: str) -> None:
    docs = objects(helm, "-f", str(CHART / "ci" / "bundled-values.yaml"))
    redis = by_kind(docs, "StatefulSet")
    (server,) = redis["spec"]["template"]["spec"]["containers"]
    assert server["image"] == "registry.example.com/mirror/redis:7.2"
    assert server["resources"]["limits"]["memory"] == "384Mi"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    conf = by_kind_named(docs, "ConfigMap", "cronlease-redis")["data"]["redis.conf"]
    assert "maxmemory 256mb" in conf.splitlines()
    (rule,) = by_kind(docs, "NetworkPolicy")["spec"]["ingress"]
    assert rule["from"][1] == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "cronlease-worker"}}
    }
    none = objects(helm, "--set", "redis.bundled.persistence.storageClass=-")
    (claim,) = by_kind(none, "StatefulSet")["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == ""


def test_bundled_redis_without_persistence_or_network_policy(helm: str) -> None:
    docs = objects(helm, "-f", str(CHART / "ci" / "bundled-ephemeral-values.yaml"))
    assert "NetworkPolicy" not in {d["kind"] for d in docs}
    spec = by_kind(docs, "StatefulSet")["spec"]
    assert "volumeClaimTemplates" not in spec
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}


@pytest.mark.parametrize(
    "values", ["default-values.yaml", "existing-secret-values.yaml", "password-file-values.yaml"]
)
def test_a_named_redis_renders_no_bundled_one(helm: str, values: str) -> None:
    docs = objects(helm, "-f", str(CHART / "ci" / values))
    assert not [d for d in docs if d["metadata"]["name"].endswith(("-redis", "-redis-headless"))]
    assert not {"StatefulSet", "NetworkPolicy"} & {d["kind"] for d in docs}


def test_password_file_form_mounts_the_secret_as_files(helm: str) -> None:
    docs = objects(helm, "-f", str(CHART / "ci" / "password-file-values.yaml"))
    for spec in (
        by_kind(docs, "Deployment")["spec"]["template"]["spec"],
        by_kind(docs, "Pod")["spec"],
    ):
        (container,) = spec["containers"]
        env = env_of(container)
        assert env["CRONLEASE_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "cronlease"
        path = env["CRONLEASE_REDIS_PASSWORD_FILE"]["value"]
        (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
        assert "subPath" not in mount
        assert path == f"{mount['mountPath']}/redis-password"
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == "cronlease-redis-password"
        assert volume["secret"]["items"] == [{"key": "redis-password", "path": "redis-password"}]
    # Without it: no password file at all.
    plain = objects(helm, "-f", str(CHART / "ci" / "default-values.yaml"))
    assert "CRONLEASE_REDIS_PASSWORD_FILE" not in env_of(
        by_kind(plain, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "redis.bundled.enabled=false"], "cronlease needs a Redis"),
        (["--set", "redis.passwordSecret.name=some-secret"], "redis.passwordSecret.name"),
    ],
)
def test_chart_refuses_contradictory_redis_values(helm: str, args: list[str], message: str) -> None:
    result = render(helm, *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_bundled_password_is_kept_across_upgrades() -> None:
    # `helm template` has no cluster, so `lookup` is checked by reading the template.
    helpers = (CHART / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    assert 'lookup "v1" "Secret" .Release.Namespace (include "cronlease.redisName" .)' in helpers
    callers = [
        p.name
        for p in (CHART / "templates").rglob("*")
        if p.is_file() and 'include "cronlease.redisPassword"' in p.read_text(encoding="utf-8")
    ]
    assert callers == ["redis-secret.yaml"]


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


# --- Helm chart: the status page's admin token ----------------------------------------------------


def scheduler_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = by_kind_named(docs, "Deployment", "cronlease")
    container: dict[str, Any]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_admin_token_is_generated_and_mounted_as_a_directory(helm: str) -> None:
    docs = objects(helm, "-f", str(CHART / "ci" / "worker-values.yaml"))
    secret = by_kind_named(docs, "Secret", "cronlease-admin")
    assert list(secret["data"]) == ["admin-token"]
    token = base64.b64decode(secret["data"]["admin-token"]).decode()
    assert len(token) >= 32 and token.isalnum()
    spec = by_kind_named(docs, "Deployment", "cronlease")["spec"]["template"]["spec"]
    container = scheduler_container(docs)
    path = env_of(container)["CRONLEASE_ADMIN_TOKEN_FILE"]["value"]
    assert path == "/var/run/secrets/cronlease/admin/admin-token"
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert "subPath" not in mount  # a subPath mount would never see a rotated token
    assert mount["readOnly"] is True
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["secret"] == {
        "secretName": "cronlease-admin",
        "items": [{"key": "admin-token", "path": "admin-token"}],
    }
    # The token re-read on every action is the point: no checksum rolls the pods on a rotation.
    annotations = by_kind_named(docs, "Deployment", "cronlease")["spec"]["template"]["metadata"]
    assert not any("admin" in key for key in annotations.get("annotations", {}))
    # Only the scheduler gets it: not the worker, not the test pod.
    worker = by_kind_named(docs, "Deployment", "cronlease-worker")["spec"]["template"]["spec"]
    for other in (worker, by_kind(docs, "Pod")["spec"]):
        (other_container,) = other["containers"]
        assert "CRONLEASE_ADMIN_TOKEN_FILE" not in env_of(other_container)
        assert "cronlease-admin" not in json.dumps(other)


def test_admin_existing_secret_is_mounted_and_no_secret_generated(helm: str) -> None:
    docs = objects(helm, "-f", str(CHART / "ci" / "all-on-values.yaml"))
    assert not [d for d in docs if d["metadata"]["name"].endswith("-admin")]
    container = scheduler_container(docs)
    path = env_of(container)["CRONLEASE_ADMIN_TOKEN_FILE"]["value"]
    assert path == "/var/run/secrets/cronlease/admin/token"
    spec = by_kind_named(docs, "Deployment", "cronlease")["spec"]["template"]["spec"]
    (volume,) = [
        v
        for v in spec["volumes"]
        if v.get("secret", {}).get("items", [{}])[0].get("path") == "token"
    ]
    assert volume["secret"]["secretName"] == "platform-cronlease-admin"


def test_admin_off_by_default_leaves_the_page_read_only(helm: str) -> None:
    docs = objects(helm)
    assert "CRONLEASE_ADMIN_TOKEN_FILE" not in env_of(scheduler_container(docs))
    assert not [d for d in docs if d["metadata"]["name"].endswith("-admin")]
    assert "/var/run/secrets/cronlease/admin" not in json.dumps(docs)


def test_admin_token_is_kept_across_upgrades() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    assert (
        'lookup "v1" "Secret" .Release.Namespace (include "cronlease.adminSecretName" .)' in helpers
    )
    callers = [
        p.name
        for p in (CHART / "templates").rglob("*")
        if p.is_file() and 'include "cronlease.adminToken"' in p.read_text(encoding="utf-8")
    ]
    assert callers == ["admin-secret.yaml"]


# --- Helm chart: the worker -----------------------------------------------------------------------


def test_no_worker_by_default(helm: str) -> None:
    for docs in (objects(helm), objects(helm, "-f", str(CHART / "ci" / "default-values.yaml"))):
        assert not [d for d in docs if "worker" in d["metadata"]["name"]]


def test_worker_runs_cronlease_worker_with_the_schedulers_settings(helm: str) -> None:
    docs = objects(helm, "-f", str(CHART / "ci" / "worker-values.yaml"))
    deployment = by_kind_named(docs, "Deployment", "cronlease-worker")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "registry.example.com/platform/myapp-worker:1.4.2"
    assert container["imagePullPolicy"] == "Always"
    assert container["args"] == [
        "worker",
        "--import",
        "myapp.jobs,myapp.reports",
        "--queues",
        "critical,default",
        "--concurrency",
        "8",
        "--visibility-timeout",
        "60s",
        "--grace",
        "30s",
        "--metrics-port",
        "9465",
        "--log-format",
        "json",
        "--weights=critical=6,default=1",
    ]
    # Kubernetes must not kill a job the worker is still letting finish.
    assert spec["terminationGracePeriodSeconds"] > 30
    # The scheduler's environment (bundled Redis URL, password file, key namespace), then its own.
    scheduler_env = [
        e for e in scheduler_container(docs)["env"] if e["name"] != "CRONLEASE_ADMIN_TOKEN_FILE"
    ]
    assert container["env"] == [*scheduler_env, {"name": "PYTHONPATH", "value": "/opt/jobs"}]
    env = env_of(container)
    assert env["CRONLEASE_REDIS_URL"]["value"] == "redis://cronlease-redis:6379/0"
    password_file = env["CRONLEASE_REDIS_PASSWORD_FILE"]["value"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    (password_mount,) = [m for p, m in mounts.items() if password_file.startswith(p + "/")]
    assert "subPath" not in password_mount
    assert volumes[password_mount["name"]]["secret"]["secretName"] == "cronlease-redis"
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert volumes[mounts["/etc/cronlease"]["name"]]["configMap"]["name"] == "cronlease"
    assert volumes[mounts["/opt/jobs"]["name"]]["configMap"]["name"] == "myapp-jobs"
    # Hardened like the scheduler.
    scheduler_spec = by_kind_named(docs, "Deployment", "cronlease")["spec"]["template"]["spec"]
    assert spec["securityContext"] == scheduler_spec["securityContext"]
    assert container["securityContext"] == scheduler_container(docs)["securityContext"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == scheduler_spec["serviceAccountName"]
    # Probes on the worker's own metrics port.
    (port,) = container["ports"]
    assert port == {"name": "metrics", "containerPort": 9465, "protocol": "TCP"}
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"]["limits"]["memory"] == "256Mi"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["value"] == "jobs"
    assert "podAntiAffinity" in spec["affinity"]
    assert pod["metadata"]["labels"]["team"] == "myapp"
    assert pod["metadata"]["annotations"]["example.com/owner"] == "myapp"
    service = by_kind_named(docs, "Service", "cronlease-worker")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9465, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_worker_on_a_named_redis_reads_the_url_secret(helm: str) -> None:
    docs = objects(helm, "-f", str(CHART / "ci" / "all-on-values.yaml"))
    pod = by_kind_named(docs, "Deployment", "cronlease-worker")["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = env_of(container)
    assert env["CRONLEASE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "cronlease",
        "key": "redis-url",
    }
    assert env["TZ"] == {"name": "TZ", "value": "UTC"}  # the scheduler's extraEnv too
    assert "checksum/secret" in pod["metadata"]["annotations"]  # a new URL rolls the workers
    # Image, tag and pull policy default to the scheduler's; queues as given.
    assert container["image"] == "registry.example.com/platform/cronlease:0.1.0"
    assert container["imagePullPolicy"] == "Always"
    assert container["args"][:5] == [
        "worker",
        "--import",
        "reports,monitoring",
        "--queues",
        "reports,default",
    ]
    queues_off = objects(
        helm,
        "-f",
        str(CHART / "ci" / "default-values.yaml"),
        "--set",
        "worker.enabled=true",
        "--set",
        "worker.import=myapp.jobs",
    )
    (plain,) = by_kind_named(queues_off, "Deployment", "cronlease-worker")["spec"]["template"][
        "spec"
    ]["containers"]
    assert "--queues" not in plain["args"]
    assert plain["image"] == "cronlease:0.1.0"


def pod_labels(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    labels: dict[str, str] = by_kind_named(docs, "Deployment", name)["spec"]["template"][
        "metadata"
    ]["labels"]
    return labels


def test_scheduler_and_worker_selectors_do_not_overlap(helm: str) -> None:
    docs = objects(helm, "-f", str(CHART / "ci" / "all-on-values.yaml"))
    scheduler, worker = pod_labels(docs, "cronlease"), pod_labels(docs, "cronlease-worker")
    # The scheduler's Deployment selector is immutable: it must stay what it always was.
    scheduler_deployment = by_kind_named(docs, "Deployment", "cronlease")
    assert scheduler_deployment["spec"]["selector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "cronlease",
            "app.kubernetes.io/instance": "cronlease",
            "app.kubernetes.io/component": "scheduler",
        }
    }
    scheduler_selectors = [
        scheduler_deployment["spec"]["selector"],
        {"matchLabels": by_kind_named(docs, "Service", "cronlease")["spec"]["selector"]},
        by_kind(docs, "PodDisruptionBudget")["spec"]["selector"],
    ]
    worker_deployment = by_kind_named(docs, "Deployment", "cronlease-worker")
    worker_selectors = [
        worker_deployment["spec"]["selector"],
        {"matchLabels": by_kind_named(docs, "Service", "cronlease-worker")["spec"]["selector"]},
    ]
    for selector in scheduler_selectors:
        assert selects(selector, scheduler) and not selects(selector, worker), selector
    for selector in worker_selectors:
        assert selects(selector, worker) and not selects(selector, scheduler), selector
    test_pod = by_kind(docs, "Pod")["metadata"]["labels"]
    assert not any(selects(s, test_pod) for s in scheduler_selectors + worker_selectors)
    # Each ServiceMonitor picks its own Service only.
    services = {
        name: by_kind_named(docs, "Service", name)["metadata"]["labels"]
        for name in ("cronlease", "cronlease-worker")
    }
    for monitor, service in (("cronlease", "cronlease"), ("cronlease-worker", "cronlease-worker")):
        selector = by_kind_named(docs, "ServiceMonitor", monitor)["spec"]["selector"]
        assert [name for name, labels in services.items() if selects(selector, labels)] == [service]


def test_bundled_redis_network_policy_lets_the_workers_in(helm: str) -> None:
    docs = objects(helm, "-f", str(CHART / "ci" / "worker-values.yaml"))
    (rule,) = by_kind(docs, "NetworkPolicy")["spec"]["ingress"]
    (peer,) = rule["from"]
    assert selects(peer["podSelector"], pod_labels(docs, "cronlease-worker"))
    assert selects(peer["podSelector"], pod_labels(docs, "cronlease"))
    other = {**pod_labels(docs, "cronlease-worker"), "app.kubernetes.io/instance": "other"}
    assert not selects(peer["podSelector"], other)
    # Without the chart's worker, no pod labelled as one is let in.
    (rule,) = by_kind(objects(helm), "NetworkPolicy")["spec"]["ingress"]
    assert not selects(rule["from"][0]["podSelector"], pod_labels(docs, "cronlease-worker"))


@pytest.mark.parametrize(
    ("release", "args", "job"),
    [
        ("cronlease", [], "cronlease-worker"),
        ("prod", [], "prod-cronlease-worker"),
        ("cronlease-prod", [], "cronlease-prod-cronlease-worker"),
        ("prod", ["--set", "fullnameOverride=sched"], "sched-cronlease-worker"),
    ],
)
def test_worker_scrape_job_is_the_one_the_alerts_select(
    helm: str, release: str, args: list[str], job: str
) -> None:
    docs = objects(
        helm,
        "-f",
        str(CHART / "ci" / "worker-values.yaml"),
        *args,
        "--namespace",
        "jobs",
        release=release,
    )
    fullname = by_kind(docs, "PodDisruptionBudget")["metadata"]["name"]
    monitor = by_kind_named(docs, "ServiceMonitor", f"{fullname}-worker")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["relabelings"] == [
        {"action": "replace", "targetLabel": "job", "replacement": job}
    ]
    assert "cronlease-worker" in job  # files/cronlease-rules.yaml tells workers apart by that
    spec = by_kind(docs, "PrometheusRule")["spec"]
    exprs = {r["alert"]: r["expr"] for group in spec["groups"] for r in group["rules"]}
    assert not [alert for alert, expr in exprs.items() if "job=~" in expr]
    worker_up = f'up{{job="{job}", namespace="jobs"}}'
    assert exprs["CronleaseWorkerDown"].strip() == f"{worker_up} == 0"
    # The scheduler's rules leave the workers' job out, as in the file.
    assert f'up{{job="{fullname}", namespace="jobs"}}' in exprs["CronleaseReplicaDown"]
    assert worker_up in exprs["CronleaseReplicaDown"] and worker_up in exprs["CronleaseNoLeader"]
    source = (CHART / "files" / "cronlease-rules.yaml").read_text(encoding="utf-8")
    needle = 'up{job=~".*cronlease-worker.*"}'
    assert sum(e.count(worker_up) for e in exprs.values()) == source.count(needle)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "worker.enabled=true"], "worker.enabled=true needs worker.import"),
        (
            [
                "--set",
                "worker.enabled=true",
                "--set",
                "worker.import=myapp.jobs",
                "--set",
                "worker.terminationGracePeriodSeconds=30",
            ],
            "must exceed worker.graceSeconds",
        ),
        (["--set", "worker.concurrency=0"], "concurrency"),
        (["--set", "worker.import=my app"], "worker.import"),
        (["--set", "worker.enabeld=true"], "enabeld"),
        (["--set", "admin.existingSecret=mine"], "admin.existingSecret names the Secret"),
        (["--set", "admin.secretKey=a/b"], "secretKey"),
    ],
)
def test_chart_refuses_bad_worker_and_admin_values(
    helm: str, args: list[str], message: str
) -> None:
    result = render(helm, *args)
    assert result.returncode != 0
    assert message in result.stderr


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
