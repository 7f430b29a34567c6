{{/* Base name of every object: the release name, suffixed with the chart name unless it contains it. */}}
{{- define "tenant-cloud.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tenant-cloud.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "ccm"). */}}
{{- define "tenant-cloud.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tenant-cloud.componentLabels" -}}
{{ include "tenant-cloud.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tenant-cloud.podMetadata" -}}
labels:
  {{- include "tenant-cloud.selectorLabels" . | nindent 2 }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- if or .root.Values.podAnnotations .checksum }}
annotations:
  {{- with .root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .checksum }}
  checksum/config: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The tenant's parent namespace: parentNamespace, or tenant-<clusterName> by convention. */}}
{{- define "tenant-cloud.parentNamespace" -}}
{{- .Values.parentNamespace | default (printf "tenant-%s" .Values.clusterName) -}}
{{- end -}}

{{- define "tenant-cloud.image" -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .repository $tag -}}
{{- end -}}

{{/* A sidecar image: (dict "root" $ "sidecar" .Values.sidecars.provisioner). */}}
{{- define "tenant-cloud.sidecarImage" -}}
{{- printf "%s/%s:%s" .root.Values.sidecars.registry .sidecar.repository .sidecar.tag -}}
{{- end -}}

{{/* Labels marking this cluster's parent objects: the cluster label plus infraLabels. */}}
{{- define "tenant-cloud.parentLabels" -}}
{{- $labels := dict .Values.clusterLabel .Values.clusterName -}}
{{- range $key, $value := .Values.infraLabels -}}
{{- $_ := set $labels $key $value -}}
{{- end -}}
{{- $items := list -}}
{{- range $key, $value := $labels -}}
{{- $items = append $items (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- join "," $items -}}
{{- end -}}

{{- define "tenant-cloud.selectorless" -}}
{{- if or .Values.ccm.loadBalancer.selectorless .Values.ccm.loadBalancer.enableEPSController -}}true{{- end -}}
{{- end -}}

{{/* The security context of every container that is not the node plugin. */}}
{{- define "tenant-cloud.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "tenant-cloud.restrictedPod" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The parent kubeconfig Secret as a volume whose only file is `kubeconfig`. */}}
{{- define "tenant-cloud.parentKubeconfigVolume" -}}
- name: parent-kubeconfig
  secret:
    secretName: {{ .Values.parentKubeconfig.secretName }}
    defaultMode: 0440
    items:
      - key: {{ .Values.parentKubeconfig.key }}
        path: kubeconfig
{{- end -}}

{{- define "tenant-cloud.parentKubeconfigPath" -}}/etc/tenant-cloud/parent/kubeconfig{{- end -}}
