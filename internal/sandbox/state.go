package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spiderpool-go/spiderpool/internal/netsim"
)

// State is what a running sandbox leaves in Dir/state.json for status and down.
type State struct {
	PID        int       `json:"pid"`
	Prefix     string    `json:"prefix"`
	Dir        string    `json:"dir"`
	Scenario   string    `json:"scenario"`
	Kubeconfig string    `json:"kubeconfig"`
	Phase      string    `json:"phase"`  // starting, ready, failed
	Verify     string    `json:"verify"` // "", passed, failed
	Error      string    `json:"error,omitempty"`
	Started    time.Time `json:"started"`
}

// Phases of State.
const (
	PhaseStarting = "starting"
	PhaseReady    = "ready"
	PhaseFailed   = "failed"
)

// StatePath is the state file of a sandbox directory.
func StatePath(dir string) string { return filepath.Join(dir, "state.json") }

// WriteState writes st atomically.
func WriteState(st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(st.Dir, 0o755); err != nil {
		return err
	}
	tmp := StatePath(st.Dir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, StatePath(st.Dir))
}

// ReadState reads a sandbox directory's state; a missing file is os.ErrNotExist.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(StatePath(dir))
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", StatePath(dir), err)
	}
	return &st, nil
}

// Alive reports whether the process pid runs.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Down stops the sandbox of dir and removes everything it made, also after a crash: it signals
// the sandbox process and waits for its own teardown, then removes the lab's namespaces (by
// prefix), kills any process still running from the directory (etcd and kube-apiserver keep
// their data there), and deletes the directory. It reports each step to w.
func Down(dir, prefix string, w io.Writer) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	var errs []error
	st, err := ReadState(abs)
	switch {
	case err == nil:
		if prefix == "" {
			prefix = st.Prefix
		}
		if Alive(st.PID) {
			fmt.Fprintf(w, "stopping sandbox process %d (it tears down its pods, agents and control plane)\n", st.PID)
			_ = syscall.Kill(st.PID, syscall.SIGTERM)
			deadline := time.Now().Add(2 * time.Minute)
			for Alive(st.PID) && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
			}
			if Alive(st.PID) {
				fmt.Fprintf(w, "process %d did not stop in time: killing it\n", st.PID)
				_ = syscall.Kill(st.PID, syscall.SIGKILL)
			}
		}
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(w, "no state in %s: cleaning up leftovers only\n", abs)
	default:
		errs = append(errs, err)
	}
	if prefix == "" {
		prefix = "sbx"
	}
	if names, _ := netsim.Namespaces(prefix); len(names) > 0 {
		fmt.Fprintf(w, "removing %d network namespaces: %s\n", len(names), strings.Join(names, " "))
		errs = append(errs, netsim.Cleanup(prefix))
	}
	for _, pid := range ProcessesUsing(abs) {
		fmt.Fprintf(w, "killing leftover process %d (%s)\n", pid, cmdline(pid))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if _, err := os.Stat(abs); err == nil {
		fmt.Fprintf(w, "removing %s\n", abs)
		errs = append(errs, os.RemoveAll(abs))
	}
	return errors.Join(errs...)
}

// ProcessesUsing lists processes (other than this one) whose command line mentions dir.
func ProcessesUsing(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if strings.Contains(cmdline(pid), dir) {
			out = append(out, pid)
		}
	}
	return out
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}
