package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// binaryKind says how a binary under cmd/ takes its settings.
type binaryKind int

const (
	// flagSets: the standard flag package; the commands are the flag.NewFlagSet calls of its source.
	flagSets binaryKind = iota
	// cobraTree: a cobra command tree, walked through its help output.
	cobraTree
	// cniPlugin: a CNI plugin, configured by the runtime (stdin and CNI_* variables), no flags.
	cniPluginKind
)

// binary is a directory of cmd/ and how it is configured.
type binary struct {
	Name string
	Kind binaryKind
}

// binaries lists every directory of cmd/ in the order flags.md shows them. The generator refuses a
// directory of cmd/ missing here, so a new binary cannot go undocumented.
var binaries = []binary{
	{"spiderpool-agent", flagSets},
	{"spiderpool-controller", flagSets},
	{"spiderpool-init", flagSets},
	{"spiderpoolctl", cobraTree},
	{"spiderpool-plugins-install", flagSets},
	{"spiderpool-sandbox", flagSets},
	{"spiderpool", cniPluginKind},
	{"coordinator", cniPluginKind},
	{"ifacer", cniPluginKind},
}

// rootPlaceholder replaces the scratch directory the binaries run in, where their output shows it
// (defaults derived from the working directory).
const rootPlaceholder = "<repository root>"

func sectionFlags(ctx context.Context, root, binDir string) (string, []byte, error) {
	b, err := renderFlags(ctx, root, binDir)
	return "flags.md", b, err
}

// BuildBinaries builds every command of cmd/ into dir/_output/bin, the layout the binaries expect
// around them, and returns that bin directory.
func BuildBinaries(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "_output", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", bin, err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin+string(filepath.Separator), "./cmd/...")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/...: %w\n%s", err, out)
	}
	return bin, nil
}

func renderFlags(ctx context.Context, root, binDir string) ([]byte, error) {
	dirs, err := os.ReadDir(filepath.Join(root, "cmd"))
	if err != nil {
		return nil, fmt.Errorf("list cmd: %w", err)
	}
	for _, d := range dirs {
		if d.IsDir() && !slices.ContainsFunc(binaries, func(b binary) bool { return b.Name == d.Name() }) {
			return nil, fmt.Errorf("cmd/%s is not listed in hack/docgen's binaries: add it with its kind", d.Name())
		}
	}
	if binDir == "" {
		scratch, err := os.MkdirTemp("", "docgen-")
		if err != nil {
			return nil, fmt.Errorf("scratch directory: %w", err)
		}
		defer os.RemoveAll(scratch)
		if binDir, err = BuildBinaries(ctx, root, scratch); err != nil {
			return nil, err
		}
	}
	if binDir, err = filepath.EvalSymlinks(binDir); err != nil {
		return nil, fmt.Errorf("bin directory: %w", err)
	}
	repo, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("repository root: %w", err)
	}
	r := runner{bin: binDir, home: filepath.Dir(filepath.Dir(binDir)), repo: repo}

	var p page
	p.WriteString(generatedNote)
	p.line("# Command-line flags")
	p.line("")
	p.line("The flags of every binary, from the binaries' own help output (`-h`, or `--help` for spiderpoolctl): `make docs`")
	p.line("builds `./cmd/...` and runs each command with an empty environment. Defaults shown are the ones that apply")
	p.line("when no environment variable named in a description is set. In the Helm chart most flags are set from the")
	p.line("values named in their description ([helm-values.md](helm-values.md)).")
	p.line("")
	for _, b := range binaries {
		p.line("- [" + b.Name + "](#" + anchor(b.Name) + ")")
	}
	p.line("")
	for _, b := range binaries {
		p.line("## " + b.Name)
		p.line("")
		var err error
		switch b.Kind {
		case flagSets:
			err = writeFlagSets(ctx, &p, r, root, b.Name)
		case cobraTree:
			err = writeCobra(ctx, &p, r, b.Name)
		case cniPluginKind:
			err = writeCNIPlugin(ctx, &p, r, b.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name, err)
		}
	}
	return p.Bytes(), nil
}

