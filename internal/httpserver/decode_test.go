package httpserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/thauth/thauth"
)

func TestDecodeCheck(t *testing.T) {
	var req thauth.CheckRequest
	err := decodeCheck(`{"subject":"user:\u00e9\ud83d\ude00 \"q\" \\ \/","feature":"f","action":"a","tenant":"t","resource":"dev/*","explain":true}`, &req, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := thauth.CheckRequest{Subject: "user:é😀 \"q\" \\ /", Feature: "f", Action: "a", Tenant: "t", Resource: "dev/*", Explain: true}
	if d := cmp.Diff(want, req); d != "" {
		t.Error(d)
	}
	// Lone surrogates become U+FFFD, as with encoding/json.
	req = thauth.CheckRequest{}
	if err := decodeCheck(`{"subject":"a\ud800b\udc00\ud800\u0041","feature":"f","action":"a"}`, &req, nil); err != nil {
		t.Fatal(err)
	}
	var std struct{ Subject string }
	_ = json.Unmarshal([]byte(`{"subject":"a\ud800b\udc00\ud800\u0041"}`), &std)
	if req.Subject != std.Subject {
		t.Errorf("surrogates: %q, encoding/json %q", req.Subject, std.Subject)
	}
}

// FuzzCheckDecoder: the decoder never panics, every rejection is a 400 (EInvalid) — also
// through the handler, where it must be a 4xx — and whatever it accepts is valid JSON that
// encoding/json decodes to the same values.
func FuzzCheckDecoder(f *testing.F) {
	seeds := []string{
		`{"subject":"user:alice","feature":"billing","action":"read"}`,
		`{"subject":"s","feature":"f","action":"a","tenant":"t","resource":"a/b/*","explain":true}`,
		`{"subject":"\u00e9\ud83d\ude00","feature":"f","action":"a"}`,
		`{"subject":"a\ud800","feature":"f","action":"a","tenant":null}`,
		`{"subject":"a","subject":"b"}`,
		`{"subject":1}`, `{"foo":[1,2,{}]}`, `[]`, `null`, ``, ` `, `{`, `{"`, `{"a"`, `{"a":`,
		`{"subject":"a","feature":"b","action":"c"} x`, `{"subject":"\x"}`, `{"subject":"\u12"}`,
		"{\"subject\":\"\xff\"}", `{"explain":tru}`, `{"explain":nul}`, `{,}`, `{"subject":"a",}`,
		`{"resource":"a//b","subject":"a","feature":"b","action":"c"}`,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	e := newEnv(f)
	// A handler that logs nothing: the fuzzer (and its minimizer) runs it very many times.
	e.h = New(Deps{Engine: e.eng, Manage: e.mg})
	f.Fuzz(func(t *testing.T, body string) {
		checkThroughHandler(t, e, body)
		var req thauth.CheckRequest
		err := decodeCheck(body, &req, nil)
		if err != nil {
			var te *thauth.Error
			if !errors.As(err, &te) || te.Code != thauth.EInvalid || te.Message == "" {
				t.Fatalf("rejection %v is not an EInvalid error", err)
			}
			return
		}
		if !json.Valid([]byte(body)) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var std map[string]any
		if err := json.Unmarshal([]byte(body), &std); err != nil {
			t.Fatalf("accepted %q, encoding/json: %v", body, err)
		}
		str := func(k string) string { s, _ := std[k].(string); return s }
		got := thauth.CheckRequest{Subject: str("subject"), Feature: str("feature"), Action: str("action"), Tenant: str("tenant"), Resource: str("resource")}
		got.Explain, _ = std["explain"].(bool)
		if d := cmp.Diff(got, req); d != "" {
			t.Fatalf("%q decoded differently from encoding/json (-std +ours):\n%s", body, d)
		}
		if req.Subject == "" || req.Feature == "" || req.Action == "" {
			t.Fatalf("accepted %q without a required field", body)
		}
	})
}

// checkThroughHandler posts body to /v1/check and requires a 200 or a 4xx with a JSON error.
func checkThroughHandler(t *testing.T, e *env, body string) {
	rec := serve(e.h, httptestRequest("POST", "/v1/check", body, e.decisions, "application/json"))
	if rec.Code != 200 && rec.Code/100 != 4 {
		t.Fatalf("%q: status %d %s", body, rec.Code, rec.Body)
	}
	if rec.Code != 200 {
		var b errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Error == "" {
			t.Fatalf("%q: %d with body %s", body, rec.Code, rec.Body)
		}
	}
}

// TestFuzzSeedsThroughHandler: every fuzz seed (and some mutations) through the real
// handler is a 2xx or a 4xx, never a 5xx.
func TestFuzzSeedsThroughHandler(t *testing.T) {
	e := newEnv(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	base := `{"subject":"user:alice","feature":"billing","action":"refund","tenant":"t","resource":"invoices/*","explain":true}`
	bodies := []string{base, ``, `{}`, `[]`, `{"subject":"\ud800","feature":"f","action":"a"}`}
	for i := 0; i < 300; i++ {
		b := []byte(base)
		for j := 0; j < 1+rnd.IntN(4); j++ {
			switch rnd.IntN(3) {
			case 0:
				b[rnd.IntN(len(b))] = byte(rnd.IntN(256))
			case 1:
				k := rnd.IntN(len(b))
				b = append(b[:k], b[k+1:]...)
			case 2:
				k := rnd.IntN(len(b))
				const ins = "{}[]\",:\ntu0\\"
				b = append(b[:k], append([]byte{ins[rnd.IntN(len(ins))]}, b[k:]...)...)
			}
		}
		bodies = append(bodies, string(b))
	}
	for _, body := range bodies {
		rec := e.post("/v1/check", e.decisions, body)
		if rec.Code >= 500 || (rec.Code != 200 && rec.Code/100 != 4) {
			t.Errorf("%q: %d %s", body, rec.Code, rec.Body)
		}
		if rec.Code == 400 {
			errorOf(t, rec)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	cases := []string{"", "plain", `q"uote`, `back\slash`, "ctl\x00\x01\x1f\x7f", "\n\r\t\b\f", "é😀", "\u2028\u2029", "bad\xffutf8\xc3", "<>&", strings.Repeat("x", 300)}
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		b := make([]byte, rnd.IntN(20))
		for j := range b {
			b[j] = byte(rnd.IntN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		got := appendJSONString(nil, s)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		if want := strings.TrimSuffix(buf.String(), "\n"); string(got) != want {
			t.Errorf("%q: got %s, encoding/json %s", s, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("%q: invalid JSON %s", s, got)
		}
	}
}

func TestAppendUUIDv7(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		s := string(appendUUIDv7(nil, now, rand.Uint64))
		u, err := uuid.Parse(s)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || !uuidV7.MatchString(s) {
			t.Fatalf("%s: %v %v %v", s, err, u.Version(), u.Variant())
		}
		sec, nsec := u.Time().UnixTime()
		if got := time.Unix(sec, nsec).UTC(); !got.Equal(now.Truncate(time.Millisecond)) {
			t.Fatalf("time %v, want %v", got, now)
		}
		if seen[s] {
			t.Fatal("duplicate id")
		}
		seen[s] = true
	}
}

func BenchmarkDecodeCheck(b *testing.B) {
	body := []byte(benchBody)
	b.ReportAllocs()
	for b.Loop() {
		var req thauth.CheckRequest
		if err := decodeCheck(string(body), &req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCheckStd is the reference for BenchmarkDecodeCheck: encoding/json into a
// struct, strict.
func BenchmarkDecodeCheckStd(b *testing.B) {
	body := []byte(benchBody)
	b.ReportAllocs()
	for b.Loop() {
		var req struct {
			Subject, Feature, Action, Tenant, Resource string
			Explain                                    bool
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			b.Fatal(err)
		}
	}
}
