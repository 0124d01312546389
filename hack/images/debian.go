package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The third-party images the user guides run (busybox, nginx) are assembled from the Debian
// packages installed on the build machine: no registry is reachable to pull upstream's, and the
// packages are signed, versioned and updated by Debian. Their version label is the package's.

// dpkgStatus is the database of installed Debian packages.
const dpkgStatus = "/var/lib/dpkg/status"

// debianVersion returns the installed version of pkg, or "unknown" when dpkg does not know it
// (the files may have come from elsewhere).
func debianVersion(pkg string) (string, error) {
	f, err := os.Open(dpkgStatus)
	if errors.Is(err, os.ErrNotExist) {
		return "unknown", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var name, status, version string
	check := func() bool { return name == pkg && strings.HasSuffix(status, " installed") && version != "" }
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if check() {
				return version, nil
			}
			name, status, version = "", "", ""
			continue
		}
		if k, v, ok := strings.Cut(line, ": "); ok {
			switch k {
			case "Package":
				name = v
			case "Status":
				status = v
			case "Version":
				version = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%s: %w", dpkgStatus, err)
	}
	if check() {
		return version, nil
	}
	return "unknown", nil
}
