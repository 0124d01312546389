package initjob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
)

// Outcomes of an object in Result.
const (
	Created   = "created"
	Updated   = "updated"
	Unchanged = "unchanged"
	// Differs means the object exists, differs from the values, and was left alone: a pool whose
	// addresses may be allocated, or a SpiderMultusConfig that spiderpool-init did not create.
	Differs = "differs"
)

// Action is what happened to one object.
type Action struct {
	Kind      string
	Namespace string
	Name      string
	Outcome   string
	// Detail lists the differences when Outcome is Updated or Differs.
	Detail string
}

// Result is what a run did.
type Result struct {
	Actions []Action
	// ClusterNetwork is the NetworkAttachmentDefinition (made from the SpiderMultusConfig of that
	// name) that gives pods their eth0; zero when Multus is not installed. Multus's configuration
	// names it in two keys: clusterNetwork is its name, multusNamespace its namespace.
	ClusterNetwork MultusName
}

// How the waits pace themselves.
const (
	progressEvery = 10 * time.Second
	maxBackoff    = 5 * time.Second
	requestLimit  = 30 * time.Second
)

type runner struct {
	cfg    Config
	plan   *Plan
	log    *slog.Logger
	client client.Client
	res    Result
}

// Run installs what cfg describes and returns what it did. It waits for the API server and the
// CRDs, retries what fails for transient reasons (conflicts, an API server or webhook that is not
// ready yet, throttling) until cfg.Timeout, and gives up at once on errors a retry cannot fix
// (invalid values, objects refused by validation, missing permissions).
func Run(ctx context.Context, cfg Config, restConfig *rest.Config, log *slog.Logger) (*Result, error) {
	plan, err := cfg.Plan()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	rc := rest.CopyConfig(restConfig)
	if rc.Timeout == 0 {
		rc.Timeout = requestLimit // a request to an API server that hangs must not eat the whole run
	}
	r := &runner{cfg: cfg, plan: plan, log: log}
	if err := r.waitForAPI(ctx, rc); err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := v2beta1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("build scheme: %w", err)
	}
	r.client, err = client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	if err := r.waitForStorage(ctx); err != nil {
		return nil, err
	}
	if plan.Coordinator != nil {
		if err := r.retry(ctx, "SpiderCoordinator "+plan.Coordinator.Name, r.ensureCoordinator); err != nil {
			return &r.res, err
		}
	}
	// Subnets first: a pool inside a SpiderSubnet must hold only addresses of that subnet.
	for _, s := range plan.Subnets {
		if err := r.retry(ctx, "SpiderSubnet "+s.Name, func(ctx context.Context) error { return r.ensureSubnet(ctx, s) }); err != nil {
			return &r.res, err
		}
	}
	for _, p := range plan.Pools {
		if err := r.retry(ctx, "SpiderIPPool "+p.Name, func(ctx context.Context) error { return r.ensurePool(ctx, p) }); err != nil {
			return &r.res, err
		}
	}
	if cfg.Multus.Install {
		smc, err := r.clusterNetworkConfig()
		if err != nil {
			return &r.res, err
		}
		what := fmt.Sprintf("SpiderMultusConfig %s/%s", smc.Namespace, smc.Name)
		if err := r.retry(ctx, what, func(ctx context.Context) error { return r.ensureMultusConfig(ctx, smc) }); err != nil {
			return &r.res, err
		}
		r.res.ClusterNetwork = MultusName{Namespace: smc.Namespace, Name: smc.Name}
	}
	return &r.res, nil
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// retriable says whether err may go away by itself. API errors are retried when the server is not
// ready or busy (5xx, 429, timeouts, which include a webhook that cannot be reached yet) or when
// another writer was faster (conflict, already exists); other 4xx answers are final, such as a
// webhook's refusal or missing RBAC permissions. Errors that reached no server (connection refused
// while the API server starts) are retried.
func retriable(err error) bool {
	var perm permanentError
	if errors.As(err, &perm) {
		return false
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		return code >= 500 || code == 429 || apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) ||
			apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err)
	}
	return true
}

