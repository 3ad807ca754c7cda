{{/*
The named templates, for this chart's workloads and for charts of users who
keep their own (README.md, "Your own chart"). Each takes a root (see
_helpers.tpl) and renders YAML list items or a mapping to be placed with
nindent:

  initContainers:    highwater.initContainer, then highwater.sidecar
  app env:           highwater.env (the user's env merged in: pass it as "env")
  app volumeMounts:  highwater.volumeMounts
  pod volumes:       highwater.volumes
  Job spec:          podFailurePolicy: highwater.podFailurePolicy
*/}}

{{/*
The run dir the shim and the watcher share: a directory of the run-dir
volume made by the init container (uid/gid highwater.uid) with mode 3777.
The setgid bit gives every file the app creates there highwater's group,
whatever the app's uid and gid, so the shim's HIGHWATER_FILE_MODE=0640 lets
the sidecar read it and nobody else in the pod (reports hold source lines);
the sticky bit keeps other uids from removing or replacing the app's files
(the sidecar removes them as the directory's owner). No pod fsGroup is
needed, which would also re-own the user's own volumes.
*/}}
{{- define "highwater.sharedRunDir" -}}
{{- printf "%s/shared" (trimSuffix "/" .Values.highwater.runDir) -}}
{{- end -}}

{{/* Copies the bundle (init, shim, Python package; not Node) into an emptyDir and makes the shared run dir. */}}
{{- define "highwater.initContainer" -}}
{{- $hw := .Values.highwater -}}
- name: highwater-bundle
  image: {{ include "highwater.image" . }}
  imagePullPolicy: {{ $hw.image.pullPolicy }}
  command: [sh, -c, 'cp -r /opt/highwater/bin /opt/highwater/lib /opt/highwater/python /highwater-bundle/ && mkdir -p -m 3777 "$0"', {{ include "highwater.sharedRunDir" . | quote }}]
  resources:
    {{- toYaml $hw.initResources | nindent 4 }}
  securityContext:
    {{- include "highwater.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: highwater-bundle
      mountPath: /highwater-bundle
    - name: highwater-run
      mountPath: {{ $hw.runDir }}
{{- end -}}

{{/* `highwater watch` as a native sidecar: restartPolicy Always in initContainers. */}}
{{- define "highwater.sidecar" -}}
{{- $v := .Values -}}
{{- $hw := $v.highwater -}}
- name: highwater
  image: {{ include "highwater.image" . }}
  imagePullPolicy: {{ $hw.image.pullPolicy }}
  restartPolicy: Always
  args:
    - --run-dir
    - {{ include "highwater.sharedRunDir" . | quote }}
    - --output
    - {{ $v.reports.mountPath | quote }}
    - --metrics-port
    - {{ $v.metrics.port | quote }}
  env:
    - name: HIGHWATER_LOG_FORMAT
      value: {{ $hw.logFormat | quote }}
    - name: HIGHWATER_MIN_AVAILABLE
      value: {{ $hw.minAvailable | quote }}
    - name: HIGHWATER_OOM_DETECTION
      value: {{ ternary "1" "0" $hw.oomDetection | quote }}
    - name: HIGHWATER_POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: HIGHWATER_POD_NAMESPACE
      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
    - name: HIGHWATER_POD_UID
      valueFrom: {fieldRef: {fieldPath: metadata.uid}}
    - name: HIGHWATER_NODE_NAME
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    - name: HIGHWATER_APP_CONTAINER
      value: {{ $v.workload.containerName | quote }}
    - name: HIGHWATER_EVENTS
      value: {{ ternary "1" "0" $v.events.enabled | quote }}
    {{- if $v.upload.urlSecret }}
    - name: HIGHWATER_UPLOAD_URL
      valueFrom:
        secretKeyRef: {name: {{ $v.upload.urlSecret.name | quote }}, key: {{ $v.upload.urlSecret.key | quote }}}
    {{- else if $v.upload.url }}
    - name: HIGHWATER_UPLOAD_URL
      value: {{ $v.upload.url | quote }}
    {{- end }}
    {{- if or $v.upload.url $v.upload.urlSecret }}
    - name: HIGHWATER_UPLOAD_TIMEOUT
      value: {{ $v.upload.timeoutSeconds | toString | quote }}
    {{- end }}
    {{- with $hw.sidecarNodeOptions }}
    - name: NODE_OPTIONS
      value: {{ . | quote }}
    {{- end }}
    {{- with $hw.sidecarEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: hw-metrics
      containerPort: {{ $v.metrics.port }}
      protocol: TCP
  # The app starts once this probe passes: the watcher is up before anything
  # it must watch.
  startupProbe:
    httpGet: {path: /readyz, port: hw-metrics}
    periodSeconds: 1
    failureThreshold: 60
  readinessProbe:
    httpGet: {path: /readyz, port: hw-metrics}
    periodSeconds: 10
  resources:
    {{- toYaml $hw.sidecarResources | nindent 4 }}
  securityContext:
    {{- include "highwater.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: highwater-run
      mountPath: {{ $hw.runDir }}
    - name: highwater-reports
      mountPath: {{ $v.reports.mountPath }}
    - name: highwater-tmp
      mountPath: /tmp
{{- end -}}

{{/*
The app container's env: the user's entries, with LD_PRELOAD and PYTHONPATH
merged (never overwritten), then highwater's, each skipped when the user set
the same name. A user value given with valueFrom is kept under
HIGHWATER_USER_<NAME> and referenced with $(...), which Kubernetes expands.
*/}}
{{- define "highwater.env" -}}
{{- include "highwater.envItems" . | trim -}}
{{- end -}}

{{- define "highwater.envItems" -}}
{{- $v := .Values -}}
{{- $hw := $v.highwater -}}
{{- $userEnv := .env | default $v.workload.env | default list -}}
{{- $byEnv := eq $hw.injection "env" -}}
{{- $merged := list "LD_PRELOAD" "PYTHONPATH" "HIGHWATER_ORIG_LD_PRELOAD" -}}
{{- $user := dict -}}
{{- range $userEnv }}{{- $_ := set $user .name . -}}{{- end -}}
{{- range $userEnv }}
{{- if and $byEnv (has .name $merged) }}
{{- if not (hasKey . "value") }}
- name: HIGHWATER_USER_{{ .name }}
  {{- omit . "name" | toYaml | nindent 2 }}
{{- end }}
{{- else }}
- {{ toYaml . | nindent 2 | trim }}
{{- end }}
{{- end }}
{{- $own := list (dict "name" "HIGHWATER_RUN_DIR" "value" (include "highwater.sharedRunDir" .)) -}}
{{- $own = append $own (dict "name" "HIGHWATER_OUTPUT_DIR" "value" $v.reports.mountPath) -}}
{{- $own = append $own (dict "name" "HIGHWATER_CONTROL_UID" "value" (toString $hw.uid)) -}}
{{- /* Owner and highwater's group (the setgid run dir): highwater.sharedRunDir. */ -}}
{{- $own = append $own (dict "name" "HIGHWATER_FILE_MODE" "value" "0640") -}}
{{- $own = append $own (dict "name" "HIGHWATER_MIN_AVAILABLE" "value" $hw.minAvailable) -}}
{{- $own = append $own (dict "name" "HIGHWATER_OOM_DETECTION" "value" (ternary "1" "0" $hw.oomDetection)) -}}
{{- with $hw.sampleRate }}
{{- $own = append $own (dict "name" "HIGHWATER_SAMPLE_RATE" "value" (toString .)) -}}
{{- end }}
{{- if $byEnv }}
{{- $bundle := $hw.mountPath -}}
{{- range list "LD_PRELOAD" "PYTHONPATH" }}
{{- $add := ternary (printf "%s/lib/libhighwater.so" $bundle) (printf "%s/python/bootstrap:%s/python" $bundle $bundle) (eq . "LD_PRELOAD") -}}
{{- $old := "" -}}
{{- with get $user . }}{{- $old = ternary .value (printf "$(HIGHWATER_USER_%s)" .name) (hasKey . "value") -}}{{- end }}
{{- $own = append $own (dict "name" . "value" (ternary (printf "%s:%s" $add $old) $add (ne $old ""))) -}}
{{- if eq . "LD_PRELOAD" }}
{{- $own = append $own (dict "name" "HIGHWATER_ORIG_LD_PRELOAD" "value" $old) -}}
{{- end }}
{{- end }}
{{- /* Thread pools limited to one thread, as highwater-init and Fil do. */ -}}
{{- range list "OMP_NUM_THREADS" "OPENBLAS_NUM_THREADS" "MKL_NUM_THREADS" "NUMEXPR_NUM_THREADS" "NUMEXPR_MAX_THREADS" "BLOSC_NTHREADS" "VECLIB_MAXIMUM_THREADS" }}
{{- $own = append $own (dict "name" . "value" "1") -}}
{{- end }}
{{- end }}
{{- range $own }}
{{- if or (has .name $merged) (not (hasKey $user .name)) }}
- name: {{ .name }}
  value: {{ .value | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The app container's mounts: the bundle (read-only) and the run dir. */}}
{{- define "highwater.volumeMounts" -}}
- name: highwater-bundle
  mountPath: {{ .Values.highwater.mountPath }}
  readOnly: true
- name: highwater-run
  mountPath: {{ .Values.highwater.runDir }}
{{- end -}}

{{/* The pod's volumes: bundle, run dir, reports, the sidecar's /tmp. */}}
{{- define "highwater.volumes" -}}
{{- $v := .Values -}}
- name: highwater-bundle
  emptyDir: {sizeLimit: 64Mi}
- name: highwater-run
  emptyDir: {}
- name: highwater-reports
{{- $claim := include "highwater.reportsClaim" . }}
{{- if $claim }}
  persistentVolumeClaim:
    claimName: {{ $claim }}
{{- else }}
  emptyDir:
    sizeLimit: {{ $v.reports.emptyDirSizeLimit }}
{{- end }}
- name: highwater-tmp
  emptyDir: {sizeLimit: 64Mi}
{{- end -}}

{{/*
The Job's podFailurePolicy: exit 53 of the app container (highwater detected
out of memory) -> workload.job.onOutOfMemory. containerName is required: without
it the rule would match the sidecar's exit codes too.
*/}}
{{- define "highwater.podFailurePolicy" -}}
rules:
  - action: {{ .Values.workload.job.onOutOfMemory }}
    onExitCodes:
      containerName: {{ .Values.workload.containerName }}
      operator: In
      values: [53]
{{- end -}}
