{{/* Chart name, overridable. */}}
{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name, with the chart name appended
unless the release name already contains it. Truncated to 63 (DNS labels).
*/}}
{{- define "switchboard.fullname" -}}
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

{{- define "switchboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "switchboard.labels" -}}
helm.sh/chart: {{ include "switchboard.chart" . }}
{{ include "switchboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchboard
{{- end }}

{{/* The operator pods' selector (immutable in a Deployment: never add a changing label). */}}
{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "switchboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchboard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's image: repository:tag, the tag defaulting to the appVersion. */}}
{{- define "switchboard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The tenants' default gateway image: the operator's own unless overridden. */}}
{{- define "switchboard.gatewayImage" -}}
{{- default (include "switchboard.image" .) .Values.gateway.image }}
{{- end }}

{{- define "switchboard.leaseName" -}}
{{- default (include "switchboard.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The Secret holding the database admin URL, or "" when there is none. */}}
{{- define "switchboard.adminSecretName" -}}
{{- if and .Values.database.adminSecret.create (not .Values.database.adminSecret.name) }}
{{- printf "%s-database-admin" (include "switchboard.fullname" .) }}
{{- else }}
{{- .Values.database.adminSecret.name }}
{{- end }}
{{- end }}

{{/* The operator's --gateway-data-volume (JSON) from gateway.spool. */}}
{{- define "switchboard.gatewayDataVolume" -}}
{{- $s := .Values.gateway.spool }}
{{- if eq $s.type "emptyDir" }}
{{- dict "type" "emptyDir" "sizeLimit" (required "gateway.spool.sizeLimit is required" $s.sizeLimit) | toJson }}
{{- else if eq $s.type "ephemeral" }}
{{- $v := dict "type" "ephemeral" "size" (required "gateway.spool.size is required with type ephemeral" $s.size) }}
{{- with $s.storageClassName }}{{ $_ := set $v "storageClassName" . }}{{ end }}
{{- $v | toJson }}
{{- else if eq $s.type "claim" }}
{{- dict "type" "claim" "claimName" (required "gateway.spool.claimName is required with type claim" $s.claimName) | toJson }}
{{- else }}
{{- fail "gateway.spool.type must be emptyDir, ephemeral or claim" }}
{{- end }}
{{- end }}

{{/* The operator's --gateway-recordings-volume (JSON) from gateway.recordingsVolume. */}}
{{- define "switchboard.gatewayRecordingsVolume" -}}
{{- $r := .Values.gateway.recordingsVolume }}
{{- $v := dict "size" $r.size "accessMode" (default "ReadWriteMany" $r.accessMode) }}
{{- with $r.storageClassName }}{{ $_ := set $v "storageClassName" . }}{{ end }}
{{- $v | toJson }}
{{- end }}
