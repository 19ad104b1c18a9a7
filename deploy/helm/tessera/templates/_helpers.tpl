{{/*
Names, labels and the pieces the coordinator and worker pods share. Every
object carries the standard app.kubernetes.io labels; selectors use only
name, instance and component so they never change on upgrade.
*/}}

{{- define "tessera.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tessera.fullname" -}}
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

{{/* Object names. Worker pod names add "-N" (StatefulSet) or "-G-N" (LWS). */}}
{{- define "tessera.coordinatorName" -}}
{{- printf "%s-coordinator" (include "tessera.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "tessera.workerName" -}}
{{- printf "%s-worker" (include "tessera.fullname" .) | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- define "tessera.coordinatorInternalName" -}}
{{- printf "%s-internal" (include "tessera.coordinatorName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "tessera.workerMetricsName" -}}
{{- printf "%s-metrics" (include "tessera.workerName" .) }}
{{- end }}

{{- define "tessera.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tessera.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tessera.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tessera.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tessera
{{- end }}

{{- define "tessera.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* host:port workers register with: the internal Service; $(POD_NAMESPACE) is expanded by the kubelet. */}}
{{- define "tessera.coordinatorAddress" -}}
{{ include "tessera.coordinatorInternalName" . }}.$(POD_NAMESPACE).svc.{{ .Values.clusterDomain }}:{{ .Values.coordinator.ports.internal | int }}
{{- end }}

{{/*
Security flags of a role (. is (dict "root" $ "role" "coordinator"|"worker")),
one YAML list item per line: the mounted Secrets' files, or --insecure.
*/}}
{{- define "tessera.securityArgs" -}}
{{- $sec := .root.Values.security }}
{{- if not $sec.tls }}
- --insecure
{{- else }}
- --tls-cert
- /etc/tessera/cluster-tls/tls.crt
- --tls-key
- /etc/tessera/cluster-tls/tls.key
- --tls-ca
- /etc/tessera/cluster-tls/ca.crt
{{- with $sec.clusterTls.serverName }}
- --tls-server-name
- {{ . | quote }}
{{- end }}
{{- if eq .role "coordinator" }}
{{- if $sec.publicTls.existingSecret }}
- --public-tls-cert
- /etc/tessera/public-tls/tls.crt
- --public-tls-key
- /etc/tessera/public-tls/tls.key
{{- end }}
- --auth-tokens-file
- {{ printf "/etc/tessera/auth/%s" $sec.authTokens.key | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secrets' volume mounts of a role (same argument); empty without TLS. Whole directories, never subPath, so that rotated tokens reach the process. */}}
{{- define "tessera.securityVolumeMounts" -}}
{{- $sec := .root.Values.security }}
{{- if $sec.tls }}
- name: cluster-tls
  mountPath: /etc/tessera/cluster-tls
  readOnly: true
{{- if eq .role "coordinator" }}
{{- if $sec.publicTls.existingSecret }}
- name: public-tls
  mountPath: /etc/tessera/public-tls
  readOnly: true
{{- end }}
- name: auth-tokens
  mountPath: /etc/tessera/auth
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{- define "tessera.securityVolumes" -}}
{{- $sec := .root.Values.security }}
{{- if $sec.tls }}
- name: cluster-tls
  secret:
    secretName: {{ $sec.clusterTls.existingSecret }}
    defaultMode: 288
    items:
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
      - {key: ca.crt, path: ca.crt}
{{- if eq .role "coordinator" }}
{{- if $sec.publicTls.existingSecret }}
- name: public-tls
  secret:
    secretName: {{ $sec.publicTls.existingSecret }}
    defaultMode: 288
    items:
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
{{- end }}
- name: auth-tokens
  secret:
    secretName: {{ $sec.authTokens.existingSecret }}
    defaultMode: 288
    items:
      - key: {{ $sec.authTokens.key }}
        path: {{ $sec.authTokens.key }}
{{- end }}
{{- end }}
{{- end }}

{{/* Env entries every pod gets: its own name and namespace for addresses. */}}
{{- define "tessera.podIdentityEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* gRPC-native probes (grpc.health.v1) for the port in .port, timings in .probes. */}}
{{- define "tessera.grpcProbes" -}}
{{- $port := .port | int }}
{{- range $i, $kind := list "startup" "liveness" "readiness" }}
{{- if $i }}{{ printf "\n" }}{{ end }}
{{- $kind }}Probe:
  grpc:
    port: {{ $port }}
  {{- toYaml (get $.probes $kind) | nindent 2 }}
{{- end }}
{{- end }}

{{- define "tessera.modelVolumeMount" -}}
{{- if ne .Values.model.source "none" -}}
- name: model
  mountPath: {{ .Values.model.mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "tessera.modelVolume" -}}
{{- if eq .Values.model.source "pvc" -}}
- name: model
  persistentVolumeClaim:
    claimName: {{ required "model.pvc.existingClaim is required when model.source is pvc" .Values.model.pvc.existingClaim }}
    readOnly: true
{{- else if eq .Values.model.source "hostPath" -}}
- name: model
  hostPath:
    path: {{ required "model.hostPath.path is required when model.source is hostPath" .Values.model.hostPath.path }}
    {{- with .Values.model.hostPath.type }}
    type: {{ . }}
    {{- end }}
{{- end }}
{{- end }}

{{/* Pod scheduling and security shared by both components; . is the component's values. */}}
{{- define "tessera.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Cross-field rules the schema does not express; the message quotes the value.
*/}}
{{- define "tessera.validate" -}}
{{- $w := .Values.workers }}
{{- if and (eq $w.backend "cuda") (lt ($w.gpusPerWorker | int) 1) }}
{{- fail (printf "workers.gpusPerWorker must be 1 when workers.backend is cuda. Given: %d" ($w.gpusPerWorker | int)) }}
{{- end }}
{{- if and (eq $w.backend "cpu") (gt ($w.gpusPerWorker | int) 0) }}
{{- fail (printf "workers.gpusPerWorker must be 0 when workers.backend is cpu. Given: %d" ($w.gpusPerWorker | int)) }}
{{- end }}
{{- $sec := .Values.security }}
{{- if and $sec.tls (not $sec.clusterTls.existingSecret) }}
{{- fail "security.clusterTls.existingSecret is required when security.tls is true (the Secret with tls.crt, tls.key and ca.crt; deploy/make-certs.sh makes one), or set security.tls=false for an insecure cluster" }}
{{- end }}
{{- if and $sec.tls (not $sec.authTokens.existingSecret) }}
{{- fail "security.authTokens.existingSecret is required when security.tls is true (the Secret with the public API's bearer tokens)" }}
{{- end }}
{{- $c := .Values.coordinator.ports }}
{{- $ports := list ($c.grpc | int) ($c.internal | int) ($c.health | int) ($c.metrics | int) ($c.http | int) }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail (printf "coordinator.ports must be five different ports. Given: grpc %d, internal %d, health %d, metrics %d, http %d" ($c.grpc | int) ($c.internal | int) ($c.health | int) ($c.metrics | int) ($c.http | int)) }}
{{- end }}
{{- $wp := .Values.workers.ports }}
{{- $ports = list ($wp.grpc | int) ($wp.health | int) ($wp.metrics | int) }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail (printf "workers.ports must be three different ports. Given: grpc %d, health %d, metrics %d" ($wp.grpc | int) ($wp.health | int) ($wp.metrics | int)) }}
{{- end }}
{{- $m := .Values.model }}
{{- if and (ne $m.source "none") (not (hasPrefix (printf "%s/" (trimSuffix "/" $m.mountPath)) $m.path)) }}
{{- fail (printf "model.path must lie under model.mountPath (%s) when model.source is %s. Given: %s" $m.mountPath $m.source $m.path) }}
{{- end }}
{{- end }}
