package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
)

// HolderLabel is the key of the label marking a block that holds records of pods on node. Node
// names may be longer than a label name allows, so the key carries a hash of the name.
func HolderLabel(node string) string {
	sum := sha256.Sum256([]byte(node))
	return HolderLabelPrefix + hex.EncodeToString(sum[:12])
}
