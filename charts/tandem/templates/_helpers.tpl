{{/* Names, labels and the image reference, shared by every template. */}}

{{- define "tandem.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tandem.fullname" -}}
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

{{- define "tandem.operatorName" -}}
{{- printf "%s-operator" (include "tandem.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tandem.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tandem.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tandem.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "tandem.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tandem
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tandem.operatorSelector" -}}
app.kubernetes.io/name: {{ include "tandem.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "tandem.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}{{ $repo = printf "%s/%s" .Values.image.registry .Values.image.repository }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The operator's RBAC rules, read from deploy/rbac.yaml (files/rbac.yaml is a link to it): the one
definition that operator_rbac_test checks against every call the operator makes. Argument: a dict
with "root" (the chart context) and "kind"/"name" of the document whose rules to return.
*/}}
{{- define "tandem.rulesFrom" -}}
{{- $found := "" }}
{{- range $doc := splitList "\n---" (.root.Files.Get "files/rbac.yaml") }}
{{- $obj := fromYaml $doc }}
{{- if and $obj (eq (get $obj "kind" | default "") $.kind) (eq (get (get $obj "metadata" | default dict) "name" | default "") $.name) }}
{{- $found = toYaml (get $obj "rules") }}
{{- end }}
{{- end }}
{{- if not $found }}{{ fail (printf "files/rbac.yaml (deploy/rbac.yaml) has no %s %s" .kind .name) }}{{ end }}
{{- $found }}
{{- end }}

{{/* Fails when a prometheus-operator kind is asked for on a cluster that does not serve it. */}}
{{- define "tandem.requireMonitoringApi" -}}
{{- if not (.root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind)) }}
{{- fail (printf "%s: the cluster does not serve monitoring.coreos.com/v1 %s (install prometheus-operator's CRDs, or pass --api-versions monitoring.coreos.com/v1/%s to helm template)" .value .kind .kind) }}
{{- end }}
{{- end }}
