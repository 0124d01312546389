package chart

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const (
	agent      = "spiderpool-agent"
	controller = "spiderpool-controller"
	initJob    = "spiderpool-init"
	multus     = "spiderpool-multus"
	conf       = "spiderpool-conf"
)

// otherLines are value combinations outside the guides that must render as well.
var otherLines = []GuideLine{
	{Name: "no-multus", Args: []string{"--set", "multus.multusCNI.install=false", "--set", "coordinator.enabled=false"}},
	{Name: "pod-network-controller", Args: []string{"--set", "spiderpoolController.hostnetwork=false", "--set", "spiderpoolController.replicas=3"}},
	{Name: "ipv6-only-metrics", Args: []string{"--set", "ipam.enableIPv4=false", "--set", "spiderpoolAgent.prometheus.enabled=true",
		"--set", "spiderpoolController.prometheus.enabled=true", "--set", "spiderpoolAgent.debug.logLevel=debug"}},
	{Name: "paths", Args: []string{"--set", "global.cniBinHostPath=/usr/libexec/cni", "--set", "global.cniConfHostPath=/etc/kubernetes/cni/net.d",
		"--set", "global.ipamUNIXSocketHostPath=/run/spiderpool/agent.sock", "--set", "multus.multusCNI.defaultCniCRName=macvlan-ens192"}},
}

func TestChartLint(t *testing.T) {
	helm, dir := Require(t)
	for _, g := range append(append([]GuideLine(nil), GuideLines...), otherLines...) {
		t.Run(g.Name, func(t *testing.T) {
			out, err := Lint(helm, dir, g.Args...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), "0 chart(s) failed") {
				t.Errorf("helm lint output:\n%s", out)
			}
		})
	}
}

// multusConfig returns the flags of the Multus DaemonSet's init container that writes
// 00-multus.conf (`spiderpool-agent multus-config`), or nil when Multus generates its own
// configuration. It also checks what makes the file reach the node: the agent image runs the
// subcommand, the file lands in an emptyDir, and the multus container copies that very file.
func multusConfig(t *testing.T, m *manifests) map[string]string {
	t.Helper()
	ds := m.daemonSet(t, multus).Spec.Template.Spec
	if !hasContainer(ds, "multus-config") {
		return nil
	}
	c := container(t, ds, "multus-config")
	if want := []string{"/usr/bin/" + agent, "multus-config"}; !slices.Equal(c.Command, want) {
		t.Errorf("multus-config command %v, want %v", c.Command, want)
	}
	if want := container(t, m.daemonSet(t, agent).Spec.Template.Spec, agent).Image; c.Image != want {
		t.Errorf("multus-config image %q, want the agent's %q", c.Image, want)
	}
	f := flags(t, c)
	mountOf := func(c corev1.Container, volume string) string {
		for _, vm := range c.VolumeMounts {
			if vm.Name == volume {
				return vm.MountPath
			}
		}
		return ""
	}
	dir := mountOf(c, "multus-conf")
	if dir == "" || f["out"] != dir+"/00-multus.conf" {
		t.Errorf("multus-config writes %q, not 00-multus.conf in its multus-conf volume (mounted at %q)", f["out"], dir)
	}
	mc := container(t, ds, "multus")
	copied := strings.TrimPrefix(mc.Args[0], "--multus-conf-file=")
	if mountOf(mc, "multus-conf")+"/00-multus.conf" != copied || copied == mc.Args[0] {
		t.Errorf("multus container copies %q, not the file multus-config writes into the shared volume", mc.Args[0])
	}
	for _, v := range ds.Volumes {
		if v.Name == "multus-conf" && v.EmptyDir == nil {
			t.Errorf("multus-conf volume %+v: want an emptyDir the init container writes", v.VolumeSource)
		}
	}
	return f
}

// confYAML returns the conf.yml of spiderpool-conf.
func confYAML(t *testing.T, m *manifests) map[string]any {
	t.Helper()
	var c map[string]any
	if err := yaml.Unmarshal([]byte(m.configMap(t, conf).Data["conf.yml"]), &c); err != nil {
		t.Fatalf("conf.yml: %v", err)
	}
	return c
}

