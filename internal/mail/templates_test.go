package mail

import (
	"html"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth/internal/manage"
)

const evilName = `<script>alert("x")</script> & Co`

// renderCases are valid payloads of every template, as internal/manage queues them.
var renderCases = []struct {
	name     string
	template string
	data     map[string]string
	subject  string
	// want appear in both bodies (HTML compared after unescaping), with the link if any.
	want []string
}{
	{
		name: "verify signup", template: TemplateVerifyEmail,
		data:    map[string]string{"link": "https://console.test/verify-email#token=tokSIGNUP123", "name": evilName, "purpose": "signup"},
		subject: "Verify your email address for Thauth",
		want:    []string{"https://console.test/verify-email#token=tokSIGNUP123", "verify your email address", evilName},
	},
	{
		name: "verify change", template: TemplateVerifyEmail,
		data:    map[string]string{"link": "https://console.test/verify-email#token=tokCHANGE123", "name": "Ada", "purpose": "change"},
		subject: "Confirm your new email address for Thauth",
		want:    []string{"https://console.test/verify-email#token=tokCHANGE123", "change the email address"},
	},
	{
		name: "password reset", template: TemplatePasswordReset,
		data:    map[string]string{"link": "https://console.test/reset-password#token=tokRESET123", "name": evilName},
		subject: "Reset your Thauth password",
		want:    []string{"https://console.test/reset-password#token=tokRESET123", "reset the password", evilName},
	},
	{
		name: "invitation", template: TemplateInvitation,
		data: map[string]string{"link": "https://console.test/invitations/accept#token=tokINVITE123",
			"organization": evilName, "role": "developer", "inviter": "Grace Hopper"},
		subject: "You are invited to join " + evilName + " on Thauth",
		want:    []string{"https://console.test/invitations/accept#token=tokINVITE123", "Grace Hopper", "developer", evilName},
	},
	{
		name: "new sign-in", template: TemplateNewSignIn,
		data:    map[string]string{"name": "Ada", "ip": "203.0.113.7", "user_agent": "Mozilla/5.0 <b>", "time": "2026-03-01T12:34:56Z"},
		subject: "New sign-in to your Thauth account",
		want:    []string{"203.0.113.7", "Mozilla/5.0 <b>", "Sun, 1 Mar 2026 12:34 UTC"},
	},
	{
		name: "mfa changed", template: TemplateMFAChanged,
		// The time as internal/manage formats it is shown as it is.
		data:    map[string]string{"name": "Ada", "change": "recovery codes regenerated", "time": "2026-03-01 12:34 UTC"},
		subject: "Two-factor authentication changed on your Thauth account",
		want:    []string{"recovery codes regenerated", "2026-03-01 12:34 UTC"},
	},
	{
		name: "security alert", template: TemplateSecurityAlert,
		data:    map[string]string{"name": "Ada", "title": "Account locked", "detail": "Too many failed sign-ins <from> 203.0.113.7.", "time": "not a time"},
		subject: "Security alert: Account locked",
		want:    []string{"Account locked", "Too many failed sign-ins <from> 203.0.113.7.", "not a time"},
	},
	{
		name: "incident notice", template: TemplateIncidentNotice,
		data: map[string]string{"name": "Ada", "organization": evilName, "subject": "Security notice <b>: API keys revoked",
			"message": "We revoked every API key of your project.\nCreate new keys <from> the console.", "incident": "0190e6c2-0000-7000-8000-00000000000a"},
		subject: "Security notice <b>: API keys revoked",
		want: []string{evilName, "We revoked every API key of your project.\nCreate new keys <from> the console.",
			"incident 0190e6c2-0000-7000-8000-00000000000a", "owner of the organization"},
	},
}

