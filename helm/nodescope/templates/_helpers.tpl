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

{{/* Where the TLS Secret (tls.enabled) and the API token Secret (apiToken.secretName) are
     mounted; the configs' empty TLS and token options point there. */}}
{{- define "nodescope.tls.dir" -}}/etc/nodescope/tls{{- end }}
{{- define "nodescope.apiToken.dir" -}}/etc/nodescope/api-token{{- end }}

{{/* The sensor's config: trace_server "" means this release's aggregator Service; with
     tls.enabled, empty TLS options name the mounted Secret's files. */}}
{{- define "nodescope.sensor.config" -}}
{{- $cfg := deepCopy .Values.sensor.config }}
{{- if not $cfg.trace_server }}
{{- $_ := set $cfg "trace_server" (printf "%s.%s.svc:%s" (include "nodescope.aggregator.fullname" .) .Release.Namespace (include "nodescope.aggregator.grpcPort" .)) }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- $dir := include "nodescope.tls.dir" . }}
{{- if not $cfg.tls_ca }}
{{- $_ := set $cfg "tls_ca" (printf "%s/ca.crt" $dir) }}
{{- end }}
{{- if and .Values.tls.mutual (not $cfg.tls_cert) (not $cfg.tls_key) }}
{{- $_ := set $cfg "tls_cert" (printf "%s/tls.crt" $dir) }}
{{- $_ := set $cfg "tls_key" (printf "%s/tls.key" $dir) }}
{{- end }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* The aggregator's config: with tls.enabled, empty TLS options name the mounted Secret's files;
     with apiToken.secretName, an empty api_token names the mounted token. */}}
{{- define "nodescope.aggregator.config" -}}
{{- $cfg := deepCopy .Values.aggregator.config }}
{{- if .Values.tls.enabled }}
{{- $dir := include "nodescope.tls.dir" . }}
{{- if and (not $cfg.tls_cert) (not $cfg.tls_key) }}
{{- $_ := set $cfg "tls_cert" (printf "%s/tls.crt" $dir) }}
{{- $_ := set $cfg "tls_key" (printf "%s/tls.key" $dir) }}
{{- end }}
{{- if and .Values.tls.mutual (not $cfg.tls_client_ca) }}
{{- $_ := set $cfg "tls_client_ca" (printf "%s/ca.crt" $dir) }}
{{- end }}
{{- end }}
{{- if and .Values.apiToken.secretName (not $cfg.api_token) }}
{{- $_ := set $cfg "api_token" (printf "%s/token" (include "nodescope.apiToken.dir" .)) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
