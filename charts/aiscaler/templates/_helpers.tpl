{{/* The release's full name: the release name, prefixed with the chart's unless it holds it. */}}
{{- define "aiscaler.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aiscaler.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "aiscaler.labels" -}}
{{ include "aiscaler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "aiscaler.serviceAccountName" -}}
{{- default (include "aiscaler.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The operator's settings file (aiscaler.settings reads it through AISCALER_CONFIG_FILE). */}}
{{- define "aiscaler.config" -}}
prometheus_url: {{ .Values.prometheus.url | quote }}
{{- if .Values.prometheus.bearerTokenSecret.name }}
prometheus_bearer_token_file: /var/run/secrets/aiscaler/prometheus/{{ .Values.prometheus.bearerTokenSecret.key }}
{{- end }}
tick_seconds: {{ .Values.tickSeconds }}
namespaces:
  {{- toYaml .Values.namespaces | nindent 2 }}
{{- if not (kindIs "invalid" .Values.gpuBudget) }}
gpu_budget: {{ .Values.gpuBudget }}
{{- end }}
pools:
  {{- toYaml .Values.pools | nindent 2 }}
balloon_priority_class: {{ .Values.balloonPriorityClass.name | quote }}
{{- with .Values.measurement }}
measurement:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.modelPath }}
model_path: {{ .Values.modelPath | quote }}
{{- end }}
metrics_port: {{ .Values.metrics.port }}
health_port: {{ .Values.healthPort }}
{{- end -}}
