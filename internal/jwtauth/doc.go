// Package jwtauth owns verifying bearer JWTs against the keys of one
// configured, trusted issuer.
//
// A [Verifier] checks a compact JWS token's structure and header policy, the
// signature with a key from the issuer's JWKS (from a file, or fetched from a
// configured URL and cached), and the iss, aud, exp, nbf, iat and sub
// claims. A token that passed is cached by its SHA-256 until it expires, so
// that its signature is not checked again on every request.
//
// # Notes
//
//   - jwtauth never fetches a URL named by a token: jku, x5u, x5c and jwk
//     headers are rejected, never followed or used.
//   - jwtauth never trusts the token's alg: the algorithm is pinned per key
//     (the JWK's alg, else derived from its key type) and a header alg that
//     differs is rejected. Only asymmetric algorithms are accepted.
//   - jwtauth never logs a token, and no error it returns contains the
//     token or any part of it other than a validated kid.
//   - Every rejection wraps [ErrInvalidToken].
//   - A token without a sub (or with an empty one) is refused: it names no
//     one, so it can carry no identity.
//   - exp, nbf and iat, when present, must be JSON numbers (RFC 7519
//     NumericDate), whatever forms the JWT library would also read.
package jwtauth
