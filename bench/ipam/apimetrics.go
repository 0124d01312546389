package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spiderpool-go/spiderpool/internal/testenv"
)

// writeCounts are the apiserver's own counts of pool status writes, by outcome.
type writeCounts struct{ ok, conflict int64 }

// apiMetrics reads the apiserver's /metrics text.
func apiMetrics(ctx context.Context, env *testenv.Env) (string, error) {
	return testenv.APIMetrics(ctx, env.Config)
}

// requestCounts sums apiserver_request_total by "VERB resource[/subresource]".
func requestCounts(metrics string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		label := func(name string) string {
			i := strings.Index(line, name+`="`)
			if i < 0 {
				return ""
			}
			rest := line[i+len(name)+2:]
			return rest[:strings.IndexByte(rest, '"')]
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		key := label("verb") + " " + label("resource")
		if sub := label("subresource"); sub != "" {
			key += "/" + sub
		}
		out[key] += v
	}
	return out
}

// perADD formats the requests made between two requestCounts per ADD, largest first.
func perADD(before, after map[string]float64, adds int) string {
	type kv struct {
		k string
		v float64
	}
	var rows []kv
	for k, v := range after {
		if d := v - before[k]; d >= float64(adds)/20 && !strings.HasPrefix(k, "WATCH") {
			rows = append(rows, kv{k, d / float64(adds)})
		}
	}
	slices.SortFunc(rows, func(a, b kv) int { return cmp.Compare(b.v, a.v) })
	var b strings.Builder
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.2f", r.k, r.v)
	}
	return b.String()
}

// recordWrites reads apiserver_request_total from the apiserver's /metrics: the PUTs of the
// records (spiderippools/status, or spideripblocks with blocks) that succeeded (200) and that lost
// a resourceVersion race (409). Counting on the server sees every agent's writes, including the
// baseline's, without instrumenting them.
func recordWrites(ctx context.Context, env *testenv.Env, blocks bool) (writeCounts, error) {
	body, err := apiMetrics(ctx, env)
	if err != nil {
		return writeCounts{}, err
	}
	if blocks {
		return parseWriteCounts(body, "spideripblocks", ""), nil
	}
	return parseWriteCounts(body, "spiderippools", "status"), nil
}

func parseWriteCounts(metrics, resource, subresource string) writeCounts {
	var c writeCounts
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") ||
			!strings.Contains(line, `resource="`+resource+`"`) || !strings.Contains(line, `subresource="`+subresource+`"`) ||
			!strings.Contains(line, `verb="PUT"`) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, `code="200"`):
			c.ok += int64(v)
		case strings.Contains(line, `code="409"`):
			c.conflict += int64(v)
		}
	}
	return c
}
