package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// cniCall is one plugin invocation, the way a container runtime makes it: a fresh process with the
// CNI_* environment and the network configuration on stdin.
type cniCall struct {
	Binary  string
	Command string // ADD, DEL
	// ContainerID, IfName and Netns fill the CNI_* variables; Args is CNI_ARGS.
	ContainerID, IfName, Netns, Args string
	Config                           []byte
}

// run executes the call and returns stdout and how long the process took.
func (c cniCall) run(ctx context.Context) ([]byte, time.Duration, error) {
	cmd := exec.CommandContext(ctx, c.Binary)
	cmd.Env = append(os.Environ(),
		"CNI_COMMAND="+c.Command,
		"CNI_CONTAINERID="+c.ContainerID,
		"CNI_NETNS="+c.Netns,
		"CNI_IFNAME="+c.IfName,
		"CNI_ARGS="+c.Args,
		"CNI_PATH="+filepath.Dir(c.Binary),
	)
	cmd.Stdin = bytes.NewReader(c.Config)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		// A CNI error is a JSON object on stdout; show it, it says what went wrong.
		msg := strings.TrimSpace(stdout.String() + " " + stderr.String())
		return nil, d, fmt.Errorf("%s %s %s: %w: %s", filepath.Base(c.Binary), c.Command, c.ContainerID, err, msg)
	}
	return stdout.Bytes(), d, nil
}

func podArgs(ns, name, uid string) string {
	return fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s", ns, name, uid, uid)
}