// retry runs fn until it succeeds, fails for good, or ctx ends, logging progress at most every
// progressEvery. fn must be idempotent: it is re-run from the start after a conflict.
func (r *runner) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	start := time.Now()
	var lastLog time.Time
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if !retriable(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: gave up after %s (timeout %s): %w", what, time.Since(start).Round(time.Second), r.cfg.Timeout, err)
		}
		if time.Since(lastLog) >= progressEvery {
			r.log.Info("waiting", "for", what, "attempt", attempt, "elapsed", time.Since(start).Round(time.Second).String(), "lastError", err.Error())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: gave up after %s (timeout %s): %w", what, time.Since(start).Round(time.Second), r.cfg.Timeout, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// requiredResources are the plurals of spiderpool.spidernet.io/v2beta1 the plan writes.
func (r *runner) requiredResources() []string {
	var res []string
	if r.plan.Coordinator != nil {
		res = append(res, "spidercoordinators")
	}
	if len(r.plan.Subnets) > 0 {
		res = append(res, "spidersubnets")
	}
	if len(r.plan.Pools) > 0 {
		res = append(res, "spiderippools")
	}
	if r.cfg.Multus.Install {
		res = append(res, "spidermultusconfigs")
	}
	return res
}

// waitForAPI waits until the API server answers and serves every CRD the plan needs: a CRD is
// served (listed by discovery) once it is established.
func (r *runner) waitForAPI(ctx context.Context, rc *rest.Config) error {
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	err = r.retry(ctx, "API server "+rc.Host, func(ctx context.Context) error {
		return dc.RESTClient().Get().AbsPath("/version").Do(ctx).Error()
	})
	if err != nil {
		return err
	}
	gv := v2beta1.SchemeGroupVersion.String()
	want := r.requiredResources()
	return r.retry(ctx, "CRDs of "+gv, func(context.Context) error {
		list, err := dc.ServerResourcesForGroupVersion(gv)
		if err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("%s is not served yet", gv)
			}
			return err
		}
		var missing []string
		for _, name := range want {
			if !slices.ContainsFunc(list.APIResources, func(res metav1.APIResource) bool { return res.Name == name }) {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("CRDs not established yet: %s", strings.Join(missing, ", "))
		}
		return nil
	})
}