// runner runs our binaries for their help.
type runner struct {
	bin  string // directory of the binaries
	home string // the scratch root around bin, replaced by rootPlaceholder in output
	repo string // the repository, replaced too: a scratch directory inside it makes it the root
}

// help runs the binary with args and an empty environment and returns stdout and stderr together.
// Asking for help must succeed: a non-zero exit is an error.
func (r runner) help(ctx context.Context, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, name), args...)
	cmd.Dir = r.home
	cmd.Env = env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w (asking for help must exit 0)\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return strings.NewReplacer(r.home, rootPlaceholder, r.repo, rootPlaceholder).Replace(out.String()), nil
}

// flagRow is one flag. Name has its dashes: "-out", "--pool" or "-o, --output".
type flagRow struct {
	Name, Type, Default, Usage string
}

// defaultSuffix matches the " (default X)" both flag and pflag append to a usage.
var defaultSuffix = regexp.MustCompile(`^(.*) \(default (.*)\)$`)

func splitDefault(usage string) (string, string) {
	if m := defaultSuffix.FindStringSubmatch(usage); m != nil {
		return m[1], m[2]
	}
	return usage, ""
}

// parseGoFlags parses the help the standard flag package prints (PrintDefaults).
func parseGoFlags(out string) (header string, flags []flagRow, err error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "Usage of ") {
		return "", nil, errors.New("not the flag package's help")
	}
	header = strings.TrimSuffix(strings.TrimPrefix(lines[0], "Usage of "), ":")
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "  -"):
			spec, usage, oneLine := strings.Cut(strings.TrimPrefix(l, "  -"), "\t")
			name, typ, _ := strings.Cut(spec, " ")
			f := flagRow{Name: "-" + name, Type: typ}
			if oneLine {
				f.Usage = usage
			}
			if f.Type == "" {
				f.Type = "bool"
			}
			flags = append(flags, f)
		case strings.HasPrefix(l, "    \t") && len(flags) > 0:
			f := &flags[len(flags)-1]
			f.Usage = strings.TrimSpace(f.Usage + " " + strings.TrimPrefix(l, "    \t"))
		case strings.TrimSpace(l) == "":
		default:
			return "", nil, fmt.Errorf("unexpected line in flag help: %q", l)
		}
	}
	for i := range flags {
		flags[i].Usage, flags[i].Default = splitDefault(flags[i].Usage)
	}
	return header, flags, nil
}

func writeFlagTable(p *page, flags []flagRow) {
	rows := make([][]string, len(flags))
	for i, f := range flags {
		rows[i] = []string{code(f.Name), f.Type, code(f.Default), cell(f.Usage)}
	}
	p.table([]string{"Flag", "Type", "Default", "Description"}, rows)
}

// flagSetCommand is one flag.NewFlagSet call of a binary's source.
type flagSetCommand struct {
	Args []string // words after the binary name
	Doc  string   // what the command does, from the source's comments
}

// flagSetCommands finds the flag sets of cmd/<name> in source order: their names are the command
// lines ("spiderpool-agent install-cni", or "up" for a subcommand of the binary), and the doc
// comment of the function making one says what it does (the package comment for the binary).
func flagSetCommands(root, name string) ([]flagSetCommand, error) {
	src, err := readGoPackage(filepath.Join(root, "cmd", name))
	if err != nil {
		return nil, err
	}
	files, err := parseFiles(src)
	if err != nil {
		return nil, err
	}
	var pkgDoc string
	for _, f := range files {
		if t := f.Doc.Text(); t != "" {
			pkgDoc = t
		}
	}
	var out []flagSetCommand
	seen := map[string]bool{}
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "NewFlagSet" {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "flag" {
					return true
				}
				lit, ok := call.Args[0].(*ast.BasicLit)
				if !ok {
					return true
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					return true
				}
				words := strings.Fields(v)
				if len(words) > 0 && words[0] == name {
					words = words[1:]
				}
				key := strings.Join(words, " ")
				if seen[key] {
					return true
				}
				seen[key] = true
				c := flagSetCommand{Args: words}
				if len(words) == 0 {
					c.Doc = commandSummary(pkgDoc, "Command "+name+" ")
				} else {
					c.Doc = commandSummary(fd.Doc.Text(), fd.Name.Name+" is ")
				}
				out = append(out, c)
				return true
			})
		}
	}
	// The binary itself first, then its subcommands in source order.
	slices.SortStableFunc(out, func(a, b flagSetCommand) int { return min(len(a.Args), 1) - min(len(b.Args), 1) })
	return out, nil
}

