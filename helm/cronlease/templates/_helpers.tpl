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
The Secret holding the Redis URL and its key: redis.existingSecret, or the chart's own Secret
(which requires redis.url).
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
Fails the render with a sentence when no Redis is configured.
*/}}
{{- define "cronlease.checkRedis" -}}
{{- if and (not .Values.redis.existingSecret) (not .Values.redis.url) }}
{{- fail "cronlease needs a Redis: set redis.url (e.g. --set redis.url=redis://:password@redis:6379/0) or redis.existingSecret (a Secret whose key redis.existingSecretKey holds the URL)" }}
{{- end }}
{{- end }}

{{/*
Where the schedules ConfigMap is mounted; the file is <dir>/schedules.yaml.
*/}}
{{- define "cronlease.configDir" -}}
/etc/cronlease
{{- end }}

{{/*
Environment shared by the scheduler and the helm test pod.
*/}}
{{- define "cronlease.env" -}}
- name: CRONLEASE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "cronlease.redisSecretName" . }}
      key: {{ include "cronlease.redisSecretKey" . }}
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
Volumes shared by the scheduler and the helm test pod: the schedules ConfigMap as a directory
(not subPath, so updates arrive by the kubelet's symlink swap) and an emptyDir at /tmp.
*/}}
{{- define "cronlease.volumes" -}}
- name: config
  configMap:
    name: {{ include "cronlease.fullname" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{- define "cronlease.volumeMounts" -}}
- name: config
  mountPath: {{ include "cronlease.configDir" . }}
  readOnly: true
- name: tmp
  mountPath: /tmp
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