func images(spec corev1.PodSpec) []string {
	var out []string
	for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
		out = append(out, c.Image)
	}
	return out
}

// TestChartGuideLines renders each install line of the guides and checks what the line changes.
func TestChartGuideLines(t *testing.T) {
	type check func(t *testing.T, m *manifests)

	statefulSet := func(want string) check {
		return func(t *testing.T, m *manifests) {
			a := flags(t, container(t, m.daemonSet(t, agent).Spec.Template.Spec, agent))
			c := flags(t, container(t, m.deployment(t, controller).Spec.Template.Spec, controller))
			if a["enable-statefulset"] != want || c["enable-statefulset"] != want {
				t.Errorf("--enable-statefulset: agent %q, controller %q, want %q", a["enable-statefulset"], c["enable-statefulset"], want)
			}
			if got := confYAML(t, m)["enableStatefulSet"]; got != (want == "true") {
				t.Errorf("spiderpool-conf enableStatefulSet = %v, want %s", got, want)
			}
		}
	}
	// clusterNetwork checks that every component gets defaultCniCRName as given, with the
	// release namespace beside it: the chart resolves nothing, so that the Go code that does
	// (multusconf.ResolveClusterNetwork; cmd/spiderpool-agent's tests run multus-config on these
	// rendered arguments) is the only place that decides what Multus's clusterNetwork and
	// multusNamespace are. A template once wrote "kube-system/ipvlan-eth0" as clusterNetwork,
	// which Multus reads as a file path.
	clusterNetwork := func(raw string) check {
		return func(t *testing.T, m *manifests) {
			for _, cm := range m.ofKind("ConfigMap") {
				if data, _, _ := unstructuredString(cm.Object, "data", "00-multus.conf"); data != "" {
					t.Errorf("ConfigMap %s carries a 00-multus.conf rendered by the template", cm.GetName())
				}
			}
			mc := multusConfig(t, m)
			if mc == nil {
				t.Fatal("no multus-config init container: nothing writes 00-multus.conf although defaultCniCRName is set")
			}
			wantArgs := map[string]string{
				"cluster-network":  raw,
				"namespace":        Namespace,
				"kubeconfig-path":  "/etc/cni/net.d/multus.d/multus.kubeconfig",
				"conf-dir":         "/etc/cni/net.d",
				"bin-dir":          "/opt/cni/bin",
				"multus-log-level": "debug",
				"multus-log-file":  "/var/log/multus.log",
				"out":              "/tmp/multus-conf/00-multus.conf",
			}
			if diff := cmp.Diff(wantArgs, mc); diff != "" {
				t.Errorf("multus-config arguments (-want +got):\n%s", diff)
			}
			if !hasContainer(m.daemonSet(t, multus).Spec.Template.Spec, "kubeconfig") {
				t.Error("no kubeconfig container: nothing writes multus.d/multus.kubeconfig")
			}
			a := flags(t, container(t, m.daemonSet(t, agent).Spec.Template.Spec, agent))
			if a["cluster-default-nad"] != raw || a["install-namespace"] != Namespace {
				t.Errorf("agent --cluster-default-nad=%q --install-namespace=%q, want %q and %q",
					a["cluster-default-nad"], a["install-namespace"], raw, Namespace)
			}
			if got := m.configMap(t, conf).Data["clusterNetwork"]; got != raw {
				t.Errorf("spiderpool-conf clusterNetwork = %q, want %q", got, raw)
			}
			e := envs(container(t, m.job(t, initJob).Spec.Template.Spec, initJob))
			if e["SPIDERPOOL_INIT_MULTUS_DEFAULT_CNI_CR_NAME"] != raw || e["SPIDERPOOL_INIT_NAMESPACE"] != Namespace {
				t.Errorf("init SPIDERPOOL_INIT_MULTUS_DEFAULT_CNI_CR_NAME=%q SPIDERPOOL_INIT_NAMESPACE=%q, want %q and %q",
					e["SPIDERPOOL_INIT_MULTUS_DEFAULT_CNI_CR_NAME"], e["SPIDERPOOL_INIT_NAMESPACE"], raw, Namespace)
			}
			if _, ok := e["SPIDERPOOL_INIT_CNI_CONF_DIR"]; ok {
				t.Error("init reads the CNI configuration directory although defaultCniCRName is set")
			}
		}
	}
	multusAuto := func(t *testing.T, m *manifests) {
		if mc := multusConfig(t, m); mc != nil {
			t.Errorf("multus-config init container rendered without defaultCniCRName: %v", mc)
		}
		if m.get("ConfigMap", multus) != nil {
			t.Error("Multus ConfigMap rendered without defaultCniCRName")
		}
		c := container(t, m.daemonSet(t, multus).Spec.Template.Spec, "multus")
		if !strings.Contains(strings.Join(c.Args, " "), "--multus-conf-file=auto") {
			t.Errorf("multus args %v: want the node's own configuration wrapped (auto)", c.Args)
		}
		// Auto mode's entrypoint writes the "https://[IPv4]:port" kubeconfig too (the overlay
		// scenario's pods failed with it on the real cluster).
		if !hasContainer(m.daemonSet(t, multus).Spec.Template.Spec, "kubeconfig") {
			t.Error("no kubeconfig container in auto mode: multus.d/multus.kubeconfig keeps the entrypoint's unparsable server")
		}
		e := envs(container(t, m.job(t, initJob).Spec.Template.Spec, initJob))
		if e["SPIDERPOOL_INIT_CNI_CONF_DIR"] != "/host/etc/cni/net.d" {
			t.Errorf("init SPIDERPOOL_INIT_CNI_CONF_DIR = %q: it must read the node's CNI configuration", e["SPIDERPOOL_INIT_CNI_CONF_DIR"])
		}
	}
	coordinatorMode := func(want string) check {
		return func(t *testing.T, m *manifests) {
			e := envs(container(t, m.job(t, initJob).Spec.Template.Spec, initJob))
			if e["SPIDERPOOL_INIT_COORDINATOR_MODE"] != want {
				t.Errorf("init SPIDERPOOL_INIT_COORDINATOR_MODE = %q, want %q", e["SPIDERPOOL_INIT_COORDINATOR_MODE"], want)
			}
		}
	}
	plugins := func(want bool) check {
		return func(t *testing.T, m *manifests) {
			spec := m.daemonSet(t, agent).Spec.Template.Spec
			if hasContainer(spec, "install-plugins") != want {
				t.Fatalf("install-plugins init container present = %v, want %v", !want, want)
			}
			if !want {
				return
			}
			c := container(t, spec, "install-plugins")
			if repo := value(t, values(t), "plugins.image.repository"); !strings.Contains(c.Image, fmt.Sprintf("/%s:", repo)) {
				t.Errorf("install-plugins image %q, want repository %s", c.Image, repo)
			}
			if envs(c)["INSTALL_CNI_PLUGINS"] != "true" {
				t.Errorf("INSTALL_CNI_PLUGINS = %q", envs(c)["INSTALL_CNI_PLUGINS"])
			}
			if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/host/opt/cni/bin" {
				t.Errorf("install-plugins mounts %v, want the host CNI bin directory", c.VolumeMounts)
			}
		}
	}
	registry := func(want string) check {
		return func(t *testing.T, m *manifests) {
			n := 0
			for key, spec := range m.podSpecs(t) {
				for _, img := range images(spec) {
					n++
					if !strings.HasPrefix(img, want+"/") {
						t.Errorf("%s: image %q is not from %s", key, img, want)
					}
				}
			}
			if n < 6 {
				t.Errorf("only %d images found; the agent, controller, init and Multus pods are missing", n)
			}
			ds := m.daemonSet(t, multus).Spec.Template.Spec
			v := values(t)
			wantImage := fmt.Sprintf("%s/%s:%s", want, value(t, v, "multus.multusCNI.image.repository"), value(t, v, "multus.multusCNI.image.tag"))
			if got := container(t, ds, "install-multus-binary").Image; got != wantImage {
				t.Errorf("Multus image %q, want %q", got, wantImage)
			}
		}
	}

	checks := map[string][]check{
		"defaults":          {statefulSet("true"), multusAuto, coordinatorMode("auto"), plugins(false), registry("ghcr.io")},
		"alibaba":           {statefulSet("false"), clusterNetwork("ipvlan-eth0"), coordinatorMode("auto"), plugins(false), registry("ghcr.io")},
		"alibaba-optional":  {statefulSet("false"), clusterNetwork("ipvlan-eth0"), plugins(true), registry("ghcr.m.daocloud.io")},
		"aws":               {statefulSet("false"), clusterNetwork("default/ipvlan-ens5"), registry("ghcr.io")},
		"calico-overlay":    {statefulSet("true"), multusAuto, coordinatorMode("overlay"), plugins(false)},
		"install-cni":       {plugins(true), registry("ghcr.io")},
		"registry-override": {plugins(false), registry("ghcr.m.daocloud.io")},
	}
	for _, g := range GuideLines {
		t.Run(g.Name, func(t *testing.T) {
			cs, ok := checks[g.Name]
			if !ok {
				t.Fatalf("guide line %q has no checks", g.Name)
			}
			m := render(t, g.Args...)
			for _, c := range cs {
				c(t, m)
			}
		})
	}
}

