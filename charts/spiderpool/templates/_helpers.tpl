{{/*
Names are truncated to 63 characters: they become label values and DNS labels.
*/}}
{{- define "spiderpool.agent.name" -}}
{{- .Values.spiderpoolAgent.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "spiderpool.controller.name" -}}
{{- .Values.spiderpoolController.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "spiderpool.init.name" -}}
{{- .Values.spiderpoolInit.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "spiderpool.multus.name" -}}
{{- .Values.multus.multusCNI.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
spiderpool.labels: the common labels; call with (dict "ctx" $ "component" "<name>").
*/}}
{{- define "spiderpool.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{ include "spiderpool.selectorLabels" . }}
{{- end -}}

{{/*
spiderpool.selectorLabels: the labels that select one component's pods; immutable once deployed.
*/}}
{{- define "spiderpool.selectorLabels" -}}
app.kubernetes.io/name: spiderpool
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
spiderpool.image renders registry/repository:tag (or @digest); call with (dict "ctx" $ "image" <values>).
global.imageRegistryOverride replaces the registry of every image; an empty tag means v<appVersion>.
*/}}
{{- define "spiderpool.image" -}}
{{- $registry := .ctx.Values.global.imageRegistryOverride | default .image.registry -}}
{{- $ref := .image.repository -}}
{{- if $registry -}}
{{- $ref = printf "%s/%s" (trimSuffix "/" $registry) .image.repository -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $ref .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (.image.tag | default (printf "v%s" .ctx.Chart.AppVersion)) -}}
{{- end -}}
{{- end -}}

{{- define "spiderpool.agent.image" -}}
{{- include "spiderpool.image" (dict "ctx" . "image" .Values.spiderpoolAgent.image) -}}
{{- end -}}

{{- define "spiderpool.controller.image" -}}
{{- include "spiderpool.image" (dict "ctx" . "image" .Values.spiderpoolController.image) -}}
{{- end -}}

{{- define "spiderpool.multus.image" -}}
{{- include "spiderpool.image" (dict "ctx" . "image" .Values.multus.multusCNI.image) -}}
{{- end -}}

{{- define "spiderpool.plugins.image" -}}
{{- include "spiderpool.image" (dict "ctx" . "image" .Values.plugins.image) -}}
{{- end -}}

{{/*
spiderpool.multus.clusterNetwork: defaultCniCRName exactly as given ("name" or "namespace/name");
empty when unset. The chart never resolves it itself: spiderpool-agent (its --cluster-default-nad
and its multus-config subcommand, which writes Multus's 00-multus.conf) and spiderpool-init all
take the raw value with the release namespace and split it with one Go function
(multusconf.ResolveClusterNetwork). Multus needs the name and the namespace in two keys: a
"namespace/name" clusterNetwork is read as a file path and every pod's ADD fails.
*/}}
{{- define "spiderpool.multus.clusterNetwork" -}}
{{- .Values.multus.multusCNI.defaultCniCRName -}}
{{- end -}}

{{/*
spiderpool.autoPool: whether SpiderSubnet auto-created pools are on (both switches).
*/}}
{{- define "spiderpool.autoPool" -}}
{{- and .Values.ipam.spiderSubnet.enable .Values.ipam.spiderSubnet.autoPool.enable -}}
{{- end -}}

{{/*
spiderpool.checks fails the rendering on combinations the binaries cannot honour. In tls.method auto
the controller writes the webhook configurations for the Service "spiderpool-controller" on port 5722
and keeps its certificate in Secret "spiderpool-controller-server-certs": it has no flag to change
either name, so renaming them here would point the apiserver at nothing.
*/}}
{{- define "spiderpool.checks" -}}
{{- if not (or .Values.ipam.enableIPv4 .Values.ipam.enableIPv6) -}}
{{- fail "ipam.enableIPv4 and ipam.enableIPv6 are both false: enable at least one IP family" -}}
{{- end -}}
{{- if .Values.ipam.gc.statelessPod.enableGcRunningPodOnEmptyPodStatusIPs -}}
{{- fail "ipam.gc.statelessPod.enableGcRunningPodOnEmptyPodStatusIPs=true: reclaiming the IPs of running pods without status.podIPs is not built in this release; leave it false" -}}
{{- end -}}
{{- if eq .Values.spiderpoolController.tls.method "auto" -}}
{{- if ne (include "spiderpool.controller.name" .) "spiderpool-controller" -}}
{{- fail (printf "spiderpoolController.name %q: with spiderpoolController.tls.method=auto the controller registers its webhooks for the Service \"spiderpool-controller\"; keep that name or use tls.method provided/certmanager" .Values.spiderpoolController.name) -}}
{{- end -}}
{{- if ne .Values.spiderpoolController.tls.secretName "spiderpool-controller-server-certs" -}}
{{- fail (printf "spiderpoolController.tls.secretName %q: with spiderpoolController.tls.method=auto the controller always uses Secret \"spiderpool-controller-server-certs\"" .Values.spiderpoolController.tls.secretName) -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.spiderpoolController.tls.method "provided" -}}
{{- if not (and .Values.spiderpoolController.tls.provided.tlsCa .Values.spiderpoolController.tls.provided.tlsCert .Values.spiderpoolController.tls.provided.tlsKey) -}}
{{- fail "spiderpoolController.tls.method=provided needs spiderpoolController.tls.provided.tlsCa, tlsCert and tlsKey (PEM)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
spiderpool.multus.kubeconfig: where the kubeconfig of the Multus plugin lives on the node.
*/}}
{{- define "spiderpool.multus.kubeconfig" -}}
{{- printf "%s/multus.d/multus.kubeconfig" (trimSuffix "/" .Values.global.cniConfHostPath) -}}
{{- end -}}
