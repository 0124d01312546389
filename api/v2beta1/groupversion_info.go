package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group of every Spiderpool kind.
const GroupName = "spiderpool.spidernet.io"

// SchemeGroupVersion is the only served and stored version of the API.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v2beta1"}

var (
	// SchemeBuilder collects the functions that register our types into a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme registers every kind of this package into a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion,
		&SpiderIPPool{}, &SpiderIPPoolList{},
		&SpiderSubnet{}, &SpiderSubnetList{},
		&SpiderReservedIP{}, &SpiderReservedIPList{},
		&SpiderEndpoint{}, &SpiderEndpointList{},
		&SpiderMultusConfig{}, &SpiderMultusConfigList{},
		&SpiderCoordinator{}, &SpiderCoordinatorList{},
	)
	// The meta types (ListOptions, Status, ...) let typed clients encode options and decode errors.
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}

// Resource turns a plural resource name into a GroupResource of this group, for API errors.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}
