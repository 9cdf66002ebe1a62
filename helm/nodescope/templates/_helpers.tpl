{{/* Names are cut at 63 characters: the DNS label limit Kubernetes enforces on names. */}}
{{- define "nodescope.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nodescope.fullname" -}}
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

{{/* "-sensor" / "-aggregator" are appended, so the base is cut shorter to leave room. */}}
{{- define "nodescope.sensor.fullname" -}}
{{- printf "%s-sensor" (include "nodescope.fullname" . | trunc 56 | trimSuffix "-") }}
{{- end }}

{{- define "nodescope.aggregator.fullname" -}}
{{- printf "%s-aggregator" (include "nodescope.fullname" . | trunc 52 | trimSuffix "-") }}
{{- end }}

{{- define "nodescope.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels never change across upgrades: a Deployment's selector is immutable. */}}
{{- define "nodescope.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nodescope.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Call with (dict "root" $ "component" "sensor"). */}}
{{- define "nodescope.labels" -}}
helm.sh/chart: {{ include "nodescope.chart" .root }}
{{ include "nodescope.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: nodescope
{{- end }}

{{- define "nodescope.sensor.serviceAccountName" -}}
{{- if .Values.sensor.serviceAccount.create }}
{{- default (include "nodescope.sensor.fullname" .) .Values.sensor.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.sensor.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "nodescope.aggregator.serviceAccountName" -}}
{{- if .Values.aggregator.serviceAccount.create }}
{{- default (include "nodescope.aggregator.fullname" .) .Values.aggregator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.aggregator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Call with (dict "image" .Values.sensor.image "root" $). */}}
{{- define "nodescope.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag }}
{{- if .image.registry }}
{{- printf "%s/%s:%s" .image.registry .image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* The port of a HOST:PORT option; the containers and the Service use the ports the config
     says the aggregator listens on, so the two cannot disagree. */}}
{{- define "nodescope.port" -}}
{{- $port := regexFind "[0-9]+$" . }}
{{- required (printf "cannot find a port in %q (expected HOST:PORT)" .) $port }}
{{- end }}

{{- define "nodescope.aggregator.grpcPort" -}}
{{- include "nodescope.port" .Values.aggregator.config.listen }}
{{- end }}

{{- define "nodescope.aggregator.httpPort" -}}
{{- include "nodescope.port" .Values.aggregator.config.http_listen }}
{{- end }}

{{- define "nodescope.tls.secretName" -}}
{{- required "tls.secretName is required when tls.enabled is true" .Values.tls.secretName }}
{{- end }}

{{/* The sensor's config: trace_server "" means this release's aggregator Service. */}}
{{- define "nodescope.sensor.config" -}}
{{- $cfg := deepCopy .Values.sensor.config }}
{{- if not $cfg.trace_server }}
{{- $_ := set $cfg "trace_server" (printf "%s.%s.svc:%s" (include "nodescope.aggregator.fullname" .) .Release.Namespace (include "nodescope.aggregator.grpcPort" .)) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
