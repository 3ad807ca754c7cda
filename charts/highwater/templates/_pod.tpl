{{/* The pod template of this chart's workload (Job, CronJob, Deployment). */}}
{{- define "highwater.podTemplate" -}}
{{- $v := .Values -}}
{{- $w := $v.workload -}}
{{- $hw := $v.highwater -}}
metadata:
  labels:
    {{- include "highwater.labels" . | nindent 4 }}
    {{- with $w.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if or $v.metrics.annotations $w.podAnnotations }}
  annotations:
    {{- if $v.metrics.annotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ $v.metrics.port | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with $w.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
spec:
  {{- if ne $w.kind "Deployment" }}
  restartPolicy: Never
  {{- end }}
  {{- with (include "highwater.serviceAccountName" .) }}
  serviceAccountName: {{ . }}
  {{- end }}
  {{- with $w.terminationGracePeriodSeconds }}
  terminationGracePeriodSeconds: {{ . }}
  {{- end }}
  {{- with $w.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $w.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $w.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $w.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $w.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  initContainers:
    {{- include "highwater.initContainer" . | nindent 4 }}
    {{- include "highwater.sidecar" . | nindent 4 }}
  containers:
    - name: {{ $w.containerName }}
      image: {{ printf "%s:%s" $w.image.repository $w.image.tag | quote }}
      imagePullPolicy: {{ $w.image.pullPolicy }}
      {{- if eq $hw.injection "init" }}
      command:
        - {{ printf "%s/bin/highwater-init" $hw.mountPath | quote }}
        - "--"
        {{- range $w.command }}
        - {{ . | quote }}
        {{- end }}
      {{- else if $w.command }}
      command:
        {{- range $w.command }}
        - {{ . | quote }}
        {{- end }}
      {{- end }}
      {{- with $w.args }}
      args:
        {{- range . }}
        - {{ . | quote }}
        {{- end }}
      {{- end }}
      env:
        {{- include "highwater.env" . | nindent 8 }}
      {{- with $w.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $w.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $w.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        {{- include "highwater.volumeMounts" . | nindent 8 }}
        {{- with $w.volumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    {{- include "highwater.volumes" . | nindent 4 }}
    {{- with $w.volumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* The Job spec shared by Job and CronJob. */}}
{{- define "highwater.jobSpec" -}}
{{- $j := .Values.workload.job -}}
backoffLimit: {{ $j.backoffLimit }}
{{- with $j.activeDeadlineSeconds }}
activeDeadlineSeconds: {{ . }}
{{- end }}
{{- with $j.ttlSecondsAfterFinished }}
ttlSecondsAfterFinished: {{ . }}
{{- end }}
podFailurePolicy:
  {{- include "highwater.podFailurePolicy" . | nindent 2 }}
template:
  {{- include "highwater.podTemplate" . | nindent 2 }}
{{- end -}}
