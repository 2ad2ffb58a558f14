package manage

import "time"

// PasswordParams are argon2id parameters: memory in KiB, iterations, parallelism.
type PasswordParams struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
}

// DefaultPasswordParams follow OWASP's argon2id recommendation (19 MiB, 2 iterations,
// parallelism 1).
var DefaultPasswordParams = PasswordParams{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}

// The session defaults.
const (
	DefaultSessionIdleTimeout = 2 * time.Hour
	DefaultSessionLifetime    = 24 * time.Hour
)
