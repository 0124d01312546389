package uml

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// xstateShim is the source of the LD_PRELOAD shim that lets linux.uml run on hosts with a large
// XSAVE area (see the file's comment). Go cannot build a preload library, so the shim is
// compiled with the host's C compiler on first use and kept in a cache directory by content hash.
//
//go:embed xstate_shim.c.txt
var xstateShim []byte

var (
	shimOnce sync.Once
	shimPath string
	shimErr  error
)

// XStateShim returns the path of the compiled shim, building it once per content. Without a C
// compiler it returns an error naming the missing piece; guests then boot only on hosts whose
// XSAVE area fits UML's buffer.
func XStateShim() (string, error) {
	shimOnce.Do(func() {
		sum := sha256.Sum256(xstateShim)
		dir := filepath.Join(os.TempDir(), "spiderpool-uml")
		if d, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(d, "spiderpool-uml")
		}
		path := filepath.Join(dir, "xstate-"+hex.EncodeToString(sum[:6])+".so")
		if _, err := os.Stat(path); err == nil {
			shimPath = path
			return
		}
		cc, err := exec.LookPath("cc")
		if err != nil {
			shimErr = fmt.Errorf("no C compiler (cc) to build the user-mode-linux xstate shim: install gcc")
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			shimErr = err
			return
		}
		src := filepath.Join(dir, "xstate.c")
		if err := os.WriteFile(src, xstateShim, 0o644); err != nil {
			shimErr = err
			return
		}
		tmp := path + ".tmp"
		if out, err := exec.Command(cc, "-O2", "-shared", "-fPIC", "-o", tmp, src, "-ldl").CombinedOutput(); err != nil {
			shimErr = fmt.Errorf("build the user-mode-linux xstate shim: %v: %s", err, out)
			return
		}
		if err := os.Rename(tmp, path); err != nil {
			shimErr = err
			return
		}
		shimPath = path
	})
	return shimPath, shimErr
}
