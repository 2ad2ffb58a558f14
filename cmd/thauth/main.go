// Command thauth runs the Thauth authorization service and manages it.
//
//	thauth serve                      run the server (THAUTH_ADDR, THAUTH_DATA_DIR, ...)
//	thauth init --org O --project P   create an organization, a project and its first keys
//	thauth apply -f config.yaml       apply a configuration document
//	thauth check --subject S ...      ask for a decision
//	thauth backup --out F --recipient age1...   write an encrypted backup
//
// Run `thauth help` for every command, `thauth COMMAND -h` for its flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes of run.
const (
	exitOK     = 0
	exitError  = 1 // the command failed (server error, unreachable server, bad document, ...)
	exitUsage  = 2 // bad flags or arguments, invalid configuration
	exitDenied = 3 // check --exit-code: the decision was a deny
)

// env is what a command may use of the outside world. Commands read the environment through
// getenv only, so tests can run them side by side.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) int
}

func commands() []command {
	return []command{
		{"serve", "run the server", runServe},
		{"init", "create an organization, a project and its first two API keys", runInit},
		{"migrate", "bring the database schema up to date", runMigrate},
		{"apply", "apply a configuration document to a project", runApply},
		{"export", "print a project's configuration document", runExport},
		{"check", "ask whether a subject may perform an action", runCheck},
		{"keys", "API keys (create, list, revoke); master keys (generate, rotate)", runKeys},
		{"dev-cert", "create a local CA and a certificate for trying HTTPS", runDevCert},
		{"operator", "operator roles; incident response (suspend, revoke, notify, incidents)", runOperator},
		{"audit", "verify and export the audit log", runAudit},
		{"backup", "write an encrypted backup; verify one; create a backup key pair", runBackup},
		{"restore", "restore an encrypted backup into an empty store", runRestore},
		{"version", "print the version", runVersion},
		{"help", "show help for a command", nil},
	}
}

// run executes the command line args (without the program name) and returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run(ctx, []string{rest[0], "-h"}, getenv, stdin, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	case "-v", "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			return c.run(ctx, e, rest)
		}
	}
	fmt.Fprintf(stderr, "thauth: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Thauth is an authorization service: it answers \"may this subject do this?\".")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: thauth COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'thauth COMMAND -h' for the flags of a command.")
	fmt.Fprintln(w, "Commands that talk to a server read THAUTH_URL (default "+defaultURL+"), THAUTH_KEY and THAUTH_PROJECT.")
}

func runVersion(_ context.Context, e *env, args []string) int {
	fs := newFlagSet("version", "thauth version", "Prints the version of thauth and of the Go toolchain that built it.", e)
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	fmt.Fprintf(e.stdout, "thauth %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

// errorf prints "error: ..." to stderr and returns exitError.
func (e *env) errorf(format string, args ...any) int {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(e.stderr, "error: "+strings.TrimSuffix(msg, "\n"))
	return exitError
}