func TestRenderEveryTemplate(t *testing.T) {
	seen := map[string]bool{}
	for _, tt := range renderCases {
		t.Run(tt.name, func(t *testing.T) {
			seen[tt.template] = true
			subject, text, htm, err := Render(tt.template, tt.data)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if subject != tt.subject {
				t.Errorf("subject = %q, want %q", subject, tt.subject)
			}
			plainHTML := html.UnescapeString(htm)
			for _, w := range tt.want {
				if !strings.Contains(strings.ToLower(text), strings.ToLower(w)) {
					t.Errorf("text lacks %q:\n%s", w, text)
				}
				if !strings.Contains(strings.ToLower(plainHTML), strings.ToLower(w)) {
					t.Errorf("HTML lacks %q:\n%s", w, htm)
				}
			}
			if link := tt.data["link"]; link != "" && !strings.Contains(htm, `href="`+link+`"`) {
				t.Errorf("HTML has no link to %s:\n%s", link, htm)
			}
			// Every value is escaped: no markup from the data survives.
			for _, bad := range []string{"<script>", "<b>", "<from>"} {
				if strings.Contains(htm, bad) {
					t.Errorf("HTML holds unescaped %q", bad)
				}
			}
			for _, must := range []string{"<!DOCTYPE html>", `<html lang="en">`, `charset="utf-8"`, "Thauth"} {
				if !strings.Contains(htm, must) {
					t.Errorf("HTML lacks %q", must)
				}
			}
			// No remote content or tracking: nothing is fetched when the mail is opened.
			for _, bad := range []string{"<img", "<script", "<link", "src=", "url("} {
				if strings.Contains(strings.ToLower(htm), bad) {
					t.Errorf("HTML holds %q", bad)
				}
			}
			if strings.Contains(text, "<no value>") || strings.Contains(htm, "<no value>") {
				t.Error("a key rendered as <no value>")
			}
		})
	}
	if diff := cmp.Diff(Templates(), sortedKeys(seen)); diff != "" {
		t.Errorf("templates without a render case (-all +tested):\n%s", diff)
	}
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for _, n := range Templates() {
		if m[n] {
			out = append(out, n)
		}
	}
	return out
}

// TestTemplatesMatchManage keeps the names and the seal purpose in step with the side that
// queues the mail.
func TestTemplatesMatchManage(t *testing.T) {
	want := []string{manage.MailIncidentNotice, manage.MailInvitation, manage.MailMFAChanged, manage.MailNewSignIn,
		manage.MailPasswordReset, manage.MailSecurityAlert, manage.MailVerifyEmail}
	if diff := cmp.Diff(want, Templates()); diff != "" {
		t.Errorf("templates (-manage +mail):\n%s", diff)
	}
	if PayloadPurpose != manage.MailPurpose {
		t.Errorf("PayloadPurpose %q, manage.MailPurpose %q", PayloadPurpose, manage.MailPurpose)
	}
}

func TestRenderOptionalKeys(t *testing.T) {
	_, text, htm, err := Render(TemplateNewSignIn, map[string]string{"time": "2026-03-01T12:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "Hello,") || !strings.Contains(htm, "Hello,") {
		t.Errorf("greeting without a name:\n%s", text)
	}
	if !strings.Contains(text, "IP address: unknown") {
		t.Errorf("missing ip not shown as unknown:\n%s", text)
	}
	_, text, _, err = Render(TemplateInvitation, map[string]string{"link": "https://c.test/i#token=x", "organization": "Acme", "role": "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "You are invited to join") {
		t.Errorf("invitation without an inviter:\n%s", text)
	}
}

func TestRenderSubjectIsOneLine(t *testing.T) {
	subject, _, _, err := Render(TemplateInvitation, map[string]string{
		"link": "https://c.test/i#token=x", "organization": "Acme\r\nBcc: victim@example.com", "role": "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(subject, "\r\n") {
		t.Errorf("subject %q has a line break", subject)
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name, template string
		data           map[string]string
		wantErr        string
	}{
		{"unknown template", "welcome", map[string]string{}, `unknown template "welcome"`},
		{"missing link", TemplatePasswordReset, map[string]string{"name": "Ada"}, `needs "link"`},
		{"empty required", TemplateInvitation, map[string]string{"link": "https://c.test/x", "organization": " ", "role": "owner"}, `needs "organization"`},
		{"missing purpose", TemplateVerifyEmail, map[string]string{"link": "https://c.test/x"}, `needs "purpose"`},
		{"bad purpose", TemplateVerifyEmail, map[string]string{"link": "https://c.test/x", "purpose": "other"}, "purpose must be"},
		{"javascript link", TemplatePasswordReset, map[string]string{"link": "javascript:alert(1)"}, "not an absolute http(s) URL"},
		{"relative link", TemplatePasswordReset, map[string]string{"link": "/reset-password#token=x"}, "not an absolute http(s) URL"},
		{"missing time", TemplateMFAChanged, map[string]string{"change": "enabled"}, `needs "time"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := Render(tt.template, tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Render = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestTitles(t *testing.T) {
	for _, n := range Templates() {
		if Title(n) == "" {
			t.Errorf("template %s has no title", n)
		}
	}
	if Title("nope") != "" {
		t.Error("unknown template has a title")
	}
}
