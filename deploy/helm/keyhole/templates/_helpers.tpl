{{/*
Names and labels shared by every template.
*/}}

{{/* The chart's name: app.kubernetes.io/name. */}}
{{- define "keyhole.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: the release name, followed by the
chart's name unless the release name already contains it ("keyhole" for
a release named keyhole).
*/}}
{{- define "keyhole.fullname" -}}
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

{{/* What selects keyhole's pods: the Deployment, Service, PDB, NetworkPolicy. */}}
{{- define "keyhole.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyhole.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: serve
{{- end }}

{{/* Every object's labels. */}}
{{- define "keyhole.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "keyhole.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: keyhole
{{- end }}

{{- define "keyhole.serviceAccountName" -}}
{{- default (include "keyhole.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "keyhole.leaseName" -}}
{{- default (include "keyhole.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The image: by digest when one is given, else by tag (default appVersion). */}}
{{- define "keyhole.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The ServiceAccount as an RBAC subject. */}}
{{- define "keyhole.subject" -}}
- kind: ServiceAccount
  name: {{ include "keyhole.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/* The audit webhook's TLS Secret (kubernetes.io/tls). */}}
{{- define "keyhole.auditWebhookTLSSecret" -}}
{{- default (printf "%s-audit-webhook-tls" (include "keyhole.fullname" .)) .Values.auditWebhook.tlsSecretName }}
{{- end }}

{{/* The Secret holding the audit webhook's bearer token (auth: token). */}}
{{- define "keyhole.auditWebhookTokenSecret" -}}
{{- default (printf "%s-audit-webhook-token" (include "keyhole.fullname" .)) .Values.auditWebhook.tokenSecretName }}
{{- end }}
