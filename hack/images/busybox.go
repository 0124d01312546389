package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// busyboxBinary is where Debian's busybox-static package installs the binary.
const busyboxBinary = "/bin/busybox"

// busyboxContent is Debian's static busybox with a hard link in /bin for every applet the binary
// lists (sh, sleep, ping, wget, ip, nslookup, ...), as upstream's image lays them out, plus root's
// account and a writable /tmp.
func busyboxContent(Options) (Content, error) {
	data, err := os.ReadFile(busyboxBinary)
	if errors.Is(err, os.ErrNotExist) {
		return Content{}, &MissingError{Paths: []string{busyboxBinary}, Hint: "install the Debian package busybox-static"}
	}
	if err != nil {
		return Content{}, err
	}
	if err := checkStatic(data); err != nil {
		return Content{}, fmt.Errorf("%s: %w (install busybox-static, not busybox)", busyboxBinary, err)
	}
	list, err := exec.Command(busyboxBinary, "--list").Output()
	if err != nil {
		return Content{}, fmt.Errorf("%s --list: %w", busyboxBinary, err)
	}
	version, err := debianVersion("busybox-static")
	if err != nil {
		return Content{}, err
	}
	files := []tarFile{
		executable("/bin/busybox", data),
		regular("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")),
		regular("/etc/group", []byte("root:x:0:\nnobody:x:65534:\n")),
		directory("/root", 0o700),
		directory("/var", 0o755),
		directory("/usr/bin", 0o755),
		directory("/usr/sbin", 0o755),
	}
	seen := map[string]bool{"busybox": true}
	for _, applet := range strings.Fields(string(list)) {
		if seen[applet] || strings.Contains(applet, "/") {
			continue
		}
		seen[applet] = true
		files = append(files, hardLink("/bin/"+applet, "/bin/busybox"))
	}
	return Content{
		Files:   files,
		Version: version,
		Summary: fmt.Sprintf("busybox %s (Debian busybox-static) with %d applet links", version, len(seen)-1),
	}, nil
}
