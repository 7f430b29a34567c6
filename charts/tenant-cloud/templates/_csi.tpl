{{/* The driver's storage-class enforcement YAML: the parent classes of .Values.storageClasses, plus extras. */}}
{{- define "tenant-cloud.enforcement" -}}
{{- $enforcement := .Values.csi.enforcement -}}
{{- $allowList := $enforcement.allowList -}}
{{- $allowDefault := $enforcement.allowDefault -}}
{{- range .Values.storageClasses -}}
{{- if .parentStorageClass -}}
{{- $allowList = append $allowList .parentStorageClass -}}
{{- else -}}
{{- $allowDefault = true -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict
  "allowAll" $enforcement.allowAll
  "allowDefault" $allowDefault
  "allowList" ($allowList | uniq | sortAlpha)
  "storageSnapshotMapping" $enforcement.storageSnapshotMapping) -}}
{{- end -}}

{{- define "tenant-cloud.csiSocketVolumeMount" -}}
- {name: socket-dir, mountPath: /csi}
{{- end -}}

{{/* What every controller sidecar shares: the socket, the namespace, resources, a restricted context. */}}
{{- define "tenant-cloud.sidecarCommon" -}}
env:
  - name: NAMESPACE
    valueFrom:
      fieldRef: {fieldPath: metadata.namespace}
resources:
  {{- toYaml .Values.sidecars.resources | nindent 2 }}
securityContext:
  {{- include "tenant-cloud.restrictedContainer" . | nindent 2 }}
volumeMounts:
  {{- include "tenant-cloud.csiSocketVolumeMount" . | nindent 2 }}
{{- end -}}

{{/* Node sidecars reach the root-owned socket and registration directory as root, with no capabilities. */}}
{{- define "tenant-cloud.nodeSidecarContext" -}}
runAsUser: 0
runAsNonRoot: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
