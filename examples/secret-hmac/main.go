//go:build wasip1

// Command secret-hmac is a reactor function that signs the request body
// with HMAC-SHA256 keyed by the secret SIGNING_KEY and answers the MAC in
// hex. The key comes from warden's secret store through the secret_get
// capability, granted in the manifest; it never appears in the response,
// the log or the environment.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o secret-hmac.wasm .
//	warden secrets set SIGNING_KEY --from-stdin   # before the first call
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	warden "warden/sdk/go"
)

var textHeader = warden.Header{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}}

func init() {
	warden.Handle(sign)
}

func sign(r *warden.Request) *warden.Response {
	// Read the key on every request: warden caches it on the host side and
	// a rotated key takes effect without redeploying.
	key, err := warden.Secret("SIGNING_KEY")
	if err != nil {
		// The error names the kind of failure (denied, not found…), never
		// the value; the log line is for the operator.
		warden.Log(warden.LevelError, "signing key unavailable: "+err.Error())
		status := 503
		if errors.Is(err, warden.ErrNotFound) || errors.Is(err, warden.ErrDenied) {
			status = 500 // a deployment problem, not a transient one
		}
		return &warden.Response{Status: status, Header: textHeader, Body: []byte("signing key unavailable\n")}
	}
	mac := hmac.New(sha256.New, key)
	clear(key) // the HMAC state keeps what it needs
	mac.Write(r.Body)
	sum := mac.Sum(nil)
	return &warden.Response{Header: textHeader, Body: hex.AppendEncode(nil, sum)}
}

func main() {}
