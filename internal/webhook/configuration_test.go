package webhook

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

func TestConfigurationsMatchSpec(t *testing.T) {
	// docs/design/behaviour.md#webhook-registration-and-certificates, verbatim.
	want := map[string][2]string{
		"spiderippool.spiderpool.spidernet.io":       {"/mutate-spiderpool-spidernet-io-v2beta1-spiderippool", "/validate-spiderpool-spidernet-io-v2beta1-spiderippool"},
		"spidersubnet.spiderpool.spidernet.io":       {"/mutate-spiderpool-spidernet-io-v2beta1-spidersubnet", "/validate-spiderpool-spidernet-io-v2beta1-spidersubnet"},
		"spiderreservedip.spiderpool.spidernet.io":   {"/mutate-spiderpool-spidernet-io-v2beta1-spiderreservedip", "/validate-spiderpool-spidernet-io-v2beta1-spiderreservedip"},
		"spidermultusconfig.spiderpool.spidernet.io": {"/mutate-spiderpool-spidernet-io-v2beta1-spidermultusconfig", "/validate-spiderpool-spidernet-io-v2beta1-spidermultusconfig"},
		"spidercoordinator.spiderpool.spidernet.io":  {"/mutate-spiderpool-spidernet-io-v2beta1-spidercoordinator", "/validate-spiderpool-spidernet-io-v2beta1-spidercoordinator"},
	}
	ca := []byte("ca")
	svc := clientConfigFor{serviceNamespace: "kube-system", serviceName: "spiderpool-controller", servicePort: 5722}
	mut := mutatingConfiguration(svc, ca)
	val := validatingConfiguration(clientConfigFor{url: urlBase("127.0.0.1", 40000)}, ca)
	if mut.Name != "spiderpool-controller" || val.Name != "spiderpool-controller" {
		t.Errorf("names %q, %q", mut.Name, val.Name)
	}
	got := map[string][2]string{}
	for _, w := range mut.Webhooks {
		s := w.ClientConfig.Service
		if s == nil || s.Namespace != "kube-system" || s.Name != "spiderpool-controller" || *s.Port != 5722 || w.ClientConfig.URL != nil {
			t.Errorf("%s: client config %+v, want the Service on 5722", w.Name, w.ClientConfig)
			continue
		}
		checkCommon(t, w.Name, w.ClientConfig.CABundle, w.FailurePolicy, w.SideEffects, w.AdmissionReviewVersions, w.Rules)
		got[w.Name] = [2]string{*s.Path}
	}
	for _, w := range val.Webhooks {
		if w.ClientConfig.URL == nil || w.ClientConfig.Service != nil {
			t.Errorf("%s: client config %+v, want a URL", w.Name, w.ClientConfig)
			continue
		}
		checkCommon(t, w.Name, w.ClientConfig.CABundle, w.FailurePolicy, w.SideEffects, w.AdmissionReviewVersions, w.Rules)
		p := got[w.Name]
		p[1] = (*w.ClientConfig.URL)[len("https://127.0.0.1:40000"):]
		got[w.Name] = p
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("webhooks (-want +got):\n%s", diff)
	}
	if u := urlBase("::1", 5722); u != "https://[::1]:5722" {
		t.Errorf("urlBase(::1) = %s", u)
	}
}

func checkCommon(t *testing.T, name string, ca []byte, fp *admissionregistrationv1.FailurePolicyType, se *admissionregistrationv1.SideEffectClass, versions []string, rules []admissionregistrationv1.RuleWithOperations) {
	t.Helper()
	if string(ca) != "ca" || *fp != admissionregistrationv1.Fail || *se != admissionregistrationv1.SideEffectClassNoneOnDryRun || !cmp.Equal(versions, []string{"v1"}) {
		t.Errorf("%s: caBundle %q, failurePolicy %s, sideEffects %s, versions %v", name, ca, *fp, *se, versions)
	}
	// Only the main resource, only CREATE and UPDATE: never the status subresource, never DELETE.
	if len(rules) != 1 || len(rules[0].Resources) != 1 || !cmp.Equal(rules[0].Operations,
		[]admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}) {
		t.Fatalf("%s: rules %+v", name, rules)
	}
	for _, r := range rules[0].Resources {
		for _, c := range r {
			if c == '/' || c == '*' {
				t.Errorf("%s: resource %q covers a subresource", name, r)
			}
		}
	}
}
