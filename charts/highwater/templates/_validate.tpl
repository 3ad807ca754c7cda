{{/*
highwater.validate: fails on values that cannot work together. Called from
every workload template and from NOTES.txt, so that `helm template` fails as
`helm install` does (helm template does not render NOTES.txt).
*/}}
{{- define "highwater.validate" -}}
{{- $v := .Values -}}
{{- with .Capabilities -}}
{{- if semverCompare "<1.29.0-0" .KubeVersion.Version -}}
{{- fail (printf "highwater: Kubernetes %s is too old: the highwater sidecar is a native sidecar (an init container with restartPolicy: Always, on by default from 1.29), so that Jobs complete when the application ends. Use Kubernetes 1.29 or newer." .KubeVersion.Version) -}}
{{- end -}}
{{- end -}}
{{- if and $v.workload.enabled (not $v.workload.image.repository) -}}
{{- fail "highwater: workload.image.repository is required (the application image)" -}}
{{- end -}}
{{- if and (eq $v.highwater.injection "init") (empty $v.workload.command) -}}
{{- fail "highwater: highwater.injection=init runs workload.command under highwater-init, but workload.command is empty (the chart cannot know the image's ENTRYPOINT): set workload.command, or use highwater.injection=env" -}}
{{- end -}}
{{- $upload := or $v.upload.url $v.upload.urlSecret -}}
{{- if and (eq $v.reports.storage "uploadOnly") (not $upload) -}}
{{- fail "highwater: reports.storage=uploadOnly keeps reports only where they are uploaded, but neither upload.url nor upload.urlSecret is set" -}}
{{- end -}}
{{- if and (eq $v.reports.storage "existingClaim") (not $v.reports.existingClaim) -}}
{{- fail "highwater: reports.storage=existingClaim needs reports.existingClaim (the PVC's name)" -}}
{{- end -}}
{{- if and $v.upload.urlSecret (not (and $v.upload.urlSecret.name $v.upload.urlSecret.key)) -}}
{{- fail "highwater: upload.urlSecret needs both name and key" -}}
{{- end -}}
{{- $grace := $v.workload.terminationGracePeriodSeconds | default 30 -}}
{{- if and $upload (ge (float64 $v.upload.timeoutSeconds) (float64 $grace)) -}}
{{- fail (printf "highwater: upload.timeoutSeconds (%v) must be shorter than the pod's terminationGracePeriodSeconds (%v): the kubelet kills the sidecar when the grace period ends, uploads unfinished" $v.upload.timeoutSeconds $grace) -}}
{{- end -}}
{{- if and (eq $v.workload.kind "CronJob") (not $v.workload.cronJob.schedule) -}}
{{- fail "highwater: workload.kind=CronJob needs workload.cronJob.schedule" -}}
{{- end -}}
{{- if has $v.workload.containerName (list "highwater" "highwater-bundle") -}}
{{- fail (printf "highwater: workload.containerName %q is the name of one of highwater's own containers" $v.workload.containerName) -}}
{{- end -}}
{{- end -}}
