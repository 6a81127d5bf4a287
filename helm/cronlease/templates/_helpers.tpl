{{/*
The chart name, truncated to 63 characters (a DNS label).
*/}}
{{- define "cronlease.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: <release>-<chart>, or the release name alone when it
already contains the chart name; fullnameOverride wins. Truncated to 63 characters.
*/}}
{{- define "cronlease.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
chart label value: name-version.
*/}}
{{- define "cronlease.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels every object carries.
*/}}
{{- define "cronlease.labels" -}}
helm.sh/chart: {{ include "cronlease.chart" . }}
app.kubernetes.io/name: {{ include "cronlease.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cronlease
{{- end }}

{{/*
Selector labels of the scheduler pods (Deployment, Service, PodDisruptionBudget, spread
constraints). The component label keeps the helm test pod out of them.
*/}}
{{- define "cronlease.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cronlease.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: scheduler
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "cronlease.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cronlease.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "cronlease.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{/*
Where the scheduler's Redis comes from: "existingSecret" (the URL in a Secret the chart does not
manage), "url" (redis.url, kept in the chart's Secret) or "bundled" (the chart's own single Redis,
when neither is set). Fails the render with a sentence when there is none.
*/}}
{{- define "cronlease.redisMode" -}}
{{- if .Values.redis.existingSecret -}}
existingSecret
{{- else if .Values.redis.url -}}
url
{{- else if .Values.redis.bundled.enabled -}}
bundled
{{- else }}
{{- fail "cronlease needs a Redis: set redis.url (e.g. --set redis.url=redis://:password@redis:6379/0) or redis.existingSecret (a Secret whose key redis.existingSecretKey holds the URL), or leave both empty with redis.bundled.enabled=true for the chart's own single Redis" }}
{{- end }}
{{- end }}

{{/*
Fails the render with a sentence when no Redis is configured, or the values contradict.
*/}}
{{- define "cronlease.checkRedis" -}}
{{- $mode := include "cronlease.redisMode" . }}
{{- if and (eq $mode "bundled") .Values.redis.passwordSecret.name }}
{{- fail "redis.passwordSecret.name is the password of a Redis you name with redis.url or redis.existingSecret; the bundled Redis (neither set) generates its own" }}
{{- end }}
{{- end }}

{{/*
The Secret holding the Redis URL and its key (modes existingSecret and url).
*/}}
{{- define "cronlease.redisSecretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else }}
{{- include "cronlease.fullname" . }}
{{- end }}
{{- end }}

{{- define "cronlease.redisSecretKey" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecretKey }}
{{- else -}}
redis-url
{{- end }}
{{- end }}

{{/*
The bundled Redis: its objects' name (StatefulSet, client Service, ConfigMap, password Secret,
NetworkPolicy), its headless Service, its port and its pods' labels.
*/}}
{{- define "cronlease.redisName" -}}
{{- printf "%s-redis" (include "cronlease.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "cronlease.redisHeadlessName" -}}
{{- printf "%s-headless" (include "cronlease.redisName" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "cronlease.redisPort" -}}
6379
{{- end }}

{{- define "cronlease.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "cronlease.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{/*
The bundled Redis's password: the one already in its Secret (`lookup`, so upgrades keep it), else
a new random one. Only templates/redis-secret.yaml calls it: without a cluster (`helm template`)
every call would give another value.
*/}}
{{- define "cronlease.redisPassword" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "cronlease.redisName" .) }}
{{- $data := dig "data" dict $existing }}
{{- if hasKey $data "password" }}
{{- index $data "password" | b64dec }}
{{- else }}
{{- randAlphaNum 32 }}
{{- end }}
{{- end }}

{{/*
The Secret mounted as files for CRONLEASE_REDIS_PASSWORD_FILE (name and key), or nothing: the
bundled Redis's own, or redis.passwordSecret for a Redis named by URL.
*/}}
{{- define "cronlease.passwordSecretName" -}}
{{- if eq (include "cronlease.redisMode" .) "bundled" }}
{{- include "cronlease.redisName" . }}
{{- else }}
{{- .Values.redis.passwordSecret.name }}
{{- end }}
{{- end }}

{{- define "cronlease.passwordSecretKey" -}}
{{- if eq (include "cronlease.redisMode" .) "bundled" -}}
password
{{- else }}
{{- .Values.redis.passwordSecret.key }}
{{- end }}
{{- end }}

{{/*
Where that Secret is mounted (a directory, not subPath, so a rotated Secret reaches the pods).
*/}}
{{- define "cronlease.passwordDir" -}}
/var/run/secrets/cronlease/redis
{{- end }}

{{/*
Where the schedules ConfigMap is mounted; the file is <dir>/schedules.yaml.
*/}}
{{- define "cronlease.configDir" -}}
/etc/cronlease
{{- end }}

{{/*
Environment shared by the scheduler, the worker and the helm test pod.
*/}}
{{- define "cronlease.env" -}}
{{- if eq (include "cronlease.redisMode" .) "bundled" }}
- name: CRONLEASE_REDIS_URL
  value: {{ printf "redis://%s:%s/0" (include "cronlease.redisName" .) (include "cronlease.redisPort" .) | quote }}
{{- else }}
- name: CRONLEASE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "cronlease.redisSecretName" . }}
      key: {{ include "cronlease.redisSecretKey" . }}
{{- end }}
{{- if include "cronlease.passwordSecretName" . }}
# Read again for every new connection: a rotated Secret applies without a restart.
- name: CRONLEASE_REDIS_PASSWORD_FILE
  value: {{ include "cronlease.passwordDir" . }}/{{ include "cronlease.passwordSecretKey" . }}
{{- end }}
- name: CRONLEASE_REPLICA_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: CRONLEASE_CONFIG
  value: {{ include "cronlease.configDir" . }}/schedules.yaml
- name: CRONLEASE_NAMESPACE
  value: {{ .Values.redis.keyNamespace | quote }}
- name: CRONLEASE_LEASE_TTL
  value: {{ .Values.leaseTtl | quote }}
{{- with .Values.redis.timeout }}
- name: CRONLEASE_REDIS_TIMEOUT
  value: {{ . | quote }}
{{- end }}
- name: CRONLEASE_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: CRONLEASE_LOG_LEVEL
  value: {{ .Values.logLevel | upper | quote }}
- name: CRONLEASE_SCHEDULE_METRICS
  value: {{ .Values.scheduleMetrics | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volumes shared by the scheduler, the worker and the helm test pod: the schedules ConfigMap as a directory
(not subPath, so updates arrive by the kubelet's symlink swap), an emptyDir at /tmp and, when
there is one, the Redis password Secret as files (a directory too, so a rotation arrives).
*/}}
{{- define "cronlease.volumes" -}}
- name: config
  configMap:
    name: {{ include "cronlease.fullname" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- with include "cronlease.passwordSecretName" . }}
- name: redis-password
  secret:
    secretName: {{ . }}
    items:
      - key: {{ include "cronlease.passwordSecretKey" $ }}
        path: {{ include "cronlease.passwordSecretKey" $ }}
{{- end }}
{{- end }}

{{- define "cronlease.volumeMounts" -}}
- name: config
  mountPath: {{ include "cronlease.configDir" . }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if include "cronlease.passwordSecretName" . }}
- name: redis-password
  mountPath: {{ include "cronlease.passwordDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
The status page's admin token (admin.enabled): the Secret holding it (admin.existingSecret, else
the chart's <fullname>-admin), its key, and where it is mounted (a directory, not subPath, so a
rotated Secret reaches the pod; the daemon re-reads the file on every action).
*/}}
{{- define "cronlease.adminSecretName" -}}
{{- if .Values.admin.existingSecret }}
{{- .Values.admin.existingSecret }}
{{- else }}
{{- printf "%s-admin" (include "cronlease.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{- define "cronlease.adminDir" -}}
/var/run/secrets/cronlease/admin
{{- end }}

{{/*
The generated admin token: the one already in the chart's Secret (`lookup`, so upgrades keep it),
else a new random one. Only templates/admin-secret.yaml calls it.
*/}}
{{- define "cronlease.adminToken" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "cronlease.adminSecretName" .) }}
{{- $data := dig "data" dict $existing }}
{{- if hasKey $data .Values.admin.secretKey }}
{{- index $data .Values.admin.secretKey | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}

{{/*
Fails the render with a sentence when the admin values contradict.
*/}}
{{- define "cronlease.checkAdmin" -}}
{{- if and .Values.admin.existingSecret (not .Values.admin.enabled) }}
{{- fail "admin.existingSecret names the Secret of the status page's admin token, which only admin.enabled=true mounts: set admin.enabled=true too, or leave admin.existingSecret empty" }}
{{- end }}
{{- end }}

{{/*
The worker (worker.enabled): its objects' name (Deployment, Service, ServiceMonitor), its pods'
selector labels (never matched by the scheduler's selectors, which want component scheduler), its
metrics port, its image, and its scrape job: the worker alert rules of files/cronlease-rules.yaml
select jobs named like *cronlease-worker*, so the ServiceMonitor sets a job name containing that.
*/}}
{{- define "cronlease.workerName" -}}
{{- printf "%s-worker" (include "cronlease.fullname" . | trunc 56 | trimSuffix "-") }}
{{- end }}

{{- define "cronlease.workerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "cronlease.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end }}

{{- define "cronlease.workerPort" -}}
9465
{{- end }}

{{- define "cronlease.workerImage" -}}
{{- $image := .Values.worker.image }}
{{- $repository := default .Values.image.repository $image.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) $image.tag }}
{{- printf "%s:%s" $repository ($tag | toString) }}
{{- end }}

{{- define "cronlease.workerJob" -}}
{{- $name := include "cronlease.workerName" . }}
{{- if contains "cronlease-worker" $name }}
{{- $name }}
{{- else }}
{{- printf "%s-cronlease-worker" (include "cronlease.fullname" . | trunc 46 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{/*
Fails the render with a sentence when the worker values contradict.
*/}}
{{- define "cronlease.checkWorker" -}}
{{- $worker := .Values.worker }}
{{- if $worker.enabled }}
{{- if not $worker.import }}
{{- fail "worker.enabled=true needs worker.import: the module(s) defining the @job functions the worker runs, e.g. --set worker.import=myapp.jobs (commas between several)" }}
{{- end }}
{{- if le (int $worker.terminationGracePeriodSeconds) (int $worker.graceSeconds) }}
{{- fail (printf "worker.terminationGracePeriodSeconds (%d) must exceed worker.graceSeconds (%d): Kubernetes would kill running jobs before the worker's grace ends" (int $worker.terminationGracePeriodSeconds) (int $worker.graceSeconds)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The up{} selector of the alert rules: this release's scrape job, as the ServiceMonitor names it.
*/}}
{{- define "cronlease.upSelector" -}}
{{- if .Values.metrics.prometheusRule.upSelector }}
{{- .Values.metrics.prometheusRule.upSelector }}
{{- else }}
{{- printf "job=%q, namespace=%q" (include "cronlease.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}


{{/*
The up{} selector of the worker alert rules: the worker's scrape job, as its ServiceMonitor names
it.
*/}}
{{- define "cronlease.workerUpSelector" -}}
{{- if .Values.metrics.prometheusRule.workerUpSelector }}
{{- .Values.metrics.prometheusRule.workerUpSelector }}
{{- else }}
{{- printf "job=%q, namespace=%q" (include "cronlease.workerJob" .) .Release.Namespace }}
{{- end }}
{{- end }}
