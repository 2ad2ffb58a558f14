package thauth

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorHelpers(t *testing.T) {
	nf := Errorf(ENotFound, "project not found")
	wrapped := fmt.Errorf("loading: %w", nf)
	if ErrorCodeOf(wrapped) != ENotFound || !IsNotFound(wrapped) {
		t.Errorf("code lost through wrapping")
	}
	if ErrorMessage(wrapped) != "project not found" {
		t.Errorf("ErrorMessage = %q", ErrorMessage(wrapped))
	}
	secret := errors.New("dial tcp 10.0.0.7:5432: password authentication failed")
	in := Internal(secret, "loading configuration")
	if ErrorCodeOf(in) != EInternal || ErrorMessage(in) != "internal error" || !errors.Is(in, secret) {
		t.Errorf("internal errors must keep the cause for logs but show nothing: %q", ErrorMessage(in))
	}
	if ErrorCodeOf(errors.New("x")) != EInternal || ErrorMessage(errors.New("x")) != "internal error" {
		t.Errorf("unclassified errors must be internal")
	}
	if ErrorCodeOf(nil) != "" {
		t.Errorf("nil error has no code")
	}
}
