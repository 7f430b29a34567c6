{{/* The ccm's cloud-config (kubevirt-ccm's format plus ours; see docs/ccm.md). */}}
{{- define "tenant-cloud.cloudConfig" -}}
{{- $config := dict
  "kubeconfig" (include "tenant-cloud.parentKubeconfigPath" .)
  "namespace" (include "tenant-cloud.parentNamespace" .)
  "clusterLabel" .Values.clusterLabel
  "infraLabels" .Values.infraLabels
  "loadBalancer" .Values.ccm.loadBalancer
  "instancesV2" .Values.ccm.instancesV2
  "nodeLifecycle" .Values.ccm.nodeLifecycle
-}}
{{- toYaml $config }}
{{- end -}}