// quotedCommand matches the "`binary sub`: " or "`binary sub`, " that opens a subcommand's doc.
var quotedCommand = regexp.MustCompile("^`[^`]*`[:,]?\\s*")

// commandSummary turns a Go doc comment that opens with "<prefix>" (and maybe "is ") into the first paragraph a user
// reads: "installCNI is `spiderpool-agent install-cni`: the DaemonSet's init container ..." gives
// "The DaemonSet's init container ...". For a package comment only the first sentence is kept; the
// rest speaks to the code's readers.
func commandSummary(doc, prefix string) string {
	doc = oneLine(strings.SplitN(doc, "\n\n", 2)[0])
	s, ok := strings.CutPrefix(doc, prefix)
	if !ok {
		return ""
	}
	s = strings.TrimPrefix(s, "is ")
	if strings.HasPrefix(prefix, "Command ") {
		s = firstSentence(s)
	}
	s = quotedCommand.ReplaceAllString(s, "")
	r, size := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[size:]
}

func writeFlagSets(ctx context.Context, p *page, r runner, root, name string) error {
	cmds, err := flagSetCommands(root, name)
	if err != nil {
		return err
	}
	if len(cmds) == 0 || len(cmds[0].Args) != 0 {
		// The binary has no flags of its own, only subcommands: its help is its usage text.
		out, err := r.help(ctx, nil, name, "-h")
		if err != nil {
			return err
		}
		p.line("```text")
		p.line(strings.TrimRight(out, "\n"))
		p.line("```")
		p.line("")
	}
	for _, c := range cmds {
		args := append(slices.Clone(c.Args), "-h")
		out, err := r.help(ctx, nil, name, args...)
		if err != nil {
			return err
		}
		_, flags, err := parseGoFlags(out)
		if err != nil {
			return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		if len(c.Args) > 0 {
			p.line("### " + code(strings.Join(append([]string{name}, c.Args...), " ")))
			p.line("")
		}
		if c.Doc != "" {
			p.line(cell(c.Doc))
			p.line("")
		}
		writeFlagTable(p, flags)
	}
	return nil
}

// cobraHelp is the parsed help of one cobra command.
type cobraHelp struct {
	Description string
	Usage       []string
	Commands    [][2]string // name, short description
	Flags       []flagRow
	Global      []flagRow
}

// cobraSections are the headings of cobra's default help template this parser knows.
var cobraSections = []string{"Usage", "Available Commands", "Flags", "Global Flags"}

var cobraFlag = regexp.MustCompile(`^\s+(?:-(\w), )?--([\w-]+)(?: (\S+))?\s{2,}(.*)$`)

// parseCobra parses the help cobra prints by default: a description, then sections headed
// "Usage:", "Available Commands:", "Flags:", "Global Flags:".
func parseCobra(out string) (cobraHelp, error) {
	var h cobraHelp
	section := "description"
	var desc []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if slices.Contains(cobraSections, strings.TrimSuffix(l, ":")) && strings.HasSuffix(l, ":") {
			section = strings.TrimSuffix(l, ":")
			continue
		}
		if strings.HasPrefix(l, "Use \"") {
			continue
		}
		switch section {
		case "description":
			desc = append(desc, l)
		case "Usage":
			if t := strings.TrimSpace(l); t != "" {
				h.Usage = append(h.Usage, t)
			}
		case "Available Commands":
			if t := strings.TrimSpace(l); t != "" {
				name, short, _ := strings.Cut(t, " ")
				h.Commands = append(h.Commands, [2]string{name, strings.TrimSpace(short)})
			}
		case "Flags", "Global Flags":
			list := &h.Flags
			if section == "Global Flags" {
				list = &h.Global
			}
			if strings.TrimSpace(l) == "" {
				continue
			}
			if m := cobraFlag.FindStringSubmatch(l); m != nil {
				f := flagRow{Name: "--" + m[2], Type: m[3], Usage: m[4]}
				if m[1] != "" {
					f.Name = "-" + m[1] + ", --" + m[2]
				}
				if f.Type == "" {
					f.Type = "bool"
				}
				*list = append(*list, f)
			} else if len(*list) > 0 {
				f := &(*list)[len(*list)-1]
				f.Usage += " " + strings.TrimSpace(l)
			} else {
				return h, fmt.Errorf("unexpected line in %s: %q", section, l)
			}
		default:
			return h, fmt.Errorf("unknown help section %q", section)
		}
	}
	h.Description = strings.TrimSpace(strings.Join(desc, "\n"))
	for _, list := range [][]flagRow{h.Flags, h.Global} {
		for i := range list {
			list[i].Usage, list[i].Default = splitDefault(list[i].Usage)
		}
	}
	return h, nil
}

