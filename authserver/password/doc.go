// Package password owns password hashing: argon2id (golang.org/x/crypto/argon2) with its
// parameters stored in the PHC string
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>      (salt and hash: base64, no padding)
//
// so that they can be raised later: Verify reports a hash made with weaker parameters than the
// current ones, and the caller rehashes the password it has just checked.
//
// DefaultParams are OWASP's minimum for argon2id (m=19 MiB, t=2, p=1); MinParams refuses
// anything weaker. Hashing costs memory (m KiB per hash in flight), so a Hasher bounds how many
// hashes run at once with a semaphore: peak hashing memory is at most
// MaxConcurrent x m, however many logins arrive together; the rest wait (or give up when their
// request's context ends). VerifyDummy spends the same time as Verify against a hash of the
// current parameters, for callers that must not reveal whether an account exists.
//
// It does not own password policy (length, rules): the HTTP layer validates that.
package password
