package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/seal"
)

// Master keys: the operator's keys under which the data keys that seal secrets are wrapped
// (internal/seal). They come from THAUTH_MASTER_KEY or a file, never from the database, and
// are never printed or logged except by `keys generate`, which shows a new one once.

const masterKeyEnv = "THAUTH_MASTER_KEY"

// loadMasterKeys reads the master keys from file (when not "") or else from
// THAUTH_MASTER_KEY. fileSource names where file came from, for messages. It returns the
// keys (none when neither is set), warnings to show (a key file readable by others), and
// the problem that makes the configuration invalid, if any. Messages never contain key
// material.
func loadMasterKeys(e *env, file, fileSource string) (keys seal.MasterKeys, warnings []string, problem string) {
	inline := e.getenv(masterKeyEnv)
	if file != "" && inline != "" {
		return keys, nil, fmt.Sprintf("%s and %s are both set: give the master keys one way only", fileSource, masterKeyEnv)
	}
	text, src := inline, masterKeyEnv
	if file != "" {
		src = fileSource
		fi, err := os.Stat(file)
		if err != nil {
			return keys, nil, fmt.Sprintf("%s: cannot read %s: %v", src, file, unwrapPath(err))
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			warnings = append(warnings, fmt.Sprintf("the master key file %s is readable by group or others (mode %04o): "+
				"chmod 600 it", file, perm))
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return keys, warnings, fmt.Sprintf("%s: cannot read %s: %v", src, file, unwrapPath(err))
		}
		text = string(b)
	}
	keys, err := seal.ParseMasterKeys(text)
	if err != nil {
		return keys, warnings, fmt.Sprintf("%s: %s", src, safeMessage(err))
	}
	if text != "" && keys.Len() == 0 {
		return keys, warnings, fmt.Sprintf("%s: holds no master key (only blank lines or comments)", src)
	}
	return keys, warnings, ""
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// safeMessage returns the message of a *thauth.Error without its code prefix (it is meant
// for people), else err's text.
func safeMessage(err error) string {
	var te *thauth.Error
	if errors.As(err, &te) {
		if te.Err != nil {
			return te.Message + ": " + te.Err.Error()
		}
		return te.Message
	}
	return err.Error()
}

func runKeysGenerate(_ context.Context, e *env, args []string) int {
	fs := newFlagSet("keys generate", "thauth keys generate [--id ID]",
		`Prints a new master key entry '<id>:<base64 of 32 random bytes>' on stdout, once: nothing
stores it. Instructions go to stderr, so the output can be redirected into a key file:

  (umask 077; thauth keys generate --id k-2026 > /etc/thauth/master.key)

This is a master key (it protects the secrets stored in the database), not an API key
(see 'thauth keys create'). Keep it out of backups and of the database host's disks.`, e)
	id := fs.String("id", "", "key `id`: letters, digits, '.', '_' or '-' (default k-YYYYMMDD, today's date)")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	if *id == "" {
		*id = time.Now().UTC().Format("k-20060102")
	}
	entry, err := seal.GenerateMasterKey(*id)
	if err != nil {
		fmt.Fprintf(e.stderr, "thauth keys generate: --id: %s\n", safeMessage(err))
		return exitUsage
	}
	fmt.Fprintln(e.stdout, entry)
	fmt.Fprintf(e.stderr, `
This master key is shown only now. Store it where only thauth can read it, e.g.
  a file of mode 0600 given to 'thauth serve --master-key-file FILE', or
  the environment variable THAUTH_MASTER_KEY (entries separated by commas).
To rotate to it, put it FIRST and keep the current key after it ("%s,<current>"),
restart the nodes, run 'thauth keys rotate', then remove the old key. Never put it in
a backup: a restored installation needs it to open its secrets. See docs/security.md.
`, *id)
	return exitOK
}

func runKeysRotate(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("keys rotate", "thauth keys rotate --master-key-file FILE [--data-dir DIR | --database-url URL]",
		`Moves every secret stored in the database onto the first (active) master key, online:
re-wraps every data key under it, creates a new data key, re-seals every sealed value with
the new data key and retires the old data keys. Servers may keep running meanwhile.

Procedure (docs/security.md):
  1. 'thauth keys generate --id NEW' and put NEW first in the key file, the old keys after
     it ("NEW", then "OLD"); restart every node on the new file, one by one;
  2. 'thauth keys rotate --master-key-file FILE' (this command);
  3. remove the old keys from the file (and THAUTH_MASTER_KEY) and restart the nodes.
Running it again is harmless. It fails, changing nothing, when a data key is wrapped under
a master key that is not in the list.`, e)
	storeFlags(fs)
	fs.String("master-key-file", "", "`file` of master keys, the new (active) one first; or $"+masterKeyEnv)
	fs.env("master-key-file", "THAUTH_MASTER_KEY_FILE")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	keys, warnings, problem := loadMasterKeys(e, fs.value("master-key-file"), fs.source("master-key-file"))
	for _, w := range warnings {
		fmt.Fprintln(e.stderr, "warning: "+w)
	}
	if problem != "" {
		fmt.Fprintf(e.stderr, "thauth keys rotate: %s\n", problem)
		return exitUsage
	}
	if keys.Len() == 0 {
		fmt.Fprintf(e.stderr, "thauth keys rotate: no master key: give --master-key-file FILE (new key first) or set %s\n", masterKeyEnv)
		return exitUsage
	}
	store, err := openReady(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	ks, ok := store.(seal.KeyStore)
	if !ok {
		return e.errorf("this store cannot hold data keys")
	}
	u := fs.value("database-url")
	sealer, err := seal.New(ctx, ks, keys, seal.Options{})
	if err != nil {
		if errors.Is(err, seal.ErrWrongKey) {
			return e.errorf("none of the master keys %v unwraps the stored data keys: list the current master key after the new one", keys)
		}
		return e.errorf("opening the secret store: %v", redactURL(err, u))
	}
	res, err := sealer.Rotate(ctx, func(ctx context.Context, reseal seal.Resealer) error {
		return resealAll(ctx, store, reseal)
	})
	if err != nil {
		if errors.Is(err, seal.ErrWrongKey) {
			return e.errorf("rotation refused, nothing changed: a data key is wrapped under a master key that is not configured: %s", safeMessage(err))
		}
		return e.errorf("rotation failed (run it again): %v", redactURL(err, u))
	}
	w := e.stdout
	fmt.Fprintf(w, "Active master key   %s (configured: %s)\n", keys.ActiveID(), strings.Join(keys.IDs(), ", "))
	fmt.Fprintf(w, "Re-wrapped          %s\n", listOrNone(res.Rewrapped))
	fmt.Fprintf(w, "New data key        %s\n", res.NewDataKeyID)
	fmt.Fprintf(w, "Values re-sealed    %d (%d already current)\n", res.Resealed, res.Unchanged)
	fmt.Fprintf(w, "Retired data keys   %s\n", listOrNone(res.Retired))
	fmt.Fprintln(w)
	if keys.Len() > 1 {
		fmt.Fprintf(w, "Every data key is now wrapped under %q. The other master keys (%s) are no longer\n",
			keys.ActiveID(), strings.Join(keys.IDs()[1:], ", "))
		fmt.Fprintln(w, "needed: remove them from the key file or THAUTH_MASTER_KEY and restart the nodes one by one.")
	} else {
		fmt.Fprintf(w, "Every data key is wrapped under %q; secrets are sealed under the new data key.\n", keys.ActiveID())
	}
	return exitOK
}

// resealAll passes every sealed value stored in the database (thauth.SealedColumns: TOTP
// seeds, outbox payloads) through reseal and writes back those that changed, so that
// `thauth keys rotate` leaves no value under a retired data key.
func resealAll(ctx context.Context, store thauth.Store, reseal seal.Resealer) error {
	rs, ok := store.(thauth.Resealer)
	if !ok {
		return fmt.Errorf("this store cannot re-seal values")
	}
	for _, c := range thauth.SealedColumns {
		err := rs.ResealColumn(ctx, c, func(rowID, sealed string) (string, bool, error) {
			next, err := reseal(c.Purpose, rowID, sealed)
			if err != nil {
				return "", false, fmt.Errorf("%s.%s of row %s: %w", c.Table, c.Column, rowID, err)
			}
			return next, next != sealed, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func listOrNone(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}
