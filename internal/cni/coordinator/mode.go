package coordinator

import "fmt"

// resolveMode decides what this invocation does (docs/design/behaviour.md#coordinator-modes). firstNIC is podDefaultCniNic;
// hasVeth0 tells whether an earlier underlay invocation created veth0 in the pod.
func resolveMode(mode Mode, ifName, firstNIC string, hasVeth0 bool) (Mode, error) {
	switch mode {
	case ModeDisabled:
		return ModeDisabled, nil
	case ModeAuto:
		if ifName == firstNIC || hasVeth0 {
			return ModeUnderlay, nil
		}
		return ModeOverlay, nil
	case ModeUnderlay:
		if ifName != firstNIC && !hasVeth0 {
			return "", fmt.Errorf("mode underlay on %s: veth0 is missing from the pod; the first NIC %s must also run coordinator in underlay mode", ifName, firstNIC)
		}
		return ModeUnderlay, nil
	case ModeOverlay:
		if ifName == firstNIC {
			return "", fmt.Errorf("mode overlay on the first NIC %s: overlay mode is for secondary NICs attached after an overlay CNI's %s", ifName, firstNIC)
		}
		if hasVeth0 {
			return "", fmt.Errorf("mode overlay on %s: the pod has veth0, so its first NIC runs in underlay mode; use underlay or auto", ifName)
		}
		return ModeOverlay, nil
	default:
		return "", fmt.Errorf("unknown mode %q", mode)
	}
}

// policyTable is the pod routing table of a NIC (docs/design/behaviour.md#policy-tables). upLinks counts the pod's
// non-loopback links that are up, the current NIC included. Underlay pods have veth0 up besides
// their NICs, hence one less: both formulas give 101 for the first secondary NIC
// (eth0,veth0,net1 → 3+98; eth0,net1 → 2+99) and 102 for the next.
func policyTable(mode Mode, firstNIC bool, upLinks int) int {
	switch {
	case firstNIC:
		return firstNICTable
	case mode == ModeUnderlay:
		return upLinks + 98
	default:
		return upLinks + 99
	}
}
