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
{{- include "spiderpool.checks.unbuilt" . -}}
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
spiderpool.checks.unbuilt refuses upstream values whose feature this release does not have, so that
setting one fails the install instead of being accepted and ignored. Their defaults render: they
ask for nothing, or for something no value of this chart can turn on (gops). test/chart
values_test.go holds every value of values.yaml to this: consumed, or refused here.
*/}}
{{- define "spiderpool.checks.unbuilt" -}}
{{- if not .Values.multus.enableMultusConfig -}}
{{- fail "multus.enableMultusConfig=false: spiderpool-controller always runs the SpiderMultusConfig controller and has no switch to stop it; leave it true" -}}
{{- end -}}
{{- if .Values.spiderpoolAgent.prometheus.enabledRdmaMetric -}}
{{- fail "spiderpoolAgent.prometheus.enabledRdmaMetric=true: RDMA is out of scope for spiderpool-go and spiderpool-agent exports no RDMA metrics; leave it false" -}}
{{- end -}}
{{- if ne (int .Values.spiderpoolAgent.debug.gopsPort) 5712 -}}
{{- fail (printf "spiderpoolAgent.debug.gopsPort=%v: spiderpool-agent serves no gops agent, on any port; leave the default 5712" .Values.spiderpoolAgent.debug.gopsPort) -}}
{{- end -}}
{{- if ne (int .Values.spiderpoolController.debug.gopsPort) 5724 -}}
{{- fail (printf "spiderpoolController.debug.gopsPort=%v: spiderpool-controller serves no gops agent, on any port; leave the default 5724" .Values.spiderpoolController.debug.gopsPort) -}}
{{- end -}}
{{- if .Values.spiderpoolController.podResourceInject.enabled -}}
{{- fail "spiderpoolController.podResourceInject.enabled=true is not implemented by spiderpool-go (no webhook injects network resources into pods); leave it false" -}}
{{- end -}}
{{- if .Values.sriov.install -}}
{{- fail "sriov.install=true: spiderpool-go does not deploy the SR-IOV network operator (out of scope); install it on its own and leave this false" -}}
{{- end -}}
{{- if .Values.rdma.rdmaSharedDevicePlugin.install -}}
{{- fail "rdma.rdmaSharedDevicePlugin.install=true: spiderpool-go does not deploy the RDMA shared device plugin (out of scope); install it on its own and leave this false" -}}
{{- end -}}
{{- if .Values.grafanaDashboard.install -}}
{{- fail "grafanaDashboard.install=true: spiderpool-go ships no Grafana dashboards; leave it false" -}}
{{- end -}}
{{- end -}}

{{/*
spiderpool.multus.kubeconfig: where the kubeconfig of the Multus plugin lives on the node.
*/}}
{{- define "spiderpool.multus.kubeconfig" -}}
{{- printf "%s/multus.d/multus.kubeconfig" (trimSuffix "/" .Values.global.cniConfHostPath) -}}
{{- end -}}
