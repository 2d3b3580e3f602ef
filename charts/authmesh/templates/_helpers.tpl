{{/*
Names. "authmesh.fullname" is the prefix of every object the chart creates; it is the release
name when that already contains the chart name (helm install authmesh ...).
*/}}
{{- define "authmesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "authmesh.fullname" -}}
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

{{- define "authmesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Component names. */}}
{{- define "authmesh.controller.fullname" -}}{{ include "authmesh.fullname" . | trunc 52 | trimSuffix "-" }}-controller{{- end }}
{{- define "authmesh.authserver.fullname" -}}{{ include "authmesh.fullname" . | trunc 52 | trimSuffix "-" }}-authserver{{- end }}
{{- define "authmesh.webhook.serviceName" -}}{{ include "authmesh.fullname" . | trunc 47 | trimSuffix "-" }}-webhook-service{{- end }}
{{- define "authmesh.webhook.secretName" -}}{{ include "authmesh.fullname" . | trunc 50 | trimSuffix "-" }}-webhook-cert{{- end }}
{{/* Cluster-scoped and named in the controller's generated RBAC (resourceNames), so one name
whatever the release: one authmesh per cluster, as the cluster-scoped Tenant CRD implies. */}}
{{- define "authmesh.webhook.configName" -}}authmesh-sidecar-injector{{- end }}

{{/* The platform MongoDB Secret: the one the chart creates from mongodb.uri, else mongodb.existingSecret. */}}
{{- define "authmesh.mongodb.secretName" -}}
{{- if .Values.mongodb.uri }}{{ include "authmesh.fullname" . | trunc 55 | trimSuffix "-" }}-mongodb{{ else }}{{ required "mongodb.existingSecret (a Secret with key \"uri\" in the release namespace) or mongodb.uri is required" .Values.mongodb.existingSecret }}{{ end }}
{{- end }}

{{/* The auth server's public URL: publicURL, else its in-cluster Service. */}}
{{- define "authmesh.publicURL" -}}
{{- if .Values.publicURL }}{{ .Values.publicURL | trimSuffix "/" }}{{ else }}{{ include "authmesh.authserver.inClusterURL" . }}{{ end }}
{{- end }}
{{- define "authmesh.authserver.inClusterURL" -}}
http://{{ include "authmesh.authserver.fullname" . }}.{{ .Release.Namespace }}.svc:{{ .Values.authserver.service.port }}
{{- end }}
{{- define "authmesh.authserver.internalURL" -}}
http://{{ include "authmesh.authserver.fullname" . }}-internal.{{ .Release.Namespace }}.svc:3503
{{- end }}

{{/* Labels on every object; selector labels take a dict {ctx, component}. */}}
{{- define "authmesh.labels" -}}
helm.sh/chart: {{ include "authmesh.chart" . }}
app.kubernetes.io/name: {{ include "authmesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: authmesh
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "authmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "authmesh.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "authmesh.componentLabels" -}}
{{ include "authmesh.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* An image reference from a dict {ctx, image}: registry/repository, then @digest or :tag (default appVersion). */}}
{{- define "authmesh.image" -}}
{{- $registry := .ctx.Values.image.registry -}}
{{- $repo := .image.repository -}}
{{- if $registry }}{{ $repo = printf "%s/%s" ($registry | trimSuffix "/") $repo }}{{ end -}}
{{- if .image.digest -}}
{{ $repo }}@{{ .image.digest }}
{{- else -}}
{{ $repo }}:{{ .image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* The restricted Pod Security Standard, for pods and containers. */}}
{{- define "authmesh.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- define "authmesh.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Peers of a NetworkPolicy rule: the given list, or every pod of every namespace ("in-cluster"). */}}
{{- define "authmesh.inClusterPeers" -}}
{{- if . }}
{{- toYaml . }}
{{- else }}
- namespaceSelector: {}
{{- end }}
{{- end }}
