{{- define "ostack.labels" -}}
app.kubernetes.io/part-of: ostack
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "ostack.selector" -}}
app.kubernetes.io/name: ostack
app.kubernetes.io/component: {{ . }}
{{- end }}

{{- define "ostack.webhookService" -}}ostack-webhook{{- end }}
{{- define "ostack.webhookSecret" -}}
{{- .Values.webhook.certSecret | default "ostack-webhook-tls" -}}
{{- end }}
