package main

// reference lists the generated pages with what each holds, for the index.
var reference = []struct{ File, Title, Source string }{
	{"api.md", "API: every kind, field, default and validation", "the CRDs generated from `api/v2beta1` and, marked internal, `api/ipblock/v1alpha1`"},
	{"annotations.md", "Annotations, labels and finalizer", "`api/v2beta1/constants.go`"},
	{"cni.md", "CNI configuration keys of the spiderpool, coordinator and ifacer plugins", "the config structs in `internal/cni/*`"},
	{"helm-values.md", "Helm values with defaults, types and validation", "`charts/spiderpool/values.yaml` and `values.schema.json`"},
	{"metrics.md", "Prometheus metrics of the agent and the controller", "`agent.DescribeMetrics`, `controller.DescribeMetrics`"},
	{"flags.md", "Command-line flags of every binary and subcommand", "the binaries' help output"},
}

func renderIndex() []byte {
	var p page
	p.WriteString(generatedNote)
	p.line("# Reference")
	p.line("")
	p.line("The reference of Spiderpool-Go's public surface. Every page here, this one included, is generated from the")
	p.line("code it describes by `make docs` (hack/docgen), and `make verify` fails when a committed page differs from what")
	p.line("the code generates, so the pages cannot drift from the code. Do not edit them by hand: change the source and")
	p.line("run `make docs`.")
	p.line("")
	rows := make([][]string, len(reference))
	for i, r := range reference {
		rows[i] = []string{"[" + r.File + "](" + r.File + ")", r.Title, r.Source}
	}
	p.table([]string{"Page", "Holds", "Generated from"}, rows)
	return p.Bytes()
}
