package v2beta1_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// The validation tests of each kind sit beside its rules, in <kind>_validation_test.go. They list
// the errors they want as a field.ErrorList in the order the validator reports them, so the order is
// part of the contract (and stays deterministic), and compare with checkErrs.

// fieldError is what the tests compare of a *field.Error: BadValue only repeats the input, and the
// declarative-validation bookkeeping (Origin and the like) is not ours.
type fieldError struct {
	Type   field.ErrorType
	Field  string
	Detail string
}

// checkErrs compares got with want by type, field path and detail. A wanted error without a detail
// matches any detail: the tests give one where the message matters.
func checkErrs(t *testing.T, got, want field.ErrorList) {
	t.Helper()
	project := func(l field.ErrorList, ignoreDetail func(int) bool) []fieldError {
		out := make([]fieldError, len(l))
		for i, e := range l {
			out[i] = fieldError{e.Type, e.Field, e.Detail}
			if ignoreDetail(i) {
				out[i].Detail = ""
			}
		}
		return out
	}
	w := project(want, func(int) bool { return false })
	g := project(got, func(i int) bool { return i < len(want) && want[i].Detail == "" })
	if diff := cmp.Diff(w, g, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// subdomainMsg and labelMsg are apimachinery's words for a name that is no DNS-1123 subdomain or
// label; the name details quote them after our own.
var (
	subdomainMsg = k8svalidation.IsDNS1123Subdomain("_")[0]
	labelMsg     = k8svalidation.IsDNS1123Label("_")[0]
)

// Shorthands keep the tables readable. A detail, when given, must be the whole message.
func invalid(f string, detail ...string) *field.Error {
	return &field.Error{Type: field.ErrorTypeInvalid, Field: f, Detail: strings.Join(detail, "")}
}
func required(f string, detail ...string) *field.Error {
	return &field.Error{Type: field.ErrorTypeRequired, Field: f, Detail: strings.Join(detail, "")}
}
func forbidden(f string, detail ...string) *field.Error {
	return &field.Error{Type: field.ErrorTypeForbidden, Field: f, Detail: strings.Join(detail, "")}
}
func notSupported(f string, detail ...string) *field.Error {
	return &field.Error{Type: field.ErrorTypeNotSupported, Field: f, Detail: strings.Join(detail, "")}
}
func duplicate(f string) *field.Error { return &field.Error{Type: field.ErrorTypeDuplicate, Field: f} }
func internal(f string) *field.Error  { return &field.Error{Type: field.ErrorTypeInternal, Field: f} }
func tooLong(f string, detail ...string) *field.Error {
	return &field.Error{Type: field.ErrorTypeTooLong, Field: f, Detail: strings.Join(detail, "")}
}

// The manifests of the user guides (docs/guides/public-cloud.md and docs/guides/calico-overlay.md), verbatim: each must be accepted after the
// mutating defaults, and the pools of one guide must not conflict with each other.
const (
	alibabaGuide = `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: ipvlan-eth0
  namespace: kube-system
spec:
  cniType: ipvlan
  enableCoordinator: true
  ipvlan:
    master:
    - eth0
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: ipvlan-eth1
  namespace: kube-system
spec:
  cniType: ipvlan
  enableCoordinator: true
  ipvlan:
    master:
    - eth1
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: master-172
spec:
  default: true
  ips:
  - 172.31.199.185-172.31.199.189
  subnet: 172.31.192.0/20
  gateway: 172.31.207.253
  nodeName:
  - master
  multusName:
  - kube-system/ipvlan-eth0
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: master-192
spec:
  default: true
  ips:
  - 192.168.0.156-192.168.0.160
  subnet: 192.168.0.0/24
  gateway: 192.168.0.253
  nodeName:
  - master
  multusName:
  - kube-system/ipvlan-eth1
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: worker-172
spec:
  default: true
  ips:
  - 172.31.199.190-172.31.199.194
  subnet: 172.31.192.0/20
  gateway: 172.31.207.253
  nodeName:
  - worker
  multusName:
  - kube-system/ipvlan-eth0
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: worker-192
spec:
  default: true
  ips:
  - 192.168.0.161-192.168.0.165
  subnet: 192.168.0.0/24
  gateway: 192.168.0.253
  nodeName:
  - worker
  multusName:
  - kube-system/ipvlan-eth1
`
	awsGuide = `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: ipvlan-ens5
  namespace: default
spec:
  cniType: ipvlan
  ipvlan:
    master:
    - ens5
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: ipvlan-ens6
  namespace: default
spec:
  cniType: ipvlan
  ipvlan:
    master:
    - ens6
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: master-v4-ens5
spec:
  subnet: 172.31.16.0/20
  ips:
    - 172.31.16.4-172.31.16.8
  gateway: 172.31.16.1
  default: true
  nodeName: ["master"]
  multusName: ["default/ipvlan-ens5"]
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: master-v4-ens6
spec:
  subnet: 210.22.16.0/24
  ips:
    - 210.22.16.11-210.22.16.15
  gateway: 210.22.16.1
  default: true
  nodeName: ["master"]
  multusName: ["default/ipvlan-ens6"]
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: worker1-v4-ens5
spec:
  subnet: 180.17.16.0/24
  ips:
    - 180.17.16.11-180.17.16.15
  gateway: 180.17.16.1
  default: true
  nodeName: ["worker1"]
  multusName: ["default/ipvlan-ens5"]
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: worker1-v4-ens6
spec:
  subnet: 210.22.32.0/24
  ips:
    - 210.22.32.11-210.22.32.15
  gateway: 210.22.32.1
  default: true
  nodeName: ["worker1"]
  multusName: ["default/ipvlan-ens6"]
`
	calicoGuide = `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: 10-6-v4
spec:
  disable: false
  gateway: 10.6.0.1
  ips:
  - 10.6.212.100-10.6.212.200
  subnet: 10.6.0.0/16
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: macvlan-ens192
  namespace: default
spec:
  cniType: macvlan
  macvlan:
    master:
    - ens192
    ippools:
      ipv4:
      - 10-6-v4
    vlanID: 0
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderCoordinator
metadata:
  finalizers:
  - spiderpool.spidernet.io
  name: default
spec:
  detectGateway: false
  detectIPConflict: false
  hijackCIDR:
  - 169.254.0.0/16
  podRPFilter: 0
  hostRPFilter: 0
  hostRuleTable: 500
  mode: auto
  podCIDRType: calico
  podDefaultRouteNIC: ""
  podMACPrefix: ""
  tunePodRoutes: true
status:
  overlayPodCIDR:
  - 10.244.64.0/18
  phase: Synced
  serviceCIDR:
  - 10.233.0.0/18
`
)

type guideObjects struct {
	pools        []v2beta1.SpiderIPPool
	smcs         []v2beta1.SpiderMultusConfig
	coordinators []v2beta1.SpiderCoordinator
}

// decodeGuide splits a multi-document manifest and decodes each document by kind, rejecting unknown
// fields so that a field the types lack fails the test instead of vanishing.
func decodeGuide(t *testing.T, manifest string) guideObjects {
	t.Helper()
	var out guideObjects
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode manifest: %v", err)
		}
		var meta metav1.TypeMeta
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Fatal(err)
		}
		strict := func(v any) {
			d := json.NewDecoder(strings.NewReader(string(raw)))
			d.DisallowUnknownFields()
			if err := d.Decode(v); err != nil {
				t.Fatalf("decode %s: %v", meta.Kind, err)
			}
		}
		switch meta.Kind {
		case "SpiderIPPool":
			var p v2beta1.SpiderIPPool
			strict(&p)
			out.pools = append(out.pools, p)
		case "SpiderMultusConfig":
			var m v2beta1.SpiderMultusConfig
			strict(&m)
			out.smcs = append(out.smcs, m)
		case "SpiderCoordinator":
			var c v2beta1.SpiderCoordinator
			strict(&c)
			out.coordinators = append(out.coordinators, c)
		default:
			t.Fatalf("unexpected kind %q", meta.Kind)
		}
	}
	return out
}

