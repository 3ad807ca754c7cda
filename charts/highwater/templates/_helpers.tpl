{{/*
Names and labels. Every template here takes a "root": this chart's own root
context, or, in a chart that uses the named templates (see README), a dict with
"Values" (this chart's values, e.g. .Values.highwater of the parent) and
"Release". Nothing reads .Chart, so such a dict is enough.
*/}}

{{- define "highwater.name" -}}
{{- default "highwater" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "highwater.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "highwater.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "highwater.selectorLabels" -}}
app.kubernetes.io/name: {{ include "highwater.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "highwater.labels" -}}
{{ include "highwater.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service | default "Helm" }}
{{- with .Chart }}
helm.sh/chart: {{ printf "%s-%s" .Name .Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .AppVersion | quote }}
{{- end }}
{{- end -}}

{{/* The highwater image: repository:tag, tag defaulting to the appVersion. */}}
{{- define "highwater.image" -}}
{{- $img := .Values.highwater.image -}}
{{- $tag := $img.tag -}}
{{- if not $tag -}}{{- with .Chart -}}{{- $tag = .AppVersion -}}{{- end -}}{{- end -}}
{{- printf "%s:%s" $img.repository (default "latest" $tag) -}}
{{- end -}}

{{/* Name of the ServiceAccount the pod runs as ("" when none is set). */}}
{{- define "highwater.serviceAccountName" -}}
{{- if .Values.workload.serviceAccountName -}}
{{- .Values.workload.serviceAccountName -}}
{{- else if .Values.events.enabled -}}
{{- include "highwater.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* Name of the report volume's PVC ("" for emptyDir and uploadOnly). */}}
{{- define "highwater.reportsClaim" -}}
{{- if eq .Values.reports.storage "existingClaim" -}}
{{- .Values.reports.existingClaim -}}
{{- else if eq .Values.reports.storage "newClaim" -}}
{{- printf "%s-reports" (include "highwater.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Security context of highwater's own containers: numeric non-root, read-only root, nothing extra. */}}
{{- define "highwater.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.highwater.uid }}
runAsGroup: {{ .Values.highwater.uid }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
