{{/*
The worker pod template, shared by the StatefulSet and the LeaderWorkerSet.
Each worker advertises its stable DNS name under a headless Service (peers
dial it for K/V blocks and SSD state) and registers itself with the
coordinator's internal Service every second, so adding or removing pods
changes the cluster's context capacity without restarting anything. All it
serves is internal (mutual TLS with the cluster CA); the probes use a
plaintext port that serves health alone.
Call with (dict "root" $ "subdomain" NAME): NAME is the headless Service the
pod's hostname lives under.
*/}}
{{- define "tessera.workerPodTemplate" -}}
{{- $root := .root }}
{{- $w := $root.Values.workers }}
{{- $grpcPort := $w.ports.grpc | int }}
{{- $resources := deepCopy ($w.resources | default dict) }}
{{- if eq $w.backend "cuda" }}
{{- $limits := $resources.limits | default dict }}
{{- $_ := set $limits "nvidia.com/gpu" ($w.gpusPerWorker | int) }}
{{- $_ := set $resources "limits" $limits }}
{{- end }}
metadata:
  labels:
    {{- include "tessera.labels" $root | nindent 4 }}
    app.kubernetes.io/component: worker
  {{- with $w.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ $w.terminationGracePeriodSeconds | int }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: worker
      image: {{ include "tessera.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        - worker
        - --listen
        - {{ printf "0.0.0.0:%d" $grpcPort | quote }}
        - --advertise
        - {{ printf "$(POD_NAME).%s.$(POD_NAMESPACE).svc.%s:%d" .subdomain $root.Values.clusterDomain $grpcPort | quote }}
        - --coordinator
        - {{ include "tessera.coordinatorAddress" $root | quote }}
        - --health-port
        - {{ $w.ports.health | int | quote }}
        {{- include "tessera.securityArgs" (dict "root" $root "role" "worker") | trim | nindent 8 }}
        - --model
        - {{ $root.Values.model.path | quote }}
        - --memory-budget-mb
        - {{ $w.memoryBudgetMb | int | quote }}
        - --max-new-tokens-limit
        - {{ $root.Values.coordinator.args.maxNewTokensLimit | int | quote }}
        {{- if gt ($w.prefillChunkTokens | default 0 | int64) 0 }}
        - --prefill-chunk-tokens
        - {{ $w.prefillChunkTokens | int64 | quote }}
        {{- end }}
        {{- if gt ($root.Values.model.maxContextTokens | default 0 | int64) 0 }}
        - --max-context-tokens
        - {{ $root.Values.model.maxContextTokens | int64 | quote }}
        {{- end }}
        - --backend
        - {{ $w.backend }}
        {{- if eq $w.backend "cuda" }}
        - --precision
        - {{ $w.precision | default "bf16" }}
        {{- end }}
        - --metrics-port
        - {{ $w.ports.metrics | int | quote }}
        {{- if and (eq $w.backend "cpu") (gt ($w.blasThreads | int) 0) }}
        - --blas-threads
        - {{ $w.blasThreads | int | quote }}
        {{- end }}
        {{- range $w.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        {{- include "tessera.podIdentityEnv" $root | nindent 8 }}
        {{- if eq $w.backend "cuda" }}
        - name: NCCL_NVLS_ENABLE
          value: {{ ternary "1" "0" $w.nccl.nvlsEnable | quote }}
        {{- with $w.nccl.debug }}
        - name: NCCL_DEBUG
          value: {{ . | quote }}
        {{- end }}
        {{- with $w.nccl.socketIfname }}
        - name: NCCL_SOCKET_IFNAME
          value: {{ . | quote }}
        {{- end }}
        {{- end }}
        {{- with $w.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: grpc
          containerPort: {{ $grpcPort }}
        - name: health
          containerPort: {{ $w.ports.health | int }}
        - name: metrics
          containerPort: {{ $w.ports.metrics | int }}
      {{- include "tessera.grpcProbes" (dict "port" $w.ports.health "probes" $w.probes) | nindent 6 }}
      {{- with $resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        {{- with include "tessera.modelVolumeMount" $root }}
        {{- . | nindent 8 }}
        {{- end }}
        - name: dshm
          mountPath: /dev/shm
        {{- with include "tessera.securityVolumeMounts" (dict "root" $root "role" "worker") | trim }}
        {{- . | nindent 8 }}
        {{- end }}
  volumes:
    {{- with include "tessera.modelVolume" $root }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with include "tessera.securityVolumes" (dict "root" $root "role" "worker") | trim }}
    {{- . | nindent 4 }}
    {{- end }}
    - name: dshm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $w.shm.sizeLimit }}
  {{- with include "tessera.scheduling" $w | trim }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end }}
