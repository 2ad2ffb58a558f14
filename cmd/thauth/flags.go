package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// flagSet is a flag.FlagSet with the help text of one command and the environment variable
// that stands in for each flag (documented in the help).
type flagSet struct {
	*flag.FlagSet
	usageLine string
	desc      string
	envOf     map[string]string // flag name → environment variable
	e         *env
}

func newFlagSet(name, usageLine, desc string, e *env) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {} // printed by parse, to stdout for -h and stderr for errors
	return &flagSet{FlagSet: fs, usageLine: usageLine, desc: desc, envOf: map[string]string{}, e: e}
}

// env records that the flag name may also be given as the environment variable v.
func (fs *flagSet) env(name, v string) { fs.envOf[name] = v }

// isSet reports whether the flag name was given on the command line.
func (fs *flagSet) isSet(name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// value returns the flag's value when it was given, else the environment variable's when
// non-empty, else the flag's default: a flag wins over the environment, which wins over the
// default.
func (fs *flagSet) value(name string) string {
	f := fs.Lookup(name)
	if fs.isSet(name) {
		return f.Value.String()
	}
	if v := fs.envOf[name]; v != "" {
		if s := fs.e.getenv(v); s != "" {
			return s
		}
	}
	return f.DefValue
}

// source names where value(name) came from, for error messages.
func (fs *flagSet) source(name string) string {
	if fs.isSet(name) {
		return "--" + name
	}
	if v := fs.envOf[name]; v != "" && fs.e.getenv(v) != "" {
		return v
	}
	return "default of --" + name
}

func (fs *flagSet) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n", fs.usageLine)
	if fs.desc != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(fs.desc))
	}
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		typ, help := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintln(w, line)
		help = "      " + strings.ReplaceAll(help, "\n", "\n      ")
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
			help += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		if v := fs.envOf[f.Name]; v != "" {
			help += " [$" + v + "]"
		}
		fmt.Fprintln(w, help)
	})
	if len(fs.envOf) > 0 {
		fmt.Fprintln(w, "\nA flag wins over its environment variable, which wins over the default.")
	}
}

// parse parses args, allowing flags after positional arguments, and checks that there are
// between minPos and maxPos positional arguments (maxPos < 0: no limit). When done is true
// the command must return code: help was printed (0) or the command line was wrong (2).
func parse(fs *flagSet, args []string, minPos, maxPos int) (pos []string, code int, done bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printUsage(fs.e.stdout)
				return nil, exitOK, true
			}
			fmt.Fprintf(fs.e.stderr, "Run 'thauth %s -h' for help.\n", fs.Name())
			return nil, exitUsage, true
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	switch {
	case len(pos) < minPos:
		fmt.Fprintf(fs.e.stderr, "thauth %s: missing argument\nUsage: %s\n", fs.Name(), fs.usageLine)
		return nil, exitUsage, true
	case maxPos >= 0 && len(pos) > maxPos:
		fmt.Fprintf(fs.e.stderr, "thauth %s: unexpected argument %q\nUsage: %s\n", fs.Name(), pos[maxPos], fs.usageLine)
		return nil, exitUsage, true
	}
	return pos, exitOK, false
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}
