{{- define "tenant-cloud-parent.serviceAccount" -}}
{{- .Values.serviceAccount.name | default (printf "tenant-cloud-%s" .Values.clusterName) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The username the apiserver gives the ServiceAccount: what every policy matches on. */}}
{{- define "tenant-cloud-parent.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "tenant-cloud-parent.serviceAccount" .) -}}
{{- end -}}

{{/* Cluster-scoped names (policies, bindings, the Nodes ClusterRole) are unique per namespace and cluster. */}}
{{- define "tenant-cloud-parent.clusterScopedName" -}}
{{- printf "tenant-cloud.%s.%s" .Release.Namespace .Values.clusterName -}}
{{- end -}}

{{- define "tenant-cloud-parent.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ .Values.clusterLabel }}: {{ .Values.clusterName }}
{{- end -}}

{{/* CEL: the cluster label on the object under `path` (object or oldObject) names this cluster. */}}
{{- define "tenant-cloud-parent.celOwned" -}}
has({{ .path }}.metadata.labels) && {{ .root.Values.clusterLabel | toJson }} in {{ .path }}.metadata.labels && {{ .path }}.metadata.labels[{{ .root.Values.clusterLabel | toJson }}] == {{ .root.Values.clusterName | toJson }}
{{- end -}}

{{- define "tenant-cloud-parent.matchServiceAccount" -}}
matchConditions:
  - name: tenant-service-account
    expression: request.userInfo.username == {{ include "tenant-cloud-parent.username" . | toJson }}
{{- end -}}

{{/* A binding that denies what its policy rejects: (dict "root" $ "policy" "<suffix>"). */}}
{{- define "tenant-cloud-parent.binding" -}}
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {{ include "tenant-cloud-parent.clusterScopedName" .root }}.{{ .policy }}
  labels:
    {{- include "tenant-cloud-parent.labels" .root | nindent 4 }}
spec:
  policyName: {{ include "tenant-cloud-parent.clusterScopedName" .root }}.{{ .policy }}
  validationActions: [Deny]
{{- end -}}

{{- define "tenant-cloud-parent.allowedClasses" -}}
{{- $lb := .Values.policies.loadBalancer -}}
{{- $choices := $lb.classes -}}
{{- if $lb.allowNoClass }}{{ $choices = prepend $choices "unset" }}{{ end -}}
{{- if $choices }}{{ join " or " $choices }}{{ else }}one of no classes: policies.loadBalancer allows no parent load balancers{{ end -}}
{{- end -}}

{{- define "tenant-cloud-parent.ipRequestMessage" -}}
{{- with .Values.policies.loadBalancer.allowedIPRanges -}}
tenant-cloud: requested load-balancer IPs (spec.loadBalancerIP, lbipam.cilium.io/ips) must lie in {{ join ", " . }}
{{- else -}}
tenant-cloud: this tenant may not request load-balancer IPs (spec.loadBalancerIP, lbipam.cilium.io/ips)
{{- end -}}
{{- end -}}
