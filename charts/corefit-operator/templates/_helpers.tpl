{{/* The chart name, overridable. */}}
{{- define "corefit-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every object: release-chart, or just the release name when
it already contains the chart name. 63 characters at most (DNS label).
*/}}
{{- define "corefit-operator.fullname" -}}
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

{{- define "corefit-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "corefit-operator.labels" -}}
helm.sh/chart: {{ include "corefit-operator.chart" . }}
{{ include "corefit-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: corefit
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator pods: never change them on upgrade. */}}
{{- define "corefit-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "corefit-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "corefit-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "corefit-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "corefit-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "corefit-operator.launcherImage" -}}
{{- default (printf "corefit/corefit:%s" .Chart.AppVersion) .Values.operator.launcherImage }}
{{- end }}

{{- define "corefit-operator.leaseName" -}}
{{- default (include "corefit-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}