// writeCobra documents a cobra tree from its root down. The help command is cobra's own, and the
// shells of completion are listed rather than expanded: both are the same in every cobra program.
func writeCobra(ctx context.Context, p *page, r runner, name string) error {
	var walk func(path []string, globals []flagRow) error
	walk = func(path []string, globals []flagRow) error {
		out, err := r.help(ctx, nil, name, append(slices.Clone(path), "--help")...)
		if err != nil {
			return err
		}
		h, err := parseCobra(out)
		if err != nil {
			return fmt.Errorf("%s %s: %w", name, strings.Join(path, " "), err)
		}
		if len(path) > 0 {
			p.line("### " + code(strings.Join(append([]string{name}, path...), " ")))
			p.line("")
		}
		if h.Description != "" {
			p.line("```text")
			p.line(h.Description)
			p.line("```")
			p.line("")
		}
		if len(h.Usage) > 0 {
			p.line("Usage: " + strings.Join(codeEach(h.Usage), ", "))
			p.line("")
		}
		var subs [][]string
		for _, c := range h.Commands {
			if c[0] == "help" {
				continue
			}
			subs = append(subs, []string{code(c[0]), cell(c[1])})
		}
		if len(subs) > 0 {
			p.table([]string{"Command", "Description"}, subs)
		}
		flags := h.Flags
		if len(path) == 0 {
			globals = persistentOf(h.Flags)
		} else if !slices.Equal(h.Global, globals) {
			return fmt.Errorf("%s %s: its global flags differ from the root's", name, strings.Join(path, " "))
		}
		if len(flags) > 0 {
			writeFlagTable(p, flags)
		}
		if len(path) > 0 && len(globals) > 0 {
			p.line("The global flags of `" + name + "` apply too.")
			p.line("")
		}
		if len(path) > 0 && path[0] == "completion" {
			return nil
		}
		for _, c := range h.Commands {
			if c[0] == "help" {
				continue
			}
			if err := walk(append(slices.Clone(path), c[0]), globals); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(nil, nil)
}

// persistentOf returns the root's flags that its subcommands inherit: all but --help.
func persistentOf(flags []flagRow) []flagRow {
	var out []flagRow
	for _, f := range flags {
		if f.Name != "-h, --help" {
			out = append(out, f)
		}
	}
	return out
}

func codeEach(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = code(s)
	}
	return out
}

// writeCNIPlugin documents a CNI plugin: no flags; the runtime configures it. The versions come
// from the binary itself (CNI_COMMAND=VERSION).
func writeCNIPlugin(ctx context.Context, p *page, r runner, name string) error {
	out, err := r.help(ctx, []string{"CNI_COMMAND=VERSION"}, name)
	if err != nil {
		return err
	}
	p.line("A CNI plugin: it takes no flags. The container runtime runs it with the `CNI_*` environment variables of the CNI")
	p.line("specification and the network configuration on stdin; its keys are in [cni.md](cni.md#" + anchor(name) + "). Run")
	p.line("with `CNI_COMMAND=VERSION` it prints the configuration versions it accepts:")
	p.line("")
	p.line("```json")
	p.line(strings.TrimSpace(out))
	p.line("```")
	p.line("")
	return nil
}
