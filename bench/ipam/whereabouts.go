package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/spiderpool-go/spiderpool/internal/testutil"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// whereaboutsRun drives the Whereabouts v0.9.2 CNI binary (kubernetes backend, same apiserver) for
// pods ADDs with conc in flight, then DELs them all. It returns the ADD rate and the addresses.
func whereaboutsRun(ctx context.Context, binary, kubeconfig, logDir string, pods, conc int, subnet netip.Prefix) (float64, []netip.Addr, error) {
	first := subnet.Addr().Next()
	last := first
	for range pods - 1 {
		last = last.Next()
	}
	// Whereabouts insists on a "flat file" next to the inline configuration; it holds the backend.
	flat := filepath.Join(logDir, "whereabouts.conf")
	flatConf, _ := json.Marshal(map[string]any{
		"datastore":  "kubernetes",
		"kubernetes": map[string]any{"kubeconfig": kubeconfig},
		"log_file":   filepath.Join(logDir, "whereabouts.log"),
		"log_level":  "error",
	})
	if err := os.WriteFile(flat, flatConf, 0o600); err != nil {
		return 0, nil, fmt.Errorf("write whereabouts flat config: %w", err)
	}
	conf, err := json.Marshal(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "bench-whereabouts",
		"type":       "whereabouts",
		"ipam": map[string]any{
			"type":               "whereabouts",
			"range":              subnet.String(),
			"range_start":        first.String(),
			"range_end":          last.String(),
			"configuration_path": flat,
		},
	})
	if err != nil {
		return 0, nil, err
	}
	call := func(cmd string, i int) ([]byte, time.Duration, error) {
		name := fmt.Sprintf("wb-%05d", i)
		return cniCall{
			Binary: binary, Command: cmd, ContainerID: "ctr-" + name, IfName: "eth0",
			Netns: "/var/run/netns/bench", Args: podArgs("default", name, "uid-"+name), Config: conf,
		}.run(ctx)
	}

	var (
		mu    sync.Mutex
		addrs []netip.Addr
		errs  []error
	)
	t0 := time.Now()
	testutil.Parallel(pods, conc, func(i int) {
		out, _, err := call("ADD", i)
		var res struct {
			IPs []struct {
				Address string `json:"address"`
			} `json:"ips"`
		}
		if err == nil {
			err = json.Unmarshal(out, &res)
		}
		var addr netip.Addr
		if err == nil && len(res.IPs) == 1 {
			var p netip.Prefix
			if p, err = netip.ParsePrefix(res.IPs[0].Address); err == nil {
				addr = p.Addr()
			}
		} else if err == nil {
			err = fmt.Errorf("whereabouts ADD %d returned %d IPs", i, len(res.IPs))
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		addrs = append(addrs, addr)
	})
	elapsed := time.Since(t0)
	if len(errs) > 0 {
		return 0, nil, fmt.Errorf("%d of %d whereabouts ADDs failed, first: %w", len(errs), pods, errs[0])
	}
	testutil.Parallel(pods, conc, func(i int) {
		if _, _, err := call("DEL", i); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	if len(errs) > 0 {
		return 0, nil, fmt.Errorf("%d whereabouts DELs failed, first: %w", len(errs), errs[0])
	}
	return rate(pods, elapsed), addrs, nil
}
