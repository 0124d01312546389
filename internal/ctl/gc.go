package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// DefaultControllerAddress is spiderpool-controller's HTTP port on the local host (Helm
// spiderpoolController.httpPort; the controller runs on the host network).
const DefaultControllerAddress = "127.0.0.1:5720"

func newGCCommand(g *globals) *cobra.Command {
	var address string
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Ask spiderpool-controller for a full IP garbage-collection scan now (POST /v1/ipam/gc_ips)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url := address
			if !strings.Contains(url, "://") {
				url = "http://" + url
			}
			url = strings.TrimSuffix(url, "/") + "/v1/ipam/gc_ips"
			ctx, cancel := g.withTimeout(cmd.Context())
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
			if err != nil {
				return fmt.Errorf("controller address %q: %w", address, err)
			}
			hc := g.opts.HTTPClient
			if hc == nil {
				hc = &http.Client{Timeout: 30 * time.Second}
			}
			resp, err := hc.Do(req)
			if err != nil {
				return fmt.Errorf("POST %s: %w", url, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return fmt.Errorf("POST %s: read answer: %w", url, err)
			}
			var ans struct {
				Message string `json:"message"`
				Error   string `json:"error"`
			}
			_ = json.Unmarshal(body, &ans) // a body that is not ours is printed as it is
			if resp.StatusCode/100 != 2 {
				msg := ans.Error
				if msg == "" {
					msg = string(bytes.TrimSpace(body))
				}
				return fmt.Errorf("POST %s: %s: %s", url, resp.Status, msg)
			}
			msg := ans.Message
			if msg == "" {
				msg = string(bytes.TrimSpace(body))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (%s)\n", msg, address)
			return nil
		},
	}
	cmd.Flags().StringVar(&address, "address", DefaultControllerAddress, "spiderpool-controller HTTP address, host:port or a URL")
	return cmd
}