// TestChartSchemaRejects checks that values.schema.json stops wrong values before anything is
// rendered, and that helm's message names the value.
func TestChartSchemaRejects(t *testing.T) {
	helm, dir := Require(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "coordinator.mode=foo"}, "/coordinator/mode"},
		{[]string{"--set", "spiderpoolAgent.httpPort=abc"}, "/spiderpoolAgent/httpPort"},
		{[]string{"--set", "spiderpoolController.webhookPort=70000"}, "/spiderpoolController/webhookPort"},
		{[]string{"--set", "coordinator.podCIDRType=flannel"}, "/coordinator/podCIDRType"},
		{[]string{"--set", "spiderpoolController.tls.method=self"}, "/spiderpoolController/tls/method"},
		{[]string{"--set", "ipam.enableIPv4=yes"}, "/ipam/enableIPv4"},
		{[]string{"--set", "coordinator.vethMTU=0"}, "/coordinator/vethMTU"},
		{[]string{"--set", "multus.multusCNI.defaultCniCRName=a/b/c"}, "/multus/multusCNI/defaultCniCRName"},
		{[]string{"--set-string", "spiderpoolController.replicas=2"}, "/spiderpoolController/replicas"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for cmd, fn := range map[string]func(string, string, ...string) ([]byte, error){"template": Template, "lint": Lint} {
				out, err := fn(helm, dir, tc.args...)
				if err == nil {
					t.Fatalf("helm %s accepted %v:\n%.400s", cmd, tc.args, out)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("helm %s: error does not name %s: %v", cmd, tc.want, err)
				}
			}
		})
	}
}

