package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
)

// NewDev returns the development mailer: it "sends" a message by logging its sender,
// recipient, subject and text body at info level to logger, and returns an id "dev-<random>".
// It is the only place where a single-use link is ever logged, which is why it is for
// development only. It never fails. A nil logger discards.
func NewDev(logger *slog.Logger) Mailer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return MailerFunc(func(ctx context.Context, m Message) (string, error) {
		id := "dev-" + randomHex(8)
		logger.InfoContext(ctx, "development mail (not sent; the dev mailer only logs)",
			"provider_id", id, "from", m.From, "to", m.To, "subject", m.Subject, "text", m.Text)
		return id, nil
	})
}

// randomHex returns 2n random hex characters.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b)
}
