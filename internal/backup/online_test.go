package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/backup"
	"github.com/thauth/thauth/internal/storetest"
)

// pausingSource holds the export at its first row until pause returns, so that writes
// commit while the export's snapshot is open.
type pausingSource struct {
	thauth.TableExporter
	pause func()
}

func (p pausingSource) ExportTables(ctx context.Context, fn func(string, []any) error) error {
	first := true
	return p.TableExporter.ExportTables(ctx, func(table string, row []any) error {
		if first {
			first = false
			p.pause()
		}
		return fn(table, row)
	})
}

// TestOnlineBackupIsOneSnapshot backs up while a writer keeps committing transactions of
// the shape every management write has (a subject upsert, its grants, and change-log
// entries bumping the revision), and checks that the restored data is one consistent
// state: every revision's changes are wholly present or absent, gap-free, each with its
// subject, and writes committed during the backup are absent.
func TestOnlineBackupIsOneSnapshot(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			src := e.open(t)
			pop := storetest.Populate(t, src)
			pid := pop.ProjectIDs[0]
			cfg, err := src.LoadConfig(ctx, pid)
			if err != nil {
				t.Fatal(err)
			}
			role := cfg.Roles[0].ID

			var commits atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var writeErr error // read after wg.Wait
			var failed atomic.Bool
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					err := src.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
						sub := thauth.Subject{SubjectID: fmt.Sprintf("w:%06d", i), SubjectType: "user"}
						if _, err := tx.UpsertSubject(ctx, pid, &sub, pop.Now); err != nil {
							return err
						}
						if err := tx.ReplaceAssignments(ctx, pid, sub.SubjectID, thauth.Scope{All: true}, []thauth.Assignment{{RoleID: role, Tenant: "t"}}); err != nil {
							return err
						}
						_, err := tx.AppendChanges(ctx, pid, []thauth.Change{{Kind: thauth.ChangeSubject, Ref: sub.SubjectID}, {Kind: thauth.ChangeSubjects}}, pop.Now)
						return err
					})
					if err != nil {
						writeErr = err
						failed.Store(true)
						return
					}
					commits.Add(1)
				}
			})
			waitFor := func(n int64) {
				t.Helper()
				deadline := time.Now().Add(20 * time.Second)
				for commits.Load() < n {
					if time.Now().After(deadline) || failed.Load() {
						t.Errorf("the writer committed only %d transactions", commits.Load())
						return
					}
					time.Sleep(time.Millisecond)
				}
			}
			waitFor(5) // some writes before the backup

			k := newKeys(t)
			var atPause int64
			src2 := pausingSource{TableExporter: src, pause: func() {
				atPause = commits.Load()
				waitFor(atPause + 5) // and some while its snapshot is open
			}}
			var buf bytes.Buffer
			if _, err := backup.Write(ctx, src2, &buf, backup.WriteOptions{Recipients: []age.Recipient{k.rcp}}); err != nil {
				t.Fatal(err)
			}
			close(stop)
			wg.Wait()
			if writeErr != nil {
				t.Fatalf("writer: %v", writeErr)
			}

			dst := e.open(t)
			if _, err := backup.Restore(ctx, &buf, k.ids(), dst); err != nil {
				t.Fatal(err)
			}
			p, err := dst.GetProject(ctx, pid)
			if err != nil {
				t.Fatal(err)
			}
			final, _ := src.GetProject(ctx, pid)
			changes, err := dst.ChangesSince(ctx, pid, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			perRev := map[int64][]thauth.Change{}
			for _, c := range changes {
				perRev[c.Revision] = append(perRev[c.Revision], c)
			}
			if int64(len(perRev)) != p.Revision {
				t.Errorf("restored revision %d but changes of %d revisions", p.Revision, len(perRev))
			}
			refs := map[string]bool{}
			for rev := int64(1); rev <= p.Revision; rev++ {
				cs := perRev[rev]
				if len(cs) == 0 {
					t.Errorf("revision %d missing from the restored change log", rev)
					continue
				}
				if strings.HasPrefix(cs[0].Ref, "w:") {
					if len(cs) != 2 {
						t.Errorf("revision %d has %d of its 2 changes", rev, len(cs))
					}
					refs[cs[0].Ref] = true
				}
			}
			subjects := map[string]bool{}
			if err := dst.ScanSubjectGrants(ctx, pid, func(g *thauth.SubjectGrants) error {
				if strings.HasPrefix(g.Subject.SubjectID, "w:") {
					subjects[g.Subject.SubjectID] = true
					if len(g.Assignments) != 1 {
						t.Errorf("subject %s restored with %d of its 1 assignment", g.Subject.SubjectID, len(g.Assignments))
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(subjects) != len(refs) {
				t.Errorf("%d writer subjects but %d writer revisions restored", len(subjects), len(refs))
			}
			for s := range refs {
				if !subjects[s] {
					t.Errorf("revision of %s restored without its subject", s)
				}
			}
			if len(refs) < 5 || int64(len(refs)) > atPause {
				t.Errorf("backup holds %d writer transactions; %d had committed when the export paused", len(refs), atPause)
			}
			if final.Revision < p.Revision+5 {
				t.Errorf("source revision %d, restored %d: the writes during the backup did not happen", final.Revision, p.Revision)
			}
		})
	}
}