// TestChartRefusesWhatBinariesCannotDo checks the template failures of spiderpool.checks.
func TestChartRefusesWhatBinariesCannotDo(t *testing.T) {
	helm, dir := Require(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "spiderpoolController.name=my-controller"}, "spiderpoolController.name"},
		{[]string{"--set", "spiderpoolController.tls.secretName=other"}, "spiderpoolController.tls.secretName"},
		{[]string{"--set", "spiderpoolController.tls.method=provided"}, "spiderpoolController.tls.provided"},
		{[]string{"--set", "ipam.enableIPv4=false", "--set", "ipam.enableIPv6=false"}, "enable at least one IP family"},
		{[]string{"--set", "ipam.gc.statelessPod.enableGcRunningPodOnEmptyPodStatusIPs=true"}, "enableGcRunningPodOnEmptyPodStatusIPs=true: reclaiming"},
		// spiderpool.checks.unbuilt: upstream features this release does not have.
		{[]string{"--set", "multus.enableMultusConfig=false"}, "multus.enableMultusConfig=false"},
		{[]string{"--set", "spiderpoolAgent.prometheus.enabledRdmaMetric=true"}, "spiderpoolAgent.prometheus.enabledRdmaMetric=true"},
		{[]string{"--set", "spiderpoolAgent.debug.gopsPort=6060"}, "spiderpoolAgent.debug.gopsPort=6060"},
		{[]string{"--set", "spiderpoolController.debug.gopsPort=6061"}, "spiderpoolController.debug.gopsPort=6061"},
		{[]string{"--set", "spiderpoolController.podResourceInject.enabled=true"}, "spiderpoolController.podResourceInject.enabled=true"},
		{[]string{"--set", "sriov.install=true"}, "sriov.install=true"},
		{[]string{"--set", "rdma.rdmaSharedDevicePlugin.install=true"}, "rdma.rdmaSharedDevicePlugin.install=true"},
		{[]string{"--set", "grafanaDashboard.install=true"}, "grafanaDashboard.install=true"},
	} {
		_, err := Template(helm, dir, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("helm template %v: got %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
	// The same renames are fine when the chart, not the controller, writes the webhook configurations.
	m := render(t, "--set", "spiderpoolController.name=my-controller", "--set", "spiderpoolController.tls.method=certmanager")
	wh := m.get("ValidatingWebhookConfiguration", "spiderpool-controller")
	if wh == nil {
		t.Fatal("no ValidatingWebhookConfiguration with tls.method=certmanager")
	}
	svc, _, _ := unstructuredString(wh.Object, "webhooks", 0, "clientConfig", "service", "name")
	if svc != "my-controller" {
		t.Errorf("webhook service %q, want my-controller", svc)
	}
}

// unstructuredString walks maps (string keys) and slices (int indexes).
func unstructuredString(obj any, path ...any) (string, bool, error) {
	cur := obj
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return "", false, nil
			}
			cur = m[k]
		case int:
			s, ok := cur.([]any)
			if !ok || k >= len(s) {
				return "", false, nil
			}
			cur = s[k]
		}
	}
	s, ok := cur.(string)
	return s, ok, nil
}