// waitForStorage lists each kind once: an established CRD answers 429 "storage is (re)initializing"
// for a moment after it appears in discovery.
func (r *runner) waitForStorage(ctx context.Context) error {
	lists := map[string]client.ObjectList{
		"spidercoordinators":  &v2beta1.SpiderCoordinatorList{},
		"spidersubnets":       &v2beta1.SpiderSubnetList{},
		"spiderippools":       &v2beta1.SpiderIPPoolList{},
		"spidermultusconfigs": &v2beta1.SpiderMultusConfigList{},
	}
	for _, name := range r.requiredResources() {
		err := r.retry(ctx, "listing "+name, func(ctx context.Context) error {
			err := r.client.List(ctx, lists[name], client.Limit(1))
			if meta.IsNoMatchError(err) {
				return fmt.Errorf("%s not known to the API client yet: %w", name, err) // retried
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) record(a Action) {
	r.res.Actions = append(r.res.Actions, a)
	attrs := []any{"kind", a.Kind, "name", a.Name, "outcome", a.Outcome}
	if a.Namespace != "" {
		attrs = append(attrs, "namespace", a.Namespace)
	}
	if a.Detail != "" {
		attrs = append(attrs, "detail", a.Detail)
	}
	if a.Outcome == Differs {
		r.log.Warn("exists and differs from the values; left unchanged", attrs...)
		return
	}
	r.log.Info(a.Outcome, attrs...)
}

// ensureCoordinator creates the SpiderCoordinator, or sets the fields that have Helm values to
// those values: the values are the source of truth for them. Fields without a Helm value and the
// status are left as they are.
func (r *runner) ensureCoordinator(ctx context.Context) error {
	const kind = "SpiderCoordinator"
	name := r.plan.Coordinator.Name
	have := &v2beta1.SpiderCoordinator{}
	err := r.client.Get(ctx, client.ObjectKey{Name: name}, have)
	if apierrors.IsNotFound(err) {
		if err := r.client.Create(ctx, r.plan.Coordinator.DeepCopy()); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		r.record(Action{Kind: kind, Name: name, Outcome: Created})
		return nil
	}
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if have.DeletionTimestamp != nil {
		return errors.New("is being deleted; waiting until it is gone to create it again") // retried
	}
	want := r.cfg.coordinator(have)
	if equality.Semantic.DeepEqual(want.Spec, have.Spec) {
		r.record(Action{Kind: kind, Name: name, Outcome: Unchanged})
		return nil
	}
	detail := specDiff(have.Spec, want.Spec)
	if err := r.client.Update(ctx, want); err != nil {
		return fmt.Errorf("update: %w", err) // a conflict re-runs the whole function
	}
	r.record(Action{Kind: kind, Name: name, Outcome: Updated, Detail: detail})
	return nil
}

// ensureSubnet creates the default SpiderSubnet when missing. An existing one is not changed: its
// addresses may be handed to pools.
func (r *runner) ensureSubnet(ctx context.Context, want *v2beta1.SpiderSubnet) error {
	const kind = "SpiderSubnet"
	have := &v2beta1.SpiderSubnet{}
	err := r.client.Get(ctx, client.ObjectKey{Name: want.Name}, have)
	if apierrors.IsNotFound(err) {
		if err := r.client.Create(ctx, want.DeepCopy()); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		r.record(Action{Kind: kind, Name: want.Name, Outcome: Created})
		return nil
	}
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	norm := have.DeepCopy()
	v2beta1.DefaultSpiderSubnet(norm) // compare canonical forms, not spellings
	r.recordAddressDrift(kind, want.Name, addrFields{norm.Spec.Subnet, norm.Spec.IPs, norm.Spec.Gateway, nil},
		addrFields{want.Spec.Subnet, want.Spec.IPs, want.Spec.Gateway, nil})
	return nil
}

// ensurePool creates the default SpiderIPPool when missing. An existing pool is never rewritten:
// shrinking or moving its addresses could take them from running pods. Differences are reported.
func (r *runner) ensurePool(ctx context.Context, want *v2beta1.SpiderIPPool) error {
	const kind = "SpiderIPPool"
	have := &v2beta1.SpiderIPPool{}
	err := r.client.Get(ctx, client.ObjectKey{Name: want.Name}, have)
	if apierrors.IsNotFound(err) {
		if err := r.client.Create(ctx, want.DeepCopy()); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		r.record(Action{Kind: kind, Name: want.Name, Outcome: Created})
		return nil
	}
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	norm := have.DeepCopy()
	v2beta1.DefaultSpiderIPPool(norm)
	r.recordAddressDrift(kind, want.Name, addrFields{norm.Spec.Subnet, norm.Spec.IPs, norm.Spec.Gateway, norm.Spec.Default},
		addrFields{want.Spec.Subnet, want.Spec.IPs, want.Spec.Gateway, want.Spec.Default})
	return nil
}

type addrFields struct {
	subnet  string
	ips     []string
	gateway *string
	def     *bool
}

func (r *runner) recordAddressDrift(kind, name string, have, want addrFields) {
	var diffs []string
	if have.subnet != want.subnet {
		diffs = append(diffs, fmt.Sprintf("spec.subnet is %q, values say %q", have.subnet, want.subnet))
	}
	if !slices.Equal(have.ips, want.ips) {
		diffs = append(diffs, fmt.Sprintf("spec.ips are %q, values say %q", have.ips, want.ips))
	}
	if deref(have.gateway) != deref(want.gateway) {
		diffs = append(diffs, fmt.Sprintf("spec.gateway is %q, values say %q", deref(have.gateway), deref(want.gateway)))
	}
	if want.def != nil && deref(have.def) != *want.def {
		diffs = append(diffs, fmt.Sprintf("spec.default is %t, values say %t", deref(have.def), *want.def))
	}
	if len(diffs) == 0 {
		r.record(Action{Kind: kind, Name: name, Outcome: Unchanged})
		return
	}
	r.record(Action{Kind: kind, Name: name, Outcome: Differs, Detail: strings.Join(diffs, "; ")})
}

// clusterNetworkConfig decides the SpiderMultusConfig of Multus's cluster network (docs/design/behaviour.md#spiderpool-init):
// defaultCniCRName when set, else the first CNI configuration of the node, else "default".
func (r *runner) clusterNetworkConfig() (*v2beta1.SpiderMultusConfig, error) {
	var smc *v2beta1.SpiderMultusConfig
	switch {
	case r.plan.MultusName != MultusName{}:
		smc = multusConfig(r.plan.MultusName, "")
	default:
		conf, err := FindClusterCNIConfig(r.cfg.CNIConfDir)
		if err != nil {
			return nil, err
		}
		if conf != nil {
			r.log.Info("cluster network found", "file", conf.File, "network", conf.Name)
			smc = multusConfig(MultusName{Namespace: r.cfg.Namespace, Name: conf.Name}, conf.Config)
		} else {
			r.log.Info("no CNI configuration found; the cluster network is named default", "dir", r.cfg.CNIConfDir)
			smc = multusConfig(MultusName{Namespace: r.cfg.Namespace, Name: "default"}, "")
		}
	}
	if errs := v2beta1.ValidateSpiderMultusConfig(smc); len(errs) > 0 {
		return nil, fmt.Errorf("SpiderMultusConfig %s/%s for the cluster network: %w", smc.Namespace, smc.Name, errs.ToAggregate())
	}
	return smc, nil
}

// ensureMultusConfig creates the cluster network's SpiderMultusConfig. One that spiderpool-init
// created earlier follows the CNI configuration it wraps; one created by anybody else is the
// user's and only reported when it differs.
func (r *runner) ensureMultusConfig(ctx context.Context, want *v2beta1.SpiderMultusConfig) error {
	const kind = "SpiderMultusConfig"
	have := &v2beta1.SpiderMultusConfig{}
	err := r.client.Get(ctx, client.ObjectKeyFromObject(want), have)
	if apierrors.IsNotFound(err) {
		if err := r.client.Create(ctx, want.DeepCopy()); err != nil {
			if apierrors.IsNotFound(err) {
				return permanentError{fmt.Errorf("create: namespace %q does not exist: %w", want.Namespace, err)}
			}
			return fmt.Errorf("create: %w", err)
		}
		r.record(Action{Kind: kind, Namespace: want.Namespace, Name: want.Name, Outcome: Created})
		return nil
	}
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	a := Action{Kind: kind, Namespace: want.Namespace, Name: want.Name, Outcome: Unchanged}
	haveType := deref(have.Spec.CniType)
	if haveType == "" {
		haveType = v2beta1.CniTypeCustom
	}
	if haveType == v2beta1.CniTypeCustom && deref(have.Spec.CustomCNIConfig) == deref(want.Spec.CustomCNIConfig) {
		r.record(a)
		return nil
	}
	a.Detail = fmt.Sprintf("cniType %s with customCNI %q, values say cniType custom with customCNI %q",
		haveType, deref(have.Spec.CustomCNIConfig), deref(want.Spec.CustomCNIConfig))
	if have.Labels[LabelCreatedBy] != createdByValue || haveType != v2beta1.CniTypeCustom {
		a.Outcome = Differs
		r.record(a)
		return nil
	}
	upd := have.DeepCopy()
	upd.Spec.CustomCNIConfig = want.Spec.CustomCNIConfig
	if err := r.client.Update(ctx, upd); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	a.Outcome = Updated
	r.record(a)
	return nil
}

// specDiff names the fields of a coordinator spec that change, with old and new JSON values.
func specDiff(have, want v2beta1.CoordinatorSpec) string {
	var h, w map[string]json.RawMessage
	hb, _ := json.Marshal(have)
	wb, _ := json.Marshal(want)
	_ = json.Unmarshal(hb, &h)
	_ = json.Unmarshal(wb, &w)
	keys := make([]string, 0, len(h)+len(w))
	for k := range h {
		keys = append(keys, k)
	}
	for k := range w {
		if _, ok := h[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		if string(h[k]) != string(w[k]) {
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, orNone(h[k]), orNone(w[k])))
		}
	}
	return strings.Join(out, "; ")
}

func orNone(b json.RawMessage) string {
	if b == nil {
		return "(unset)"
	}
	return string(b)
}
