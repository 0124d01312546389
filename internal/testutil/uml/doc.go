// Package uml boots user-mode-linux guests for tests that need kernel features the host lacks
// (ipvlan, 802.1q VLANs, bonding, dummy links).
//
// A guest is Debian's linux.uml running as a process group on the host, inside a network
// namespace the test owns, so that its NICs (tap devices linux.uml creates) never appear in the
// host's root namespace. The guest's root file system is the host's / through hostfs, mounted
// read-only: the guest runs the host's binaries (ip, modprobe, the test binary itself) but cannot
// write the host's disk. Its init mounts proc, sysfs and tmpfs on /run and /tmp, loads the
// requested modules with "modprobe -d" over a tmpfs tree whose lib/modules links to
// /usr/lib/uml/modules (the package ships its modules.dep, so neither depmod nor a copy is
// needed), renames and configures the NICs, and then serves commands.
//
// Commands travel over the guest's console (linux.uml's stdin and stdout): the host writes the
// command's shell script into a per-guest exchange directory (the only host directory the guest
// may write, mounted through hostfs), sends "RUN <id>" on the console, and the guest answers
// with a marker line once the command's stdout, stderr and exit status are in that directory.
//
// Start boots a guest for any program (the sandbox); Boot wraps it for tests and registers a
// cleanup that kills the whole process group (linux.uml and every helper process it forked) and
// checks that none survives; the taps go with the processes.
// RunTestInGuest re-runs the calling test inside a guest, which is how the privileged netlink
// tests of ifacer and friends exercise real vlan, bond and ipvlan devices.
//
// This package is for tests, benchmarks and the sandbox only; the components never import it.
package uml
