package v1alpha1

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels of a SpiderIPBlock. The agent of a node watches the blocks labelled with its node (its
// own blocks) and the blocks carrying its holder label (other nodes' blocks holding records of its
// pods), and nothing else.
const (
	// LabelPool names the block's SpiderIPPool.
	LabelPool = GroupName + "/pool"
	// LabelNode names the node whose block this is (its affinity); absent for a block of nobody.
	LabelNode = GroupName + "/node"
	// HolderLabelPrefix starts the key of a holder label: HolderLabel(node) is set, with the value
	// "true", on a block that holds at least one record of a pod on node other than the block's own.
	HolderLabelPrefix = "holder." + GroupName + "/"
)

// SpiderIPBlock is one claimed block of a SpiderIPPool: an aligned range of the pool's subnet and
// the records of the addresses of that range that are in use (docs/design/ipam-blocks.md). Its
// name is a function of the pool's name and UID and the range's first address, so that two agents
// claiming the same range create the same object and the API server lets one win.
//
// The records are in spec, and the kind has no status subresource, so that a record and the
// holder label it needs change in one compare-and-swap write.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=sib,categories=spiderpool-internal
// +kubebuilder:printcolumn:name="POOL",type=string,JSONPath=`.spec.pool`
// +kubebuilder:printcolumn:name="CIDR",type=string,JSONPath=`.spec.cidr`
// +kubebuilder:printcolumn:name="NODE",type=string,JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type SpiderIPBlock struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the block's range, owner and records.
	// +required
	Spec SpiderIPBlockSpec `json:"spec"`
}

// SpiderIPBlockSpec is a block's range, its node and its records.
type SpiderIPBlockSpec struct {
	// pool is the name of the SpiderIPPool the block belongs to.
	// +required
	// +kubebuilder:validation:MinLength=1
	Pool string `json:"pool"`

	// poolUID is the UID of that pool: a pool deleted and recreated under the same name does not
	// inherit its predecessor's blocks.
	// +required
	// +kubebuilder:validation:MinLength=1
	PoolUID string `json:"poolUID"`

	// cidr is the block's range, aligned in the pool's subnet, e.g. 10.6.0.32/27.
	// +required
	// +kubebuilder:validation:MinLength=1
	CIDR string `json:"cidr"`

	// node is the node that allocates from the block without asking (its affinity). Empty for a
	// block of nobody, such as a migrated block of pods that are gone.
	// +optional
	Node string `json:"node,omitempty"`

	// records maps each address of the range that is in use to its holder, encoded as one JSON
	// string (as SpiderIPPool.status.allocatedIPs is): the API server then tracks one field in
	// managedFields instead of one per address, which halves the object.
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	Records BlockRecords `json:"records,omitempty"`

	// fences holds addresses that an update of the pool's spec is removing from its usable set,
	// written by the controller's webhook before it admits that update: an agent whose cached
	// pool is older than an entry's poolGeneration allocates none of its addresses here. Written
	// by compare-and-swap like the records, so an allocation and a fence of one address cannot
	// both succeed. The controller's GC drops entries once they are no longer needed.
	// +optional
	// +listType=atomic
	Fences []BlockFence `json:"fences,omitempty"`
}

// BlockFence is one spec update's removal of addresses from the block's range.
type BlockFence struct {
	// poolGeneration is the pool's metadata.generation once the update is stored: a pool read at
	// this generation or later no longer has the addresses in its usable set.
	// +required
	// +kubebuilder:validation:Minimum=1
	PoolGeneration int64 `json:"poolGeneration"`

	// ips are the addresses removed, in the notation of SpiderIPPool.spec.ips.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +listType=atomic
	IPs []string `json:"ips"`

	// since is when the webhook wrote the entry.
	// +required
	Since metav1.Time `json:"since"`
}

// BlockRecords maps each address in use to its holder. Its JSON form is a string holding the
// JSON object.
type BlockRecords map[string]BlockRecord

// MarshalJSON encodes the records as a JSON string of the JSON object.
func (r BlockRecords) MarshalJSON() ([]byte, error) {
	inner, err := json.Marshal(map[string]BlockRecord(r))
	if err != nil {
		return nil, err
	}
	return json.Marshal(string(inner))
}

// UnmarshalJSON decodes the string form; an object is taken as well.
func (r *BlockRecords) UnmarshalJSON(b []byte) error {
	var m map[string]BlockRecord
	if len(b) > 0 && b[0] == '"' {
		var inner string
		if err := json.Unmarshal(b, &inner); err != nil {
			return err
		}
		if inner == "" {
			*r = nil
			return nil
		}
		b = []byte(inner)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("records: %w", err)
	}
	*r = m
	return nil
}

// BlockRecord is the holder of one address: the same fields as a record of
// SpiderIPPool.status.allocatedIPs, plus the node the pod was on when it got the address.
type BlockRecord struct {
	// pod is the holder's namespace/name.
	// +required
	Pod string `json:"pod"`

	// podUid is the UID of the pod incarnation holding the address.
	// +required
	PodUID string `json:"podUid"`

	// node is the node the pod ran on when it got the address.
	// +optional
	Node string `json:"node,omitempty"`
}

// SpiderIPBlockList is a list of SpiderIPBlocks.
//
// +kubebuilder:object:root=true
type SpiderIPBlockList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SpiderIPBlock `json:"items"`
}

// Annotations on a SpiderIPPool (ours, not upstream's) about where its records live.
const (
	// AnnoIPAMFormat, set to FormatBlocks, marks a pool whose records live in SpiderIPBlocks.
	// Agents allocate from such a pool through blocks only; the controller keeps its status as a
	// mirror. A pool without it keeps its records in status.allocatedIPs, upstream's format.
	AnnoIPAMFormat = GroupName + "/ipam-format"
	// FormatBlocks is the value of AnnoIPAMFormat for a pool in block format.
	FormatBlocks = "blocks"
	// AnnoRecordsInBlocks, set to "true", says that the pool holds more records than its status
	// mirror carries: status.allocatedIPs is left out, status.allocatedIPCount stays exact.
	AnnoRecordsInBlocks = GroupName + "/records-in-blocks"
)

// InBlocks reports whether a pool's records live in SpiderIPBlocks.
func InBlocks(pool metav1.Object) bool {
	return pool.GetAnnotations()[AnnoIPAMFormat] == FormatBlocks
}