func TestGuideManifests(t *testing.T) {
	for _, g := range []struct {
		name                      string
		manifest                  string
		pools, smcs, coordinators int
	}{
		{"alibaba", alibabaGuide, 4, 2, 0},
		{"aws", awsGuide, 4, 2, 0},
		{"calico-overlay", calicoGuide, 1, 1, 1},
	} {
		t.Run(g.name, func(t *testing.T) {
			objs := decodeGuide(t, g.manifest)
			if len(objs.pools) != g.pools || len(objs.smcs) != g.smcs || len(objs.coordinators) != g.coordinators {
				t.Fatalf("decoded %d pools, %d SMCs, %d coordinators", len(objs.pools), len(objs.smcs), len(objs.coordinators))
			}
			for i := range objs.pools {
				p := &objs.pools[i]
				// Raw manifests are valid too, not only defaulted ones.
				checkErrs(t, v2beta1.ValidateSpiderIPPool(p, true, false), nil)
				v2beta1.DefaultSpiderIPPool(p)
				checkErrs(t, v2beta1.ValidateSpiderIPPool(p, true, false), nil)
				if p.Spec.IPVersion == nil || *p.Spec.IPVersion != 4 {
					t.Errorf("pool %s: ipVersion not derived", p.Name)
				}
			}
			// Admitted in manifest order: each pool against the ones before it.
			for i := range objs.pools {
				checkErrs(t, v2beta1.ValidateIPPoolOverlap(&objs.pools[i], objs.pools[:i]), nil)
			}
			for i := range objs.smcs {
				m := &objs.smcs[i]
				checkErrs(t, v2beta1.ValidateSpiderMultusConfig(m), nil)
				v2beta1.DefaultSpiderMultusConfig(m)
				checkErrs(t, v2beta1.ValidateSpiderMultusConfig(m), nil)
			}
			for i := range objs.coordinators {
				c := &objs.coordinators[i]
				checkErrs(t, v2beta1.ValidateSpiderCoordinator(c), nil)
				v2beta1.DefaultSpiderCoordinator(c)
				checkErrs(t, v2beta1.ValidateSpiderCoordinator(c), nil)
			}
		})
	}
}