// TestChartTLSMethods checks who provides the certificate and the webhook configurations.
func TestChartTLSMethods(t *testing.T) {
	t.Run("auto", func(t *testing.T) {
		m := render(t)
		for _, k := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Secret"} {
			if len(m.ofKind(k)) > 0 {
				t.Errorf("tls.method auto renders a %s: the controller writes it and would fight Helm", k)
			}
		}
		d := m.deployment(t, controller).Spec.Template.Spec
		f := flags(t, container(t, d, controller))
		if f["webhook-tls-method"] != "auto" {
			t.Errorf("--webhook-tls-method=%s", f["webhook-tls-method"])
		}
		for _, v := range d.Volumes {
			if v.Name == "webhook-certs" && v.EmptyDir == nil {
				t.Errorf("auto: the certificate directory must be writable (emptyDir), got %+v", v.VolumeSource)
			}
		}
		if _, named := expand(m.role(t, controller).Rules); len(named[rule{"", "secrets", "get"}]) != 1 {
			t.Errorf("auto: the Role must let the controller read its one Secret: %v", named)
		}
	})
	t.Run("provided", func(t *testing.T) {
		m := render(t, "--set", "spiderpoolController.tls.method=provided",
			"--set", "spiderpoolController.tls.provided.tlsCa=CA-PEM", "--set", "spiderpoolController.tls.provided.tlsCert=CERT-PEM",
			"--set", "spiderpoolController.tls.provided.tlsKey=KEY-PEM")
		sec := m.get("Secret", "spiderpool-controller-server-certs")
		if sec == nil {
			t.Fatal("no Secret")
		}
		var mut admissionregistrationv1.MutatingWebhookConfiguration
		var val admissionregistrationv1.ValidatingWebhookConfiguration
		m.typed(t, "MutatingWebhookConfiguration", "spiderpool-controller", &mut)
		m.typed(t, "ValidatingWebhookConfiguration", "spiderpool-controller", &val)
		type hook struct {
			kind string
			cc   admissionregistrationv1.WebhookClientConfig
			ops  []admissionregistrationv1.OperationType
			res  []string
			se   *admissionregistrationv1.SideEffectClass
		}
		var hooks []hook
		for _, w := range mut.Webhooks {
			hooks = append(hooks, hook{"mutating " + w.Name, w.ClientConfig, w.Rules[0].Operations, w.Rules[0].Resources, w.SideEffects})
		}
		for _, w := range val.Webhooks {
			hooks = append(hooks, hook{"validating " + w.Name, w.ClientConfig, w.Rules[0].Operations, w.Rules[0].Resources, w.SideEffects})
		}
		if len(hooks) != 10 {
			t.Fatalf("%d webhooks, want 5 mutating and 5 validating", len(hooks))
		}
		for _, h := range hooks {
			s := h.cc.Service
			if string(h.cc.CABundle) != "CA-PEM" || s == nil || s.Name != controller || s.Namespace != Namespace || s.Port == nil || *s.Port != 5722 {
				t.Errorf("%s: client config %+v", h.kind, h.cc)
			}
			if fmt.Sprint(h.ops) != "[CREATE UPDATE]" || strings.Contains(fmt.Sprint(h.res), "/") {
				t.Errorf("%s: operations %v on %v; status and DELETE stay unhooked", h.kind, h.ops, h.res)
			}
			// As the controller registers them (tls.method auto): the SpiderIPPool validator writes
			// fences into SpiderIPBlocks, except on a dry run.
			if h.se == nil || *h.se != admissionregistrationv1.SideEffectClassNoneOnDryRun {
				t.Errorf("%s: sideEffects %v, want NoneOnDryRun", h.kind, h.se)
			}
		}
		if p := mut.Webhooks[3].ClientConfig.Service.Path; p == nil || *p != "/mutate-spiderpool-spidernet-io-v2beta1-spidermultusconfig" {
			t.Errorf("SpiderMultusConfig mutating path %v", p)
		}
		unnamed, named := expand(m.role(t, controller).Rules)
		if unnamed[rule{"", "secrets", "create"}] || len(named[rule{"", "secrets", "get"}]) > 0 {
			t.Error("provided: the controller gets Secret permissions it does not use")
		}
		if cr, _ := expand(m.clusterRole(t, controller).Rules); cr[rule{"admissionregistration.k8s.io", "validatingwebhookconfigurations", "update"}] {
			t.Error("provided: the controller may rewrite the chart's webhook configurations")
		}
		d := m.deployment(t, controller).Spec.Template.Spec
		for _, v := range d.Volumes {
			if v.Name == "webhook-certs" && (v.Secret == nil || v.Secret.SecretName != "spiderpool-controller-server-certs") {
				t.Errorf("provided: certificate volume %+v, want the Secret", v.VolumeSource)
			}
		}
	})
	t.Run("certmanager", func(t *testing.T) {
		m := render(t, "--set", "spiderpoolController.tls.method=certmanager")
		if m.get("Certificate", "spiderpool-controller-server-certs") == nil || m.get("Issuer", "spiderpool-controller-selfsigned") == nil {
			t.Fatal("no Certificate and self-signed Issuer")
		}
		wh := m.get("ValidatingWebhookConfiguration", "spiderpool-controller")
		if wh == nil || wh.GetAnnotations()["cert-manager.io/inject-ca-from"] != "kube-system/spiderpool-controller-server-certs" {
			t.Fatalf("webhook configuration without cert-manager CA injection: %v", wh)
		}
	})
}

