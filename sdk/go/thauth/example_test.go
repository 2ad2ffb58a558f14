package thauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/thauth/thauth/sdk/go/thauth"
)

// The examples need a running server (THAUTH_URL, THAUTH_KEY), so they compile and are shown
// in the documentation but are not run by go test (no Output comment).

func Example() {
	c := thauth.NewClient(os.Getenv("THAUTH_URL"), os.Getenv("THAUTH_KEY"), thauth.WithTimeout(2*time.Second))
	d, err := c.Check(context.Background(), thauth.CheckRequest{
		Subject:  "user:alice",
		Feature:  "billing",
		Action:   "read",
		TenantID: thauth.String("tenant_acme"),
	})
	if err != nil {
		log.Printf("check failed, denying: %v", err) // fail closed
		return
	}
	fmt.Println(d.Allowed, d.Reason) // true role:billing-admin
}

func ExampleClient_CheckBatch() {
	c := thauth.NewClient(os.Getenv("THAUTH_URL"), os.Getenv("THAUTH_KEY"))
	results, err := c.CheckBatch(context.Background(), thauth.BatchRequest{
		Subject:  "user:alice",
		TenantID: thauth.String("tenant_acme"),
		Checks: []thauth.BatchItem{
			{Feature: "billing", Action: "read"},
			{Feature: "billing", Action: "refund", Resource: thauth.String("invoices/2026-001")},
			{Feature: "reports", Action: "export"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		fmt.Printf("%s.%s: %v (%s)\n", r.Feature, r.Action, r.Allowed, r.Reason)
	}
}

func ExampleClient_UpsertSubject() {
	ctx := context.Background()
	c := thauth.NewClient(os.Getenv("THAUTH_URL"), os.Getenv("THAUTH_KEY"))
	cfg, err := c.GetConfig(ctx) // role ids by name; cheap to repeat (ETag)
	if err != nil {
		log.Fatal(err)
	}
	analyst := cfg.RoleByName("analyst")
	if analyst == nil {
		log.Fatal("no role analyst")
	}
	// Make bob an analyst in tenant_acme, replacing his roles there; his overrides stay.
	res, err := c.UpsertSubject(ctx, thauth.UpsertSubjectRequest{
		SubjectID:   "user:bob",
		SubjectType: "user",
		TenantID:    thauth.String("tenant_acme"),
		RoleIDs:     []string{analyst.ID},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created:", res.Created)

	// Remove every role bob has in tenant_acme.
	_, err = c.UpsertSubject(ctx, thauth.UpsertSubjectRequest{
		SubjectID: "user:bob", SubjectType: "user", TenantID: thauth.String("tenant_acme"),
		ReplaceRoles: true,
	})
	if err != nil {
		log.Fatal(err)
	}
}

func ExampleClient_ApplyConfig() {
	ctx := context.Background()
	c := thauth.NewClient(os.Getenv("THAUTH_URL"), os.Getenv("THAUTH_ADMIN_KEY"))
	doc, err := os.ReadFile("examples/acme.yaml")
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.ApplyConfig(ctx, os.Getenv("THAUTH_PROJECT"), doc, thauth.ContentTypeYAML, true)
	var e *thauth.Error
	if errors.As(err, &e) && len(e.Problems) > 0 {
		for _, p := range e.Problems {
			fmt.Printf("%s: %s\n", p.Path, p.Message)
		}
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("would create", res.Changes.Created, "update", res.Changes.Updated, "delete", res.Changes.Deleted)
}

func ExampleError() {
	c := thauth.NewClient(os.Getenv("THAUTH_URL"), os.Getenv("THAUTH_KEY"))
	_, err := c.Check(context.Background(), thauth.CheckRequest{Subject: "user:alice", Feature: "billing", Action: "read"})
	var e *thauth.Error
	switch {
	case err == nil:
	case errors.Is(err, thauth.ErrUnauthorized):
		log.Print("the key is wrong, revoked or expired")
	case errors.Is(err, thauth.ErrRateLimited) && errors.As(err, &e):
		log.Printf("rate limited; retry in %v", e.RetryAfter)
	default:
		log.Print(err)
	}
}
