package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"sort"
	"strings"
	texttemplate "text/template"
	"time"
)

// The templates Render knows, with the payload keys each takes (internal/manage/outbox.go
// queues them). Required keys must be present and non-empty; optional ones may be missing.
//
//	verify_email     link, purpose ("signup" or "change"); optional name
//	password_reset   link; optional name
//	invitation       link, organization, role; optional inviter
//	new_sign_in      time; optional name, ip, user_agent
//	mfa_changed      change, time; optional name
//	security_alert   title, detail, time; optional name
//	incident_notice  subject, message, organization, incident; optional name
const (
	TemplateVerifyEmail    = "verify_email"
	TemplatePasswordReset  = "password_reset"
	TemplateInvitation     = "invitation"
	TemplateNewSignIn      = "new_sign_in"
	TemplateMFAChanged     = "mfa_changed"
	TemplateSecurityAlert  = "security_alert"
	TemplateIncidentNotice = "incident_notice"
)

// spec describes one template's data.
type spec struct {
	required []string
	optional []string
	// title is a subject without data, shown for messages whose payload was erased.
	title string
}

var specs = map[string]spec{
	TemplateVerifyEmail:   {required: []string{"link", "purpose"}, optional: []string{"name"}, title: "Verify your email address"},
	TemplatePasswordReset: {required: []string{"link"}, optional: []string{"name"}, title: "Reset your password"},
	TemplateInvitation:    {required: []string{"link", "organization", "role"}, optional: []string{"inviter"}, title: "Invitation to an organization"},
	TemplateNewSignIn:     {required: []string{"time"}, optional: []string{"name", "ip", "user_agent"}, title: "New sign-in to your account"},
	TemplateMFAChanged:    {required: []string{"change", "time"}, optional: []string{"name"}, title: "Two-factor authentication changed"},
	TemplateSecurityAlert: {required: []string{"title", "detail", "time"}, optional: []string{"name"}, title: "Security alert"},
	TemplateIncidentNotice: {required: []string{"subject", "message", "organization", "incident"}, optional: []string{"name"},
		title: "Notice about your organization"},
}

//go:embed templates
var templateFS embed.FS

// compiled holds the parsed templates of one name.
type compiled struct {
	text *texttemplate.Template // defines "subject" and "text"
	html *htmltemplate.Template // "layout" around the file's "content"
}

// parsed is every template, parsed once at start: the files are embedded, so a parse error
// is a bug caught by the tests, and panicking at init makes it impossible to ship.
var parsed = func() map[string]compiled {
	out := make(map[string]compiled, len(specs))
	for name := range specs {
		t := texttemplate.Must(texttemplate.New(name).Option("missingkey=error").
			ParseFS(templateFS, "templates/"+name+".txt"))
		h := htmltemplate.Must(htmltemplate.New(name).Option("missingkey=error").
			ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
		out[name] = compiled{text: t, html: h}
	}
	return out
}()

// Templates returns the names of every template Render knows, sorted.
func Templates() []string {
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Render renders template with data and returns the subject (one line), the plain-text body
// and the HTML body. It fails for an unknown template, for a required key that is missing or
// empty, for a verify_email purpose other than "signup" or "change", and for a link that is
// not an absolute http(s) URL. Values are escaped for HTML by html/template; the text body
// holds them as they are. A "time" value in RFC 3339 is shown in UTC, in words.
func Render(template string, data map[string]string) (subject, text, html string, err error) {
	sp, ok := specs[template]
	if !ok {
		return "", "", "", fmt.Errorf("mail: unknown template %q", template)
	}
	c := parsed[template]
	d := make(map[string]string, len(sp.required)+len(sp.optional)+1)
	for _, k := range sp.required {
		v := strings.TrimSpace(data[k])
		if v == "" {
			return "", "", "", fmt.Errorf("mail: template %s needs %q", template, k)
		}
		d[k] = v
	}
	for _, k := range sp.optional {
		d[k] = strings.TrimSpace(data[k])
	}
	if l, ok := d["link"]; ok {
		if u, err := url.Parse(l); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return "", "", "", fmt.Errorf("mail: template %s: the link is not an absolute http(s) URL", template)
		}
	}
	if template == TemplateVerifyEmail && d["purpose"] != "signup" && d["purpose"] != "change" {
		return "", "", "", fmt.Errorf("mail: template %s: purpose must be \"signup\" or \"change\", got %q", template, d["purpose"])
	}
	if t, ok := d["time"]; ok {
		d["time"] = displayTime(t)
	}

	var b bytes.Buffer
	if err := c.text.ExecuteTemplate(&b, "subject", d); err != nil {
		return "", "", "", fmt.Errorf("mail: template %s: subject: %w", template, err)
	}
	subject = oneLine(b.String())
	b.Reset()
	if err := c.text.ExecuteTemplate(&b, "text", d); err != nil {
		return "", "", "", fmt.Errorf("mail: template %s: text: %w", template, err)
	}
	text = strings.TrimSpace(b.String()) + "\n"
	b.Reset()
	d["subject"] = subject
	if err := c.html.ExecuteTemplate(&b, "layout", d); err != nil {
		return "", "", "", fmt.Errorf("mail: template %s: html: %w", template, err)
	}
	return subject, text, b.String(), nil
}

// Title returns a subject for template that needs no data (for messages whose payload was
// erased), or "" for an unknown template.
func Title(template string) string { return specs[template].title }

// oneLine collapses every run of whitespace (line breaks included) into one space, so that a
// value with a line break cannot end a mail header early.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// displayTime shows an RFC 3339 time as "Mon, 2 Jan 2006 15:04 UTC"; other text is kept.
func displayTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("Mon, 2 Jan 2006 15:04 UTC")
}
