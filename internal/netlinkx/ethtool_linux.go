package netlinkx

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// DriverInfo returns the driver of link name in the current namespace and its bus address, as
// `ethtool -i` prints them: a PCI address such as "0000:3b:02.1" for a NIC function, "" for a
// virtual device (veth, macvlan, ...). Unlike sysfs, which shows the links of the namespace that
// mounted it, the ioctl answers in the namespace of the calling thread, so it finds an SR-IOV VF
// that a CNI plugin moved into a pod.
func DriverInfo(name string) (driver, bus string, err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", "", fmt.Errorf("open a socket for ethtool: %w", err)
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	if err != nil {
		return "", "", fmt.Errorf("ethtool driver info of %s: %w", name, err)
	}
	return unix.ByteSliceToString(info.Driver[:]), unix.ByteSliceToString(info.Bus_info[:]), nil
}