// TestChartConfigMapMatchesFlags checks that spiderpool-conf, which the binaries do not read,
// says what the flags they do read say.
func TestChartConfigMapMatchesFlags(t *testing.T) {
	lines := append([]GuideLine{{Name: "everything-off", Args: []string{"--set", "ipam.enableIPv6=false", "--set", "ipam.spiderSubnet.autoPool.enable=false",
		"--set", "ipam.enableIPConflictDetection=true", "--set", "ipam.gc.enabled=false", "--set", "ipam.gc.gcAll.intervalInSecond=30"}}}, GuideLines...)
	for _, g := range lines {
		t.Run(g.Name, func(t *testing.T) {
			m := render(t, g.Args...)
			c := confYAML(t, m)
			a := flags(t, container(t, m.daemonSet(t, agent).Spec.Template.Spec, agent))
			ctl := flags(t, container(t, m.deployment(t, controller).Spec.Template.Spec, controller))
			gc, _ := c["gc"].(map[string]any)
			for _, p := range []struct {
				key  string
				conf any
				flag string
			}{
				{"enableIPv4", c["enableIPv4"], a["enable-ipv4"]},
				{"enableIPv4", c["enableIPv4"], ctl["enable-ipv4"]},
				{"enableIPv6", c["enableIPv6"], a["enable-ipv6"]},
				{"enableIPv6", c["enableIPv6"], ctl["enable-ipv6"]},
				{"enableStatefulSet", c["enableStatefulSet"], a["enable-statefulset"]},
				{"enableStatefulSet", c["enableStatefulSet"], ctl["enable-statefulset"]},
				{"enableAutoPoolForApplication", c["enableAutoPoolForApplication"], a["enable-auto-pool"]},
				{"enableAutoPoolForApplication", c["enableAutoPoolForApplication"], ctl["enable-auto-pool"]},
				{"enableSpiderSubnet", c["enableSpiderSubnet"], ctl["enable-spider-subnet"]},
				{"enableIPConflictDetection", c["enableIPConflictDetection"], a["enable-ip-conflict-detection"]},
				{"enableGatewayDetection", c["enableGatewayDetection"], a["enable-gateway-detection"]},
				{"ipamUnixSocketPath", c["ipamUnixSocketPath"], a["socket-path"]},
				{"gc.enabled", gc["enabled"], ctl["gc-enabled"]},

				{"gc.intervalInSecond", gc["intervalInSecond"], strings.TrimSuffix(ctl["gc-interval"], "s")},
				{"coordinatorName", c["coordinatorName"], a["coordinator-name"]},
				{"ciliumConfigMap", c["ciliumConfigMap"], ctl["cilium-configmap"]},
			} {
				if got := toString(p.conf); got != p.flag {
					t.Errorf("spiderpool-conf %s = %s, flag says %q", p.key, got, p.flag)
				}
			}
			if n := c["clusterSubnetDefaultFlexibleIPNumber"]; c["enableAutoPoolForApplication"] == true && toString(n) != ctl["auto-pool-default-redundant-ip-number"] {
				t.Errorf("spiderpool-conf clusterSubnetDefaultFlexibleIPNumber = %v, controller flag says %q", n, ctl["auto-pool-default-redundant-ip-number"])
			}
			if ctl["auto-pool-default-redundant-ip-number"] == "" {
				t.Error("the controller has no --auto-pool-default-redundant-ip-number")
			}
		})
	}
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

// TestChartOtherLines checks what the combinations outside the guides change.
func TestChartOtherLines(t *testing.T) {
	t.Run("no-multus", func(t *testing.T) {
		m := render(t, otherLines[0].Args...)
		for _, o := range m.objs {
			if strings.Contains(o.GetName(), "multus") {
				t.Errorf("%s %s rendered with multus.multusCNI.install=false", o.GetKind(), o.GetName())
			}
		}
		e := envs(container(t, m.job(t, initJob).Spec.Template.Spec, initJob))
		if e["SPIDERPOOL_INIT_MULTUS_INSTALL"] != "false" || e["SPIDERPOOL_INIT_COORDINATOR_ENABLED"] != "false" {
			t.Errorf("init env %v", e)
		}
		// Nor may the controller create the default SpiderCoordinator behind spiderpool-init's back.
		if f := flags(t, container(t, m.deployment(t, controller).Spec.Template.Spec, controller)); f["ensure-coordinator"] != "false" {
			t.Errorf("coordinator.enabled=false: controller --ensure-coordinator=%q, want false", f["ensure-coordinator"])
		}
		if f := flags(t, container(t, render(t).deployment(t, controller).Spec.Template.Spec, controller)); f["ensure-coordinator"] != "true" {
			t.Errorf("default: controller --ensure-coordinator=%q, want true", f["ensure-coordinator"])
		}
	})
	t.Run("pod-network-controller", func(t *testing.T) {
		d := renderLine(t, otherLines[1]).deployment(t, controller)
		s := d.Spec.Template.Spec
		if s.HostNetwork || s.DNSPolicy == corev1.DNSClusterFirstWithHostNet || *d.Spec.Replicas != 3 || s.Affinity == nil || s.Affinity.PodAntiAffinity == nil {
			t.Errorf("hostNetwork %v, dnsPolicy %q, replicas %d, affinity %+v", s.HostNetwork, s.DNSPolicy, *d.Spec.Replicas, s.Affinity)
		}
	})
	t.Run("ipv6-only-metrics", func(t *testing.T) {
		m := renderLine(t, otherLines[2])
		a := container(t, m.daemonSet(t, agent).Spec.Template.Spec, agent)
		c := container(t, m.deployment(t, controller).Spec.Template.Spec, controller)
		if f := flags(t, a); f["metrics-addr"] != ":5711" || f["enable-ipv4"] != "false" || f["log-level"] != "debug" {
			t.Errorf("agent flags %v", f)
		}
		if f := flags(t, c); f["metrics-addr"] != ":5721" || f["enable-ipv4"] != "false" {
			t.Errorf("controller flags %v", f)
		}
		if !hasPort(a, "metrics", 5711) || !hasPort(c, "metrics", 5721) {
			t.Errorf("metrics ports: agent %v, controller %v", a.Ports, c.Ports)
		}
	})
	t.Run("paths", func(t *testing.T) {
		m := renderLine(t, otherLines[3])
		spec := m.daemonSet(t, agent).Spec.Template.Spec
		a := container(t, spec, agent)
		if f := flags(t, a); f["socket-path"] != "/run/spiderpool/agent.sock" {
			t.Errorf("--socket-path=%s", f["socket-path"])
		}
		hostPaths := map[string]string{}
		for _, v := range spec.Volumes {
			if v.HostPath != nil {
				hostPaths[v.Name] = v.HostPath.Path
			}
		}
		if hostPaths["ipam-socket-dir"] != "/run/spiderpool" || hostPaths["cni-bin"] != "/usr/libexec/cni" {
			t.Errorf("agent host paths %v", hostPaths)
		}
		for _, vm := range a.VolumeMounts {
			if vm.Name == "ipam-socket-dir" && vm.MountPath != "/run/spiderpool" {
				t.Errorf("socket directory mounted at %s: the plugin on the host dials /run/spiderpool/agent.sock", vm.MountPath)
			}
		}
		mc := multusConfig(t, m)
		if mc["kubeconfig-path"] != "/etc/kubernetes/cni/net.d/multus.d/multus.kubeconfig" || mc["bin-dir"] != "/usr/libexec/cni" ||
			mc["conf-dir"] != "/etc/kubernetes/cni/net.d" || mc["cluster-network"] != "macvlan-ens192" || mc["namespace"] != Namespace {
			t.Errorf("multus-config arguments %v", mc)
		}
	})
}

func renderLine(t *testing.T, g GuideLine) *manifests {
	t.Helper()
	return render(t, g.Args...)
}

func hasPort(c corev1.Container, name string, port int32) bool {
	for _, p := range c.Ports {
		if p.Name == name && p.ContainerPort == port {
			return true
		}
	}
	return false
}

// TestChartGCZombieSettings: ipam.gc.statelessPod.* reach the controller.
func TestChartGCZombieSettings(t *testing.T) {
	for _, tc := range []struct{ ready, notReady string }{{"true", "true"}, {"true", "false"}, {"false", "true"}} {
		m := render(t, "--set", "ipam.gc.statelessPod.zombieOnReadyNode="+tc.ready, "--set", "ipam.gc.statelessPod.zombieOnNotReadyNode="+tc.notReady)
		ctl := flags(t, container(t, m.deployment(t, controller).Spec.Template.Spec, controller))
		if ctl["gc-zombie-on-ready-node"] != tc.ready || ctl["gc-zombie-on-not-ready-node"] != tc.notReady {
			t.Errorf("zombieOnReadyNode=%s zombieOnNotReadyNode=%s: flags %q %q", tc.ready, tc.notReady,
				ctl["gc-zombie-on-ready-node"], ctl["gc-zombie-on-not-ready-node"])
		}
	}
}
