package thauth_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/thauth/thauth/sdk/go/thauth"
)

// TestFreshness: write results carry the revision token, and checks send it back as
// at_least_as_fresh; a node that cannot catch up answers 503 with Retry-After.
func TestFreshness(t *testing.T) {
	ctx := context.Background()
	srv, seen := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/subjects/upsert":
			w.Header().Set("Thauth-Revision", "r1.tok")
			w.Write([]byte(`{"created":true,"subject":{"subject_id":"u"},"revision":"r1.tok"}`))
		case "/api/v1/projects/p1/config":
			w.Write([]byte(`{"version":"v","changes":{"created":[],"updated":[],"deleted":[]},"revision":"r1.cfg"}`))
		case "/api/v1/projects/p1/keys":
			w.WriteHeader(201)
			w.Write([]byte(`{"id":"k1","name":"ci","prefix":"abcd","scopes":["admin"],"created_at":"2026-01-02T03:04:05Z","last_used_at":null,"key":"thauth_x","revision":"r1.key"}`))
		case "/api/v1/projects/p1/keys/k1":
			w.Header().Set("Thauth-Revision", "r1.rev")
			w.WriteHeader(http.StatusNoContent)
		case "/v1/check/batch":
			w.Write([]byte(`{"results":[]}`))
		default:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"this node has not caught up to the requested revision yet","code":"unavailable"}`))
		}
	})
	c := thauth.NewClient(srv.URL, testKey)

	up, err := c.UpsertSubject(ctx, thauth.UpsertSubjectRequest{SubjectID: "u", SubjectType: "user"})
	if err != nil || up.Revision != "r1.tok" {
		t.Errorf("upsert: %+v, %v", up, err)
	}
	ap, err := c.ApplyConfig(ctx, "p1", []byte("version: 1\n"), "", false)
	if err != nil || ap.Revision != "r1.cfg" {
		t.Errorf("apply: %+v, %v", ap, err)
	}
	k, err := c.CreateKey(ctx, "p1", thauth.CreateKeyRequest{Name: "ci", Scopes: []string{"admin"}})
	if err != nil || k.Revision != "r1.key" || k.Token != "thauth_x" {
		t.Errorf("create key: %+v, %v", k, err)
	}
	rev, err := c.RevokeKeyRevision(ctx, "p1", "k1")
	if err != nil || rev != "r1.rev" {
		t.Errorf("revoke: %q, %v", rev, err)
	}

	_, err = c.Check(ctx, thauth.CheckRequest{Subject: "u", Feature: "f", Action: "a", AtLeastAsFresh: up.Revision})
	var e *thauth.Error
	if !errors.As(err, &e) || !errors.Is(err, thauth.ErrUnavailable) || e.RetryAfter != time.Second {
		t.Errorf("check on a node behind: %v", err)
	}
	jsonEq(t, seen.at(4).Body, `{"subject":"u","feature":"f","action":"a","at_least_as_fresh":"r1.tok"}`)
	if _, err := c.CheckBatch(ctx, thauth.BatchRequest{Subject: "u", AtLeastAsFresh: "r1.tok",
		Checks: []thauth.BatchItem{{Feature: "f", Action: "a"}}}); err != nil {
		t.Fatal(err)
	}
	jsonEq(t, seen.at(5).Body, `{"subject":"u","at_least_as_fresh":"r1.tok","checks":[{"feature":"f","action":"a"}]}`)
}
