package agent

import (
	"testing"

	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// The target pod of a KubeVirt live migration gets the VM's address with IP conflict detection
// off, since the source pod still answers for it; the first pod of the VM, and any pod without the
// migration annotation, keep the detection the agent is configured with.
func TestKubeVirtMigrationTargetSkipsConflictDetection(t *testing.T) {
	cfg := testConfig()
	cfg.EnableIPConflictDetection = true
	vmi := build.ControlledBy("kubevirt.io/v1", "VirtualMachineInstance", "vm1", "vmi-uid")
	src := newPod("virt-launcher-vm1-a", "uid-1", vmi)
	dst := newPod("virt-launcher-vm1-b", "uid-2", vmi, build.Annotation(migrationJobAnnotation, "migration-1"))
	pool := build.Pool("p", "10.6.0.0/16", build.Default(), build.IPs("10.6.0.10-10.6.0.20"))
	e := newEnv(t, cfg, []*v2beta1.SpiderIPPool{pool}, baseObjects(src, dst))

	first, apiErr := e.add(addArgs(src.Name, "uid-1", "eth0"))
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	if len(first.IPs) != 1 || !first.IPs[0].EnableIPConflictDetection {
		t.Fatalf("first pod of the VM: %+v, want one address with conflict detection on", first.IPs)
	}
	target, apiErr := e.add(addArgs(dst.Name, "uid-2", "eth0"))
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	if len(target.IPs) != 1 || target.IPs[0].Address != first.IPs[0].Address || target.IPs[0].EnableIPConflictDetection {
		t.Fatalf("migration target: %+v, want the VM's address %s with conflict detection off", target.IPs, first.IPs[0].Address)
	}
	if ep := e.endpoint("default", "vm1"); ep == nil || ep.Status.Current.UID != "uid-2" {
		t.Fatalf("endpoint vm1 after the migration: %+v, want the target's UID", ep)
	}
}
